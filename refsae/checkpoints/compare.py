"""A library's own loader against the oracle on the same files (CKPT-20..CKPT-24).

Each of the library's `encode`, `decode` and `forward` is compared with the oracle's function of the
checkpoint (CKPT-3) on inputs exactly representable in the stored dtype, element by element under the
tolerance rule at the dtype the library computed in (CKPT-21). A latent within its allowed error of a
kink (ReLU at 0, a threshold, the k-th value, the gate) may land on either side (CKPT-22). A
disagreement is judged with the conformance suite's verdicts (CONF-12, CKPT-23):

- `precision`: it holds at float32's allowed error although the library computed in float64;
- `bug` with a reading: the library computes another reading of the files (b_dec subtracted or not, the
  threshold or k dropped, the decoder normalised, the input scale or the skip term ignored, …) while a
  key of the files states the item it gets wrong; `convention` when no key states it (a default);
- `bug` without a reading; `error` when the loader or the call raised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from refsae.checking.tolerances import allowed_error, leaf
from refsae.checkpoints import bounds, function
from refsae.checkpoints.library import LibraryModel
from refsae.checkpoints.model import Checkpoint
from refsae.checkpoints.readings import Reading, readings

OPERATIONS: tuple[str, ...] = ("encode", "decode", "forward")


@dataclass(frozen=True)
class Finding:
    """The verdict on one operation of one loader (CKPT-23)."""

    loader: str
    operation: str
    verdict: str
    max_error: float = 0.0
    allowed: float = 0.0
    ties: int = 0
    reading: str = ""
    message: str = ""


def inputs(ckpt: Checkpoint, n: int, seed: int = 0) -> np.ndarray:
    """n standard-normal rows of width d_in, rounded to the stored dtype (CKPT-21)."""
    x = np.random.default_rng(seed).standard_normal((n, ckpt.d_in))
    return representable(x, ckpt.stored_dtype)


def representable(x: np.ndarray, dtype: str) -> np.ndarray:
    """x rounded to `dtype` and back, so that a library loading in that dtype reads it exactly."""
    import torch

    return torch.from_numpy(np.asarray(x, dtype=np.float64)).to(getattr(torch, dtype)).double().numpy()


def _kinks(ckpt: Checkpoint, x: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(z, mask of latents within their allowed error of a kink)."""
    z = function.pre_activations(ckpt, x)
    a = allowed_error(bounds.pre_activations(ckpt, x), dtype)
    arch = ckpt.architecture
    near = np.abs(z) <= a
    if arch in ("jumprelu", "batchtopk"):
        theta = np.maximum(ckpt.params["threshold"], 0.0)
        near |= np.abs(z - theta) <= a
    if arch == "topk":  # the k-th and (k+1)-th values within rounding of each other (TOPK-2's ties)
        assert ckpt.k is not None
        ordered = -np.sort(-z, axis=-1)
        kth, next_ = ordered[:, ckpt.k - 1 : ckpt.k], ordered[:, ckpt.k : ckpt.k + 1]
        if next_.shape[1]:
            width = 2 * a.max(axis=-1, keepdims=True)
            close = (kth - next_ <= width) & (kth > 0)
            near |= close & ((np.abs(z - kth) <= width) | (np.abs(z - next_) <= width))
    if arch == "gated":
        p = ckpt.params
        from refsae import oracle

        pi_gate, _ = oracle.gated_pre_activations(
            function.row_norm_in(ckpt, x),
            p["W_enc"],
            p["b_gate"],
            p["r_mag"],
            p["b_mag"],
            p["b_dec"],
            encode=ckpt.encode,
        )
        near |= np.abs(pi_gate) <= allowed_error(bounds.gate(ckpt, x), dtype)
    return z, near


def _accept_f(
    ckpt: Checkpoint, x: np.ndarray, f_lib: np.ndarray, dtype: str
) -> tuple[bool, float, float, int, np.ndarray]:
    """(ok, max error, max allowed, ties used, f as the library's sides chose at the ties)."""
    z, near = _kinks(ckpt, x, dtype)
    f = function.encode(ckpt, x)
    a = allowed_error(bounds.pre_activations(ckpt, x), dtype)
    err = np.abs(f_lib - f)
    ok = err <= a
    side_off, side_on = np.abs(f_lib) <= a, np.abs(f_lib - z) <= a
    tie = near & ~ok & (side_off | side_on)
    chosen = np.where(tie, np.where(side_off, 0.0, z), f)
    return bool((ok | tie).all()), float(err.max()), float(a.max()), int(tie.sum()), chosen


