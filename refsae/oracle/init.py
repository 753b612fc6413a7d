"""Initialising the decoder bias `b_dec` (INIT): the batch mean, and the geometric median by
Weiszfeld's iteration with the Vardi–Zhang guard. Results have shape `(*inst, d_in)`: one point per
instance (NOT-2). NumPy float64 only; never imports torch (NOT-4).

The geometric median of points `x_1 … x_B` minimises `f(y) = Σ_b ‖x_b − y‖₂` (INIT-2). Every result
comes with a certificate (INIT-5): `f(y) − min f ≤ certified_gap(x, y)`, and the iteration stops as
soon as that certificate is at most `tol · f(y)` (INIT-6).
"""

from __future__ import annotations

import math

import numpy as np

from refsae._typecheck import typechecked
from refsae.oracle import _validate
from refsae.oracle._shapes import InputBatch, InputVector, PerInstance

__all__ = ["b_dec_mean", "geometric_median", "weiszfeld_stopped"]

EQUIVALENCE_FUNCTIONS: tuple[str, ...] = ("weiszfeld_stopped",)
"""Functions of `__all__` that define named equivalences (specs/equivalences.md), not operations: the
conformance suite's references only, so refsae.torch has no twin of them."""

DEFAULT_TOL = 1e-10
"""Relative suboptimality the geometric median certifies: `f(y) − min f ≤ tol · f(y)` (INIT-6)."""

DEFAULT_MAX_ITER = 10_000
"""Weiszfeld iterations before the last iterate is returned uncertified (INIT-7)."""


