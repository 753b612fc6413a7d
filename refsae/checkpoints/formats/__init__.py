"""The on-disk formats refsae reads and writes (CKPT-5..CKPT-19), one module each.

| format | files | reader | writer |
|---|---|---|---|
| `sae_lens` | `cfg.json` + `sae_weights.safetensors` | yes | yes |
| `dictionary_learning` | `ae.pt` + `config.json` | yes | — |
| `sparsify` | `cfg.json` + `sae.safetensors` | yes | — |
| `saev` | `sae.pt` (JSON header line + torch state dict) | yes | — |
| `npz` | `params.npz` (Gemma Scope style; conventions stated by the user) | yes | — |
| `refsae` | `refsae.json` + `params.safetensors` (canonical names, named conventions) | yes | yes |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from refsae.checkpoints.errors import CheckpointError
from refsae.checkpoints.model import Checkpoint, Source
from refsae.checkpoints.options import Options


@dataclass(frozen=True)
class Format:
    """One on-disk format: the files that identify it, its reader and (optionally) its writer."""

    name: str
    marks: tuple[str, ...]
    """Files whose joint presence in a directory identifies the format (CKPT-6)."""
    read: Callable[[Path, Options], Checkpoint]
    write: Callable[[Checkpoint, Path], None] | None = None


ORDER: tuple[str, ...] = ("refsae_format", "sae_lens", "sparsify", "dictionary_learning", "saev", "npz")
"""The format modules, in the order detection tries them."""


def formats() -> dict[str, Format]:
    """Every format, in the order detection tries them."""
    import importlib

    table = [importlib.import_module(f"refsae.checkpoints.formats.{name}").FORMAT for name in ORDER]
    return {f.name: f for f in table}


def detect(path: Path) -> tuple[Format, Path]:
    """(format, directory) of the checkpoint at `path`, a directory or one of its marking files (CKPT-6)."""
    table = formats()
    if not path.exists():
        raise CheckpointError(path, "", "no such file or directory")
    if path.is_file():
        for fmt in table.values():
            if path.name in fmt.marks and all((path.parent / m).is_file() for m in fmt.marks):
                return fmt, path.parent
        if path.suffix == ".npz":
            return table["npz"], path
        raise CheckpointError(path, "", "not a file of a known checkpoint format: " + _known(table))
    for fmt in table.values():
        if all((path / m).is_file() for m in fmt.marks):
            return fmt, path
    inside = sorted(
        f"{sub.name} ({fmt.name})"
        for sub in path.iterdir()
        if sub.is_dir()
        for fmt in table.values()
        if all((sub / m).is_file() for m in fmt.marks)
    )
    if inside:  # a training run with one checkpoint per hookpoint (CKPT-16)
        raise CheckpointError(
            path, "", "a folder of checkpoints, one per hookpoint; read one of: " + ", ".join(inside)
        )
    raise CheckpointError(path, "", "no known checkpoint format's files in this directory: " + _known(table))


def _known(table: dict[str, Format]) -> str:
    return "; ".join(f"{f.name} ({' + '.join(f.marks)})" for f in table.values())


def read(path: Path | str, options: Options | None = None, *, format: str | None = None) -> Checkpoint:
    """The checkpoint at `path`, in `format` or the detected one."""
    path = Path(path)
    options = options or Options()
    if format is None:
        fmt, where = detect(path)
    else:
        table = formats()
        if format not in table:
            raise CheckpointError(path, "", f"unknown format {format!r}; known: {', '.join(table)}")
        fmt, where = table[format], path
        if path.is_file() and fmt.name != "npz":
            where = path.parent
    ckpt = fmt.read(where, options)
    how = "stated (--format)" if format is not None else "detected from the files present"
    ckpt.sources.setdefault("format", Source(" + ".join(fmt.marks), "", how))
    ckpt.sources.setdefault("stored_dtype", Source(fmt.marks[-1], "", "the tensors' dtype"))
    return ckpt
