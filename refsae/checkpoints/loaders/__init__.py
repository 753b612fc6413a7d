"""The libraries' own loaders (CKPT-20), one module per library, each imported only when its library
is installed. A module exposes `LOADERS` (loader name → `Loader`) and `READS` (loader name → the
refsae format of the files it loads)."""

from __future__ import annotations

import importlib
import importlib.util

from refsae.checkpoints.library import Loader

LIBRARIES: tuple[str, ...] = ("sae_lens", "dictionary_learning", "sparsify", "saev")


def installed() -> list[str]:
    """The libraries importable here."""
    return [name for name in LIBRARIES if importlib.util.find_spec(name) is not None]


def applicable(format: str) -> list[tuple[str, Loader]]:
    """(name, loader) of every installed library's loader that reads `format`."""
    found: list[tuple[str, Loader]] = []
    for library in installed():
        module = importlib.import_module(f"refsae.checkpoints.loaders.{library}")
        for name, loader in module.LOADERS.items():
            if module.READS.get(name) == format:
                found.append((name, loader))
    return found