def check_iteration_options(tol: float, max_iter: int) -> None:
    """`tol` must be a finite number > 0 and `max_iter` an integer >= 1 (INIT-8)."""
    if isinstance(tol, bool) or not (isinstance(tol, int | float) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a finite number > 0, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")


@typechecked
def b_dec_mean(x: InputBatch) -> InputVector:
    """The batch mean `(1/B) Σ_b x_b`, per instance (INIT-1).

    >>> import numpy as np
    >>> b_dec_mean(np.array([[0.0, 1.0], [2.0, 5.0]])).tolist()
    [1.0, 3.0]
    """
    _validate.nonempty_batch(x)
    _validate.finite(x=x)
    return np.asarray(x.mean(axis=0))


def _power_of_two_scale(points: np.ndarray) -> float:
    """2^e with max |points| in [2^(e−1), 2^e): dividing by it is exact and keeps squares finite."""
    largest = float(np.max(np.abs(points)))
    return 1.0 if largest == 0.0 else math.ldexp(1.0, math.frexp(largest)[1])


def _certificate(points: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray, float]:
    """(gap bound, f(y), distances, ‖R‖) at y for points (B, d) (INIT-5). R sums the unit vectors
    (x_b − y)/‖x_b − y‖ over the points distinct from y; the gap bound is the smaller of

    - `‖R‖ · D` (only when no point equals y), and
    - `η d_k + R'·(x_k − y) + (‖R'‖ − η)⁺ (D + d_k)`, with `x_k` the data point nearest to y,
      `η` its multiplicity, `d_k = ‖x_k − y‖`, `R'` the sum of the unit vectors of the other points,

    where `D = max_b ‖x_b − y‖`.
    """
    diff = points - y
    dist = np.sqrt((diff * diff).sum(axis=-1))
    f, D = float(dist.sum()), float(dist.max())
    far = dist > 0
    unit = np.where(far[:, None], diff, 0.0) / np.where(far, dist, 1.0)[:, None]
    r = float(np.sqrt((unit.sum(axis=0) ** 2).sum()))
    k = int(np.argmin(dist))
    cluster = np.all(points == points[k], axis=-1)
    eta, d_k = int(np.count_nonzero(cluster)), float(dist[k])
    R_other = unit[~cluster].sum(axis=0)
    r_other = float(np.sqrt((R_other * R_other).sum()))
    near = eta * d_k + float(R_other @ (points[k] - y)) + max(r_other - eta, 0.0) * (D + d_k)
    gap = max(near, 0.0)
    if d_k > 0:
        gap = min(gap, r * D)
    return gap, f, dist, r


def _step(z: np.ndarray, c: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """One Weiszfeld step from c (INIT-3), in Vardi–Zhang form where c coincides with data points
    (INIT-4): T = Σ w_b x_b / Σ w_b over the points distinct from c, w_b = 1/‖x_b − c‖ (scaled into
    (0, 1] by the smallest distance: no overflow), then (1 − β) T + β c with β = min(1, η/‖R‖)."""
    far = dist > 0
    if not far.any():
        return c
    d_far = dist[far]
    w = d_far.min() / d_far
    T = (w[:, None] * z[far]).sum(axis=0) / w.sum()
    eta = int(np.count_nonzero(~far))
    if eta == 0:
        return np.asarray(T)
    r = float(np.sqrt((((z[far] - c) / d_far[:, None]).sum(axis=0) ** 2).sum()))
    beta = min(1.0, eta / r)
    return np.asarray((1.0 - beta) * T + beta * c)


def _objective(z: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(((z - y) ** 2).sum(axis=-1)).sum())


def _better(z: np.ndarray, proposals: list[np.ndarray]) -> np.ndarray:
    """The step from y, unless the step from the nearest data point is better by more than the
    rounding of the two objectives, γ(d_in + B + 4, u) · Σ_b (‖x_b‖ + ‖p‖) (INIT-4): an exact
    comparison could alternate between the two on rounding noise and stall."""
    if len(proposals) == 1:
        return proposals[0]
    from_y, from_k = proposals
    batch, d_in = z.shape
    k = d_in + batch + 4
    u = float(np.finfo(np.float64).eps) / 2
    magnitude = float(np.sqrt((z * z).sum(axis=-1)).sum()) + batch * float(np.sqrt((from_y * from_y).sum()))
    noise = k * u / (1 - k * u) * magnitude
    return from_k if _objective(z, from_k) < _objective(z, from_y) - 2 * noise else from_y


def _median_of_points(points: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    """One instance: points (B, d) -> (d,) (INIT-3..INIT-7)."""
    s = _power_of_two_scale(points)
    z = points / s  # exact: s is a power of two
    y = z.mean(axis=0)
    for _ in range(max_iter):
        gap, f, dist, _ = _certificate(z, y)
        if gap <= tol * f:  # also when every point equals y (gap = f = 0)
            return np.asarray(y * s)
        proposals = [_step(z, y, dist)]
        k = int(np.argmin(dist))
        if dist[k] > 0:  # the nearest data point is a candidate, and a starting point (INIT-4)
            gap_k, f_k, dist_k, _ = _certificate(z, z[k])
            if gap_k <= tol * f_k:
                return np.asarray(points[k].copy())
            proposals.append(_step(z, z[k], dist_k))
        y = _better(z, proposals)
    return np.asarray(y * s)


@typechecked
def geometric_median(
    x: InputBatch,
    *,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> InputVector:
    """The geometric median `argmin_y Σ_b ‖x_b − y‖₂`, per instance (INIT-2..INIT-8).

    Weiszfeld's iteration from the batch mean, `y ← Σ w_b x_b / Σ w_b` with `w_b = 1/‖x_b − y‖`
    over the points distinct from `y` (INIT-3), with the Vardi–Zhang step when `y` sits on a data
    point (INIT-4). It stops at the first iterate, or the first nearest data point, whose certified
    gap is at most `tol · f` (INIT-5, INIT-6). After `max_iter` iterations the last iterate is
    returned (INIT-7). `tol` must be finite and > 0 and `max_iter` >= 1 (INIT-8).

    >>> import numpy as np
    >>> geometric_median(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])).tolist()
    [0.0, 0.0]
    >>> geometric_median(np.array([[0.0, 0.0], [4.0, 0.0]])).tolist()   # two points: the midpoint
    [2.0, 0.0]
    """
    check_iteration_options(tol, max_iter)
    _validate.nonempty_batch(x)
    _validate.finite(x=x)
    out = np.empty(x.shape[1:], dtype=np.float64)
    for index in np.ndindex(x.shape[1:-1]):
        out[index] = _median_of_points(x[(slice(None), *index)], tol, max_iter)
    return out


@typechecked
def geometric_median_objective(x: InputBatch, y: InputVector) -> PerInstance:
    """`f(y) = Σ_b ‖x_b − y‖₂`, per instance (INIT-2).

    >>> import numpy as np
    >>> float(geometric_median_objective(np.array([[0.0, 0.0], [3.0, 4.0]]), np.zeros(2)))
    5.0
    """
    _validate.nonempty_batch(x)
    _validate.finite(x=x, y=y)
    return np.asarray(np.sqrt(((x - y) ** 2).sum(axis=-1)).sum(axis=0))


@typechecked
def certified_gap(x: InputBatch, y: InputVector) -> PerInstance:
    """An upper bound on `f(y) − min f`, per instance (INIT-5); 0 when `y` is certified optimal.

    >>> import numpy as np
    >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> float(certified_gap(x, np.zeros(2)))         # ‖(1, 1)‖ = 1.41 > 1: not the median
    0.41421356237309515
    >>> float(certified_gap(np.array([[0.0], [1.0], [1.0]]), np.ones(1)))
    0.0
    """
    _validate.nonempty_batch(x)
    _validate.finite(x=x, y=y)
    out = np.empty(x.shape[1:-1], dtype=np.float64)
    for index in np.ndindex(x.shape[1:-1]):
        points = x[(slice(None), *index)]
        s = _power_of_two_scale(points)
        out[index] = _certificate(points / s, y[index] / s)[0] * s
    return out


@typechecked
def weiszfeld_stopped(x: InputBatch, *, max_iter: int = 100, tol: float = 1e-5) -> InputVector:
    """The geometric median as several libraries approximate it (`weiszfeld_stopped`, EQ-11; INIT-2): plain
    Weiszfeld steps `y ← Σ_b w_b x_b / Σ_b w_b`, `w_b = 1/‖x_b − y‖`, from the mean, stopped after
    `max_iter` steps or at the first step that moves `y` by less than `tol` (dictionary_learning's
    `geometric_median(points, max_iter=100, tol=1e-5)`), per instance. It has no coincidence guard
    (INIT-4); an iterate on a data point returns that point here, where the libraries divide by 0.

    >>> import numpy as np
    >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    >>> w = 1 / np.linalg.norm(x - 1.5, axis=1)              # one step from the mean (1.5, 1.5)
    >>> np.allclose(weiszfeld_stopped(x, max_iter=1), (w[:, None] * x).sum(0) / w.sum())
    True
    """
    pts = np.moveaxis(np.asarray(x, dtype=np.float64), 0, -2)  # (*inst, batch, d_in)
    y = pts.mean(axis=-2)
    done = np.zeros(y.shape[:-1], dtype=bool)  # an instance stops on a data point or a short step
    for _ in range(max_iter):
        distance = np.linalg.norm(pts - y[..., None, :], axis=-1)
        on = np.any(distance == 0, axis=-1) & ~done
        done |= on  # y is on a data point there: that point is the result
        weights = 1.0 / np.where(distance == 0, np.inf, distance)
        total = weights.sum(axis=-1)[..., None]
        step = (weights[..., None] * pts).sum(axis=-2) / np.where(total > 0, total, 1.0)
        new = np.where(done[..., None], y, step)
        done |= np.linalg.norm(new - y, axis=-1) < tol
        y = new
        if np.all(done):
            break
    result: np.ndarray = y
    return result
