"""What `refsae checkpoint` reports (CKPT-26): the checkpoint's items with their sources, the
oracle's forward pass on the inputs, and the verdict on every applicable library loader; and
`convert`'s proof (CKPT-27)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from refsae.checkpoints import formats, function, loaders
from refsae.checkpoints.compare import Finding, inputs, judge, representable
from refsae.checkpoints.errors import CheckpointError
from refsae.checkpoints.library import LibraryModel, Loader
from refsae.checkpoints.model import Checkpoint
from refsae.checkpoints.options import Options
from refsae.checkpoints.writing import atomic_directory
from refsae.conform.verdicts import FAILING


@dataclass
class Report:
    checkpoint: Checkpoint
    x: np.ndarray
    forward: function.Forward
    findings: list[Finding] = field(default_factory=list)
    converted: str = ""

    @property
    def status(self) -> int:
        """1 when a loader (or a conversion) has a `bug` or an `error` (CKPT-26)."""
        return 1 if any(f.verdict in FAILING for f in self.findings) else 0

    def data(self) -> dict[str, Any]:
        c, fw = self.checkpoint, self.forward
        return {
            "path": str(c.path),
            "items": [{"item": i, "value": v, "source": s} for i, v, s in c.describe()],
            "notes": list(c.notes),
            "rows": int(self.x.shape[0]),
            "mean_l0": float(fw.l0.mean()),
            "relative_error": _relative(self.x, fw.x_hat) if c.kind == "sae" else None,
            "findings": [vars(f) for f in self.findings],
            "converted": self.converted,
        }

    def text(self) -> str:
        c, fw = self.checkpoint, self.forward
        lines = [f"{c.path}: {c.format} checkpoint", "", f"  {'item':<13} {'value':<22} source"]
        lines += [f"  {i:<13} {v:<22} {s}" for i, v, s in c.describe()]
        lines += [f"  note: {n}" for n in c.notes]
        rel = f", ‖x̂ − x‖/‖x‖ = {_relative(self.x, fw.x_hat):.4g}" if c.kind == "sae" else ""
        lines += [
            "",
            f"oracle forward on {self.x.shape[0]} rows: mean L0 = {fw.l0.mean():.3g} of {c.d_sae}{rel}",
        ]
        if self.converted:
            lines.append(f"converted: {self.converted}")
        if not self.findings:
            lines.append("no library loader of this format is installed here")
        for f in self.findings:
            lines.append(f"  {f.loader:<44} {f.operation:<8} {f.verdict:<11} {_detail(f)}")
        return "\n".join(lines)


def _detail(f: Finding) -> str:
    """The rest of a finding's line: its errors and reading, or the last line of the library's error."""
    if f.verdict == "error":
        lines = [line.strip() for line in f.message.splitlines() if line.strip()]
        return lines[-1] if lines else ""
    ties = f", {f.ties} latent(s) at a kink" if f.ties else ""
    why = f"; {f.message}" if f.message else ""
    return f"max error {f.max_error:.3g}, allowed {f.allowed:.3g}{ties}{why}"


def _relative(x: np.ndarray, x_hat: np.ndarray) -> float:
    return float(np.linalg.norm(x_hat - x) / np.linalg.norm(x))


def _rows(ckpt: Checkpoint, given: int | np.ndarray, seed: int) -> np.ndarray:
    if isinstance(given, int):
        if given < 1:
            raise CheckpointError("--inputs", "", f"a row count is >= 1, got {given}")
        return inputs(ckpt, given, seed)
    return representable(function.check_inputs(ckpt, given, "--inputs"), ckpt.stored_dtype)


def run_loader(name: str, loader: Loader, where: Path, ckpt: Checkpoint, x: np.ndarray) -> list[Finding]:
    """The findings on one loader: `error` on `load` if it cannot load the files at all."""
    try:
        model = loader(where)
    except Exception as e:  # the library's code: anything it raises is the finding
        return [Finding(name, "load", "error", message=f"{type(e).__name__}: {e}")]
    return list(judge(ckpt, model, x))


def inspect(
    path: Path, options: Options, format: str | None, *, inputs: int | np.ndarray, seed: int, libraries: bool
) -> Report:
    ckpt = formats.read(path, options, format=format)
    x = _rows(ckpt, inputs, seed)
    report = Report(ckpt, x, function.forward(ckpt, x))
    if libraries:
        where = ckpt.path if ckpt.path.is_dir() else ckpt.path.parent
        for name, loader in loaders.applicable(ckpt.format):
            report.findings += run_loader(name, loader, where, ckpt, x)
    return report


def _oracle_model(ckpt: Checkpoint, name: str) -> LibraryModel:
    """refsae's reading of the written files, called as a library's loaded model is (CKPT-20): its
    decode undoes the row normalisation of the rows its encode saw last."""
    seen: list[np.ndarray] = []

    def encode(x: np.ndarray) -> np.ndarray:
        seen[:] = [x]
        return function.encode(ckpt, x)

    def decode(f: np.ndarray) -> np.ndarray:
        x = seen[0] if seen and ckpt.row_norm != "none" else None
        return function.decode(ckpt, f, x, skip=False)

    return LibraryModel(name, encode, decode, lambda x: function.forward(ckpt, x).x_hat)


def convert(
    src: Path, dst: Path, to: str, options: Options, format: str | None, *,
    inputs: int | np.ndarray, seed: int, overwrite: bool,
) -> Report:  # fmt: skip
    """Write SRC's function in format `to` at DST (CKPT-27): the files are written to a temporary
    directory, read back by refsae's reader of `to` and by every installed library loader of `to`,
    each compared with SRC's function; DST appears only when every comparison passes (CKPT-25)."""
    table = formats.formats()
    if to not in table or table[to].write is None:
        writable = [n for n, f in table.items() if f.write is not None]
        raise CheckpointError(dst, "", f"cannot write format {to!r}; writable: {', '.join(writable)}")
    ckpt = formats.read(src, options, format=format)
    x = _rows(ckpt, inputs, seed)
    report = Report(ckpt, x, function.forward(ckpt, x), converted=f"{src} -> {dst} ({to})")
    with atomic_directory(dst, overwrite=overwrite) as tmp:
        try:
            table[to].write(ckpt, tmp)  # type: ignore[misc]
        except CheckpointError as e:  # the writer's refusal, about DST rather than the temporary directory
            raise CheckpointError(dst, e.key, e.problem) from None
        back = formats.read(tmp, Options(), format=to)
        report.findings += list(judge(ckpt, _oracle_model(back, f"refsae reader of {to}"), x))
        for name, loader in loaders.applicable(to):
            report.findings += run_loader(name, loader, tmp, ckpt, x)
        if report.status:
            raise CheckpointError(
                dst, "", "the converted files compute another function; nothing written:\n" + report.text()
            )
    return report
