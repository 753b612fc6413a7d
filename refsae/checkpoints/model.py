"""The canonical description of a checkpoint (CKPT-1..CKPT-4): its parameters in the notation of
notation.md, everything else that changes the function it computes, and where each item came from.

A reader (`refsae.checkpoints.formats`) maps a library's files to a `Checkpoint`;
`refsae.checkpoints.function` computes that function with the oracle; a writer maps it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

import numpy as np

Architecture = Literal["relu", "topk", "batchtopk", "jumprelu", "gated"]
Kind = Literal["sae", "transcoder", "skip_transcoder"]
RowNorm = Literal["none", "constant_norm_rescale", "layer_norm"]
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)
KINDS: tuple[str, ...] = get_args(Kind)
ROW_NORMS: tuple[str, ...] = get_args(RowNorm)

PARAMETERS: dict[str, tuple[str, ...]] = {
    "W_enc": ("d_in", "d_sae"),
    "b_enc": ("d_sae",),
    "W_dec": ("d_sae", "d_out"),
    "b_dec": ("d_out",),
    "threshold": ("d_sae",),
    "b_gate": ("d_sae",),
    "r_mag": ("d_sae",),
    "b_mag": ("d_sae",),
    "W_skip": ("d_out", "d_in"),
}
"""Every canonical parameter and its axes (CKPT-2). d_out = d_in except for transcoders."""

REQUIRED: dict[str, tuple[str, ...]] = {
    "relu": ("W_enc", "b_enc", "W_dec", "b_dec"),
    "topk": ("W_enc", "b_enc", "W_dec", "b_dec"),
    "batchtopk": ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"),
    "jumprelu": ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"),
    "gated": ("W_enc", "b_gate", "r_mag", "b_mag", "W_dec", "b_dec"),
}
"""The parameters each architecture needs (CKPT-2); a skip transcoder adds W_skip."""


UNSTORED: dict[str, str] = {
    "decoder": "(no such key: the format decodes with W_dec as stored, DEC-2)",
    "input_scale": "(no such key: no input scale stored)",
    "row_norm": "(no such key: no row normalisation)",
}
"""What the report says of an item no file states (CKPT-4)."""


@dataclass(frozen=True)
class Source:
    """Where one item of a checkpoint came from (CKPT-4): a file, the key in it, and how the value
    followed from it (empty when the key holds the value as is)."""

    file: str
    key: str
    how: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.key}" if self.key else self.file
        return f"{where} ({self.how})" if self.how else where


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint computes (CKPT-1).

    The function: u = x − b_dec (`encode="tied"`, ENC-2; only where d_out = d_in) or x (ENC-3),
    z = u W_enc + b_enc, f = act(z) by `architecture` (k, threshold), x̂ = f Ŵ_dec + b_dec (DEC-1,
    `decoder`) plus x W_skipᵀ for a skip transcoder; with `input_scale` c ≠ 1 the input is scaled
    first and the output unscaled after (CKPT-3): x̂(x) = x̂'(c·x) / c; `row_norm` normalises each
    row of x before encoding and undoes it on the output (CKPT-10).
    """

    format: str
    path: Path
    architecture: Architecture
    params: dict[str, np.ndarray]
    kind: Kind = "sae"
    k: int | None = None
    encode: Literal["tied", "untied"] = "untied"
    decoder: Literal["constrained", "normalised"] = "constrained"
    input_scale: float = 1.0
    row_norm: RowNorm = "none"
    stored_dtype: str = "float32"
    sources: dict[str, Source] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def d_in(self) -> int:
        return int(self.params["W_enc"].shape[0])

    @property
    def d_sae(self) -> int:
        return int(self.params["W_enc"].shape[1])

    @property
    def d_out(self) -> int:
        return int(self.params["W_dec"].shape[1])

    def but(self, **changes: object) -> Checkpoint:
        """A copy with some items changed (the alternative readings of `refsae.checkpoints.compare`)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def describe(self) -> list[tuple[str, str, str]]:
        """(item, value, source) rows for the report, in a fixed order (CKPT-4)."""
        rows: list[tuple[str, str, str]] = []

        def row(item: str, value: object) -> None:
            rows.append((item, str(value), str(self.sources.get(item, UNSTORED.get(item, "(not stored)")))))

        row("format", self.format)
        row("architecture", self.architecture)
        row("kind", self.kind)
        if self.k is not None:
            row("k", self.k)
        row("encode", self.encode)
        row("decoder", self.decoder)
        row("input_scale", self.input_scale)
        row("row_norm", self.row_norm)
        row("stored_dtype", self.stored_dtype)
        for name in sorted(self.params, key=list(PARAMETERS).index):
            value = self.params[name]
            row(name, "×".join(str(n) for n in value.shape) if value.ndim else "scalar")
        return rows
