"""The one tolerance rule (specs/tolerances.md, TOL-1..TOL-5). NumPy only.

A result computed in a floating dtype differs from the exact (float64 oracle) result on the *same
rounded inputs* by at most, element by element (first-order forward error analysis, Higham §3):

    allowed = [γ(k_store, u) + γ(k_acc, u_acc) + γ(k_store + k_acc, u_64)] · M        (TOL-1)

- u: unit roundoff of the dtype (TOL-2); u_acc: that of the dtype torch accumulates in
  (float32 for bfloat16/float16, the dtype itself otherwise) (TOL-3);
- γ(n, u) = n·u / (1 − n·u);
- k_store: the longest chain of results rounded to the dtype (stored intermediates);
  k_acc: the longest chain of roundings inside accumulations (a dot product of length n counts n);
- M: the magnitude of the result: the same formula evaluated on |inputs| with every subtraction
  turned into an addition (the |A||B| of a matrix product) (TOL-4);
- the last term is the oracle's own float64 rounding (TOL-5).

An operation describes its error by a `Bound` (M, k_acc, k_store) per output; composite bounds add
their chains. Nothing here is tuned: every number comes from the dtype and the shapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

DTYPES: tuple[str, ...] = ("float64", "float32", "bfloat16", "float16")

UNIT_ROUNDOFF: dict[str, float] = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    "bfloat16": 2.0**-8,
    "float16": 2.0**-11,
}
"""u = 2^-p for a p-bit significand (TOL-2)."""

ACCUMULATOR: dict[str, str] = {
    "float64": "float64",
    "float32": "float32",
    "bfloat16": "float32",
    "float16": "float32",
}
"""The dtype torch accumulates reductions and matrix products in (its `opmath` type) (TOL-3)."""

LARGEST: dict[str, float] = {
    "float64": float(np.finfo(np.float64).max),
    "float32": float(np.finfo(np.float32).max),
    "bfloat16": 3.3895313892515355e38,
    "float16": 65504.0,
}
"""Largest finite value of each dtype: strategies keep every magnitude far below it."""


SMALLEST_NORMAL: dict[str, float] = {
    "float64": float(np.finfo(np.float64).smallest_normal),
    "float32": float(np.finfo(np.float32).smallest_normal),
    "bfloat16": 2.0**-126,
    "float16": 2.0**-14,
}
"""ν: below it values are subnormal and rounding errs by up to u·ν absolutely (TOL-7)."""

FLUSHES_SUBNORMALS: frozenset[str] = frozenset({"bfloat16"})
"""Dtypes whose kernels may flush a subnormal result to zero (TOL-8): torch's CPU bfloat16 matrix
products do (oneDNN; measured with torch 2.13 from an inner length of 16 on), so a result below ν
may come back as 0, an error of up to ν itself rather than u·ν."""

_FLOOR: ContextVar[float] = ContextVar("refsae_magnitude_floor", default=0.0)


@contextmanager
def magnitude_floor(dtype: str) -> Iterator[None]:
    """While active, every stored magnitude is floored at the dtype's smallest normal ν (TOL-7):
    |fl(v) − v| <= u · max(|v|, ν), so the relative analysis covers gradual underflow; at ν/u where
    subnormal results may be flushed to zero (TOL-8), so that γ(1, u) · ν/u >= ν covers a flush."""
    floor = SMALLEST_NORMAL[dtype]
    if dtype in FLUSHES_SUBNORMALS:
        floor /= UNIT_ROUNDOFF[dtype]
    token = _FLOOR.set(floor)
    try:
        yield
    finally:
        _FLOOR.reset(token)


def gamma(n: int, u: float) -> float:
    """γ(n, u) = n·u / (1 − n·u), the bound on |Π(1 + δ_i)^±1 − 1| for n roundings (TOL-1)."""
    if n < 0:
        raise ValueError(f"a rounding count is >= 0, got {n}")
    nu = n * u
    if nu >= 1:
        raise ValueError(f"γ({n}, {u}) undefined: n·u >= 1; the shapes are too large for this dtype")
    return nu / (1 - nu)


@dataclass(frozen=True)
class Bound:
    """First-order error description of one output: magnitude M and rounding-chain lengths."""

    magnitude: np.ndarray
    k_acc: int
    k_store: int

    def __post_init__(self) -> None:
        if self.k_store > 0 and _FLOOR.get() > 0:
            object.__setattr__(self, "magnitude", np.maximum(self.magnitude, _FLOOR.get()))

    def then(self, magnitude: np.ndarray | None = None, *, k_acc: int = 0, k_store: int = 0) -> Bound:
        """A result computed from this one alone (same magnitude unless given), chains extended."""
        m = self.magnitude if magnitude is None else np.asarray(magnitude, dtype=np.float64)
        return Bound(m, self.k_acc + k_acc, self.k_store + k_store)


def leaf(value: np.ndarray) -> Bound:
    """An exact input (already representable in the dtype): magnitude |value|, no rounding yet."""
    return Bound(np.abs(np.asarray(value, dtype=np.float64)), 0, 0)


def add(magnitude: np.ndarray, *parts: Bound, k_acc: int = 0, k_store: int = 0) -> Bound:
    """A sum or difference of `parts` (or any result whose error is the largest of its operands'):
    the longest operand chain plus this step's own roundings."""
    return Bound(
        np.asarray(magnitude, dtype=np.float64),
        max((p.k_acc for p in parts), default=0) + k_acc,
        max((p.k_store for p in parts), default=0) + k_store,
    )


def mul(magnitude: np.ndarray, *parts: Bound, k_acc: int = 0, k_store: int = 0) -> Bound:
    """A product or quotient of `parts` (a matrix product too, with k_acc = its length): relative
    errors add, so chains add (γ(a) + γ(b) <= γ(a + b))."""
    return Bound(
        np.asarray(magnitude, dtype=np.float64),
        sum(p.k_acc for p in parts) + k_acc,
        sum(p.k_store for p in parts) + k_store,
    )


def allowed_error(bound: Bound, dtype: str) -> np.ndarray:
    """The allowed |computed − exact| of every element (TOL-1)."""
    u = UNIT_ROUNDOFF[dtype]
    u_acc = UNIT_ROUNDOFF[ACCUMULATOR[dtype]]
    u64 = UNIT_ROUNDOFF["float64"]
    factor = gamma(bound.k_store, u) + gamma(bound.k_acc, u_acc) + gamma(bound.k_store + bound.k_acc, u64)
    return np.asarray(factor * bound.magnitude, dtype=np.float64)


def weiszfeld_step_chain(batch: int, d_in: int) -> int:
    """Rounding chain of one Vardi–Zhang step y ← (1 − β) T + β y, T = Σ w_b x_b / Σ w_b (TOL-4):
    x_b − y (1), its square (3), a d_in-term sum and a square root (d_in + 4), w_b = min/‖·‖
    (chains add: 2 d_in + 9), w_b x_b (2 d_in + 10), the B-term sums (2 d_in + B + 10 and
    2 d_in + B + 9), their quotient (4 d_in + 2B + 20), the mixing with β (4 d_in + 2B + 22)."""
    return 4 * d_in + 2 * batch + 22