def _check(
    ckpt: Checkpoint, model: LibraryModel, op: str, x: np.ndarray, dtype: str
) -> tuple[bool, float, float, int]:
    if op == "encode":
        ok, err, allowed, ties, _ = _accept_f(ckpt, x, model.encode(x), dtype)
        return ok, err, allowed, ties
    if op == "decode":
        f = function.encode(ckpt, x)
        if (
            ckpt.row_norm != "none"
        ):  # decode undoes the normalisation of the rows its encode saw last (CKPT-20)
            model.encode(x)
            got, want = model.decode(f), function.decode(ckpt, f, x, skip=False)
        else:
            got, want = model.decode(f), function.decode(ckpt, f)  # the decoder alone (CKPT-3)
        a = allowed_error(bounds.decode(ckpt, leaf(f), x if ckpt.row_norm != "none" else None), dtype)
        err = np.abs(np.asarray(got) - want)
        return bool((err <= a).all()), float(err.max()), float(a.max()), 0
    got = np.asarray(model.forward(x))
    a = allowed_error(bounds.forward(ckpt, x), dtype)
    _ok_f, _, _, ties, chosen = _accept_f(ckpt, x, model.encode(x), dtype)
    candidates = [function.forward(ckpt, x).x_hat] + ([function.decode(ckpt, chosen, x)] if ties else [])
    errs = [np.abs(got - c) for c in candidates]
    row_ok = np.any([(e <= a).all(axis=-1) for e in errs], axis=0)
    return bool(row_ok.all()), float(min(e.max() for e in errs)), float(a.max()), ties


def _safe(fn: Callable[[], tuple[bool, float, float, int]]) -> tuple[bool, float, float, int] | Exception:
    try:
        return fn()
    except Exception as e:  # the library's code: anything it raises is an `error` finding
        return e


def judge(ckpt: Checkpoint, model: LibraryModel, x: np.ndarray) -> Iterator[Finding]:
    """One finding per operation (CKPT-23)."""
    for op in OPERATIONS:
        out = _safe(lambda op=op: _check(ckpt, model, op, x, model.dtype))  # type: ignore[misc]
        if isinstance(out, Exception):
            yield Finding(model.loader, op, "error", message=f"{type(out).__name__}: {out}")
            continue
        ok, err, allowed, ties = out
        if ok:
            yield Finding(model.loader, op, "pass", err, allowed, ties)
            continue
        if model.dtype == "float64":
            low = _safe(lambda op=op: _check(ckpt, model, op, x, "float32"))  # type: ignore[misc]
            if not isinstance(low, Exception) and low[0]:
                yield Finding(
                    model.loader,
                    op,
                    "precision",
                    err,
                    allowed,
                    low[3],
                    message="within float32's allowed error",
                )
                continue
        yield _explained(ckpt, model, op, x, err, allowed)


def _explained(
    ckpt: Checkpoint, model: LibraryModel, op: str, x: np.ndarray, err: float, allowed: float
) -> Finding:
    """The first reading the library's result agrees with, at its dtype or else at float32's (CKPT-24)."""
    dtypes = [model.dtype] + (["float32"] if model.dtype == "float64" else [])
    for dtype in dtypes:
        for reading in readings(ckpt):
            out = _safe(lambda r=reading, d=dtype: _check(r.checkpoint, model, op, x, d))  # type: ignore[misc]
            if isinstance(out, Exception) or not out[0]:
                continue
            says = _says(ckpt, reading) + (
                "" if dtype == model.dtype else f" (within {dtype}'s allowed error)"
            )
            return Finding(
                model.loader, op, _verdict(ckpt, reading), err, allowed, out[3], reading.name, says
            )
    return Finding(model.loader, op, "bug", err, allowed, message="matches no reading of the files (CKPT-24)")


def _verdict(ckpt: Checkpoint, reading: Reading) -> str:
    """`bug` when a key of the files states the item the library gets otherwise; `convention` for a
    default or a named equivalence (CKPT-23)."""
    if reading.verdict:
        return reading.verdict
    source = ckpt.sources.get(reading.item)
    return "bug" if source is not None and "default" not in source.how else "convention"


def _says(ckpt: Checkpoint, reading: Reading) -> str:
    if reading.verdict:
        return f"computes {reading.describe}"
    source = ckpt.sources.get(reading.item)
    where = f"{source}" if source is not None else "no key (a default)"
    return f"computes {reading.describe}; the files: {reading.item} from {where}"
