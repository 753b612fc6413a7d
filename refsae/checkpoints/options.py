"""What a user states on the command line about a checkpoint whose files do not say it (CKPT-17):
the Gemma Scope style `params.npz` stores weights only."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    """Stated conventions; None leaves an item to the format (or its documented default)."""

    architecture: str | None = None
    kind: str | None = None
    k: int | None = None
    encode: str | None = None
    decoder: str | None = None
    input_scale: float | None = None
