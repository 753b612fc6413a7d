"""b_dec initialisation: the batch mean and the geometric median (INIT-1..INIT-12).

The oracle's properties are checked in float64 on the row's own strategy (INIT-12); refsae.torch
against the oracle is the table's job (`geometric_median`, `b_dec_mean` rows), and the checker's
power on these rows is shown by the registry's mutants (`refsae.conform.mutants`, run by
`tests/test_checker_power.py`). Every slack is derived: the certified gap (INIT-5),
float64 rounding (TOL-5) and, for points rather than objectives, the local growth of the objective.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from refsae import torch as rt
from refsae.checking import strategies as rs
from refsae.checking.rows.init import init_cases
from refsae.checking.tolerances import UNIT_ROUNDOFF, gamma, weiszfeld_step_chain
from refsae.oracle import init as oi
from refsae.torch import init as ti

U64 = UNIT_ROUNDOFF["float64"]


def _instances(a: np.ndarray, inst_axis: int) -> list[np.ndarray]:
    """The per-instance slices of `a` (the instance axis at `inst_axis`, if `a` has one)."""
    return [np.take(a, i, axis=inst_axis) for i in range(a.shape[inst_axis])]


def _per_instance(x: np.ndarray, *ys: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """[(x_i, y_i, …)] for each instance; one tuple without an instance axis."""
    if x.ndim == 2:
        return [(x, *ys)]
    return list(zip(_instances(x, 1), *(_instances(y, 0) for y in ys), strict=True))


def _evaluation(x: np.ndarray, y: np.ndarray) -> float:
    """Rounding of one float64 evaluation of f or of the certificate at y (TOL-5):
    γ(d_in + B + 4, u_64) · Σ_b (‖x_b‖ + ‖y‖), for one instance x (B, d)."""
    batch, d_in = x.shape
    magnitude = float(np.linalg.norm(x, axis=-1).sum() + batch * np.linalg.norm(y))
    return gamma(d_in + batch + 4, U64) * magnitude


def _slack(x: np.ndarray, y: np.ndarray) -> float:
    """How far f(y) may be above min f, certified (INIT-5), plus its evaluation rounding."""
    gap = float(oi.certified_gap(x, y))
    return gap + 3 * _evaluation(x, y)


def _distance_within(x: np.ndarray, y: np.ndarray, slack: float) -> float:
    """How far a point whose objective is within `slack` of y's may lie from y: f grows at least
    like (η − ‖R‖)‖δ‖ from a data point that is a strict minimiser (VZ condition, INIT-4), and like
    μ‖δ‖²/2 elsewhere, μ the smallest eigenvalue of the Hessian Σ_b (I − u_b u_bᵀ)/‖x_b − y‖
    (a local model: where f is flat, μ ≈ 0 and any distance is allowed)."""
    diff = x - y
    dist = np.linalg.norm(diff, axis=-1)
    far = dist > 0
    eta = int(np.count_nonzero(~far))
    if not far.any():
        return 0.0 if slack == 0 else np.inf
    u = diff[far] / dist[far, None]
    r = float(np.linalg.norm(u.sum(axis=0)))
    if eta > r:
        return slack / (eta - r)
    H = ((np.eye(x.shape[-1]) - u[:, :, None] * u[:, None, :]) / dist[far, None, None]).sum(axis=0)
    mu = float(np.linalg.eigvalsh(H)[0])
    return float(np.sqrt(2 * slack / mu)) if mu > 0 else np.inf


def _perturbation(exact_magnitude: np.ndarray, k: int) -> float:
    """Σ_b ‖δx_b‖ for data computed with k roundings per element of magnitude |·| (TOL-1):
    f changes by at most this much anywhere when the data moves by δ."""
    return float(gamma(k, U64) * np.linalg.norm(exact_magnitude, axis=-1).sum())


def _assert_same_median(x: np.ndarray, y: np.ndarray, y_other: np.ndarray, extra: float, what: str) -> None:
    """y and y_other are both near-minimisers of f on x (one instance): their objectives agree within
    both certified slacks plus `extra`, and the points within the distance that slack allows."""
    slack = _slack(x, y) + _slack(x, y_other) + extra
    f, f_other = float(oi.geometric_median_objective(x, y)), float(oi.geometric_median_objective(x, y_other))
    assert abs(f - f_other) <= slack, f"{what}: objectives {f} and {f_other} differ by more than {slack}"
    allowed = _distance_within(x, y, slack) + _distance_within(x, y_other, slack)
    gap = float(np.linalg.norm(y - y_other))
    assert gap <= allowed, f"{what}: points differ by {gap} > {allowed}"


# --- INIT-1: the mean ----------------------------------------------------------------------------


@given(st.integers(1, 64), rs.arrays((5,), "float64", 4.0))
def test_the_mean_of_constant_data_is_that_constant(batch: int, v: np.ndarray) -> None:
    """INIT-1: within the rounding of a batch-term mean (TOL-1)."""
    mean = oi.b_dec_mean(np.repeat(v[None], batch, axis=0))
    assert np.all(np.abs(mean - v) <= gamma(batch + 1, U64) * np.abs(v))


def test_the_mean_is_per_instance() -> None:
    """INIT-1, NOT-2."""
    x = np.array([[[0.0, 0.0], [1.0, 1.0]], [[2.0, 4.0], [3.0, 3.0]]])
    assert oi.b_dec_mean(x).tolist() == [[1.0, 2.0], [2.0, 2.0]]


# --- INIT-2..INIT-6: the geometric median, its certificate ----------------------------------------


@given(init_cases("float64"))
def test_the_median_is_certified_to_the_stated_tolerance(case: Any) -> None:
    """INIT-5, INIT-6: at the returned point the certified gap is at most tol · f (these cases all
    converge within max_iter); the certificate is never negative."""
    x = case.arrays["x"]
    y = oi.geometric_median(x)
    assert np.all(np.isfinite(y))
    gap, f = oi.certified_gap(x, y), oi.geometric_median_objective(x, y)
    assert np.all(gap >= 0)
    assert np.all(gap <= oi.DEFAULT_TOL * f)


@given(init_cases("float64"), st.data())
def test_no_probe_point_beats_the_median_by_more_than_its_certificate(case: Any, data: st.DataObject) -> None:
    """INIT-2, INIT-5: f(p) >= f(y) − certified gap for probe points near y, at data points, and
    anywhere in the data's range."""
    x = case.arrays["x"]
    y = oi.geometric_median(x)
    for xi, yi in _per_instance(x, y):
        spread = float(np.abs(xi - yi).max()) or 1.0
        probes = [yi + data.draw(rs.arrays(yi.shape, "float64", spread * 2.0**k)) for k in (-30, -10, -3, 0)]
        probes += [xi[data.draw(st.integers(0, xi.shape[0] - 1))]]
        f = float(oi.geometric_median_objective(xi, yi))
        for p in probes:
            fp = float(oi.geometric_median_objective(xi, p))
            assert fp >= f - _slack(xi, yi) - _evaluation(xi, p)


@given(init_cases("float64"), st.data())
def test_the_median_is_translation_equivariant(case: Any, data: st.DataObject) -> None:
    """INIT-2, INIT-3: median(x + c) = median(x) + c, within the certified slacks of both results and
    the rounding of x + c."""
    x = case.arrays["x"]
    c = data.draw(rs.arrays(x.shape[1:], "float64", data.draw(st.sampled_from((1.0, 2.0**-5, 2.0**5)))))
    moved = x + c
    y, y_moved = oi.geometric_median(x), oi.geometric_median(moved)
    for xi, ci, yi, ymi in _per_instance(moved, c, y, y_moved):
        extra = 2 * _perturbation(np.abs(xi), 1) + xi.shape[0] * gamma(1, U64) * np.linalg.norm(yi + ci)
        _assert_same_median(xi, ymi, yi + ci, float(extra), "translation")


@given(init_cases("float64"), st.integers(0, 2**32 - 1))
def test_the_median_is_rotation_equivariant(case: Any, seed: int) -> None:
    """INIT-2, INIT-3: median(x Q) = median(x) Q for orthogonal Q, within the certified slacks, the
    rounding of x Q and y Q (d_in-term products) and Q's own departure from orthogonality."""
    x = case.arrays["x"]
    d_in = x.shape[-1]
    Q = np.linalg.qr(np.random.default_rng(seed).standard_normal((d_in, d_in)))[0]
    drift = float(np.linalg.norm(Q.T @ Q - np.eye(d_in), 2))  # distances scale by at most 1 ± drift
    rotated = x @ Q
    y, y_rotated = oi.geometric_median(x), oi.geometric_median(rotated)
    for xi, yi, yri in _per_instance(rotated, y @ Q, y_rotated):
        xo = xi @ Q.T
        extra = (
            2 * _perturbation(np.abs(xo) @ np.abs(Q), d_in)
            + xi.shape[0] * float(np.linalg.norm(gamma(d_in, U64) * (np.abs(yi @ Q.T) @ np.abs(Q))))
            + 4 * drift * float(oi.geometric_median_objective(xi, yri))
        )
        _assert_same_median(xi, yri, yi, extra, "rotation")


@given(
    st.integers(1, 16),
    st.integers(1, 8),
    st.booleans(),
    st.integers(0, 2**32 - 1),
    st.sampled_from((2.0**-6, 1.0, 2.0**6)),
)
def test_the_median_of_centrally_symmetric_data_is_its_centre(
    pairs: int, d_in: int, with_centre: bool, seed: int, scale: float
) -> None:
    """INIT-2, INIT-4: points c ± v_i (and optionally c itself, so that the first iterate sits on a
    data point) have their centre c as a median; built from dyadic grids, so exactly symmetric."""
    rng = np.random.default_rng(seed)
    c = rng.integers(-8, 9, d_in) / 4 * scale
    v = rng.integers(-8, 9, (pairs, d_in)) / 4 * scale
    x = np.concatenate([c + v, c - v, *([c[None]] if with_centre else [])])
    y = oi.geometric_median(x)
    _assert_same_median(x, y, c, 0.0, "symmetric")


def test_coincident_and_degenerate_inputs_give_finite_documented_results() -> None:
    """INIT-4, INIT-6: one point; identical points (the point itself, exactly, although their float64
    mean may differ from it); two points (the midpoint); collinear points (the middle point, or a
    point of the middle segment); a point of multiplicity > B/2 (that point)."""
    v = np.array([0.1, 0.7, 1e-3])
    assert oi.geometric_median(v[None]).tolist() == v.tolist()
    identical = np.repeat(v[None], 3, axis=0)
    assert oi.b_dec_mean(identical).tolist() != v.tolist()  # the rounded mean is not the point
    assert oi.geometric_median(identical).tolist() == v.tolist()
    assert oi.geometric_median(np.array([[0.0, 0.0], [4.0, 2.0]])).tolist() == [2.0, 1.0]
    line = np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    assert oi.geometric_median(line).tolist() == [1.0, 1.0]
    segment = oi.geometric_median(np.array([[0.0], [1.0], [2.0], [9.0]]))
    assert 1.0 <= float(segment[0]) <= 2.0
    heavy = np.array([[3.0, 3.0], [3.0, 3.0], [3.0, 3.0], [0.0, 0.0], [9.0, 1.0]])
    assert oi.geometric_median(heavy).tolist() == [3.0, 3.0]


def test_the_vardi_zhang_step_leaves_a_data_point_that_is_not_the_median() -> None:
    """INIT-4: the mean of this batch is exactly its data point (0, 0), which is not the median
    (‖R‖ ≈ 1.79 > η = 1); one iteration moves off it by the Vardi–Zhang rule, not by 0/0."""
    x = np.array([[0.0, 0.0], [1.0, 0.5], [1.0, -0.5], [1.0, 0.0], [-3.0, 0.0]])
    assert oi.b_dec_mean(x).tolist() == [0.0, 0.0]
    one = oi.geometric_median(x, max_iter=1)
    far = x[1:]  # the points distinct from the iterate y = 0
    d = np.linalg.norm(far, axis=-1)
    T = (far / d[:, None]).sum(axis=0) / (1 / d).sum()
    r = float(np.linalg.norm((far / d[:, None]).sum(axis=0)))
    expected = (1 - 1 / r) * T  # β = η/‖R‖ with η = 1, and β·y = 0
    assert r > 1 and expected[0] > 0
    assert np.all(np.abs(one - expected) <= gamma(16, U64) * np.abs(x).max())


def test_after_max_iter_the_last_iterate_is_returned() -> None:
    """INIT-4, INIT-7: with max_iter = 1 the result is one step, not an error: the better of the
    Weiszfeld step from the mean and the Vardi–Zhang step from the data point nearest to it."""
    x = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]])  # the nearest point (0, 0): not the median

    def step(c: np.ndarray) -> np.ndarray:
        diff = x - c
        d = np.linalg.norm(diff, axis=-1)
        far = d > 0
        T = (x[far] / d[far, None]).sum(axis=0) / (1 / d[far]).sum()
        eta, r = int(np.count_nonzero(~far)), float(np.linalg.norm((diff[far] / d[far, None]).sum(axis=0)))
        beta = min(1.0, eta / r) if eta else 0.0
        return np.asarray((1 - beta) * T + beta * c)

    mean = x.mean(axis=0)
    nearest = x[np.argmin(np.linalg.norm(x - mean, axis=-1))]
    proposals = [step(mean), step(nearest)]
    f = [float(oi.geometric_median_objective(x, p)) for p in proposals]
    assert abs(f[0] - f[1]) > 2**-20 * max(f)  # an unambiguous choice
    expected = proposals[int(np.argmin(f))]
    one = oi.geometric_median(x, max_iter=1)
    assert np.all(np.abs(one - expected) <= gamma(64, U64) * np.abs(x).max())
    assert float(oi.certified_gap(x, one)) > oi.DEFAULT_TOL * float(oi.geometric_median_objective(x, one))


def test_huge_and_tiny_inputs_do_not_overflow() -> None:
    """INIT-3: the iteration runs on data scaled by a power of two, so squares never overflow."""
    for s in (2.0**1000, 2.0**-1000):
        x = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0], [1.0, 1.0]]) * s
        y = oi.geometric_median(x)
        assert np.all(np.isfinite(y))
        unit = oi.geometric_median(x / s) * s
        assert np.all(np.abs(y - unit) <= gamma(64, U64) * s * 4)


# --- INIT-8: option checks -----------------------------------------------------------------------

FUNCTIONS: list[tuple[str, Callable[..., Any], Callable[[np.ndarray], Any]]] = [
    ("oracle", oi.geometric_median, lambda a: a),
    ("torch", rt.geometric_median, torch.from_numpy),
]


@pytest.mark.parametrize(("side", "fn", "convert"), FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
@pytest.mark.parametrize("tol", [0.0, -1e-10, float("nan"), float("inf")])
def test_tol_must_be_a_finite_positive_number(
    side: str, fn: Callable[..., Any], convert: Callable[[np.ndarray], Any], tol: float
) -> None:
    """INIT-8."""
    with pytest.raises(ValueError, match="tol must be a finite number > 0"):
        fn(convert(np.ones((3, 2))), tol=tol)


@pytest.mark.parametrize(("side", "fn", "convert"), FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
@pytest.mark.parametrize("max_iter", [0, -3])
def test_max_iter_must_be_at_least_one(
    side: str, fn: Callable[..., Any], convert: Callable[[np.ndarray], Any], max_iter: int
) -> None:
    """INIT-8."""
    with pytest.raises(ValueError, match="max_iter must be an integer >= 1"):
        fn(convert(np.ones((3, 2))), max_iter=max_iter)


# --- INIT-9: refsae.torch's tolerance floor -------------------------------------------------------


def test_torch_stops_at_its_dtype_floor_rather_than_iterating_to_max_iter() -> None:
    """INIT-9, INIT-11: in float32 no tolerance below the floor is reached: asking for 1e-30 and for
    the default returns the same point, and the float64 certificate of that point lies within the
    rounding allowance of INIT-11 (the floor is half of it)."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((40, 16)) + 3.0).float()
    y = rt.geometric_median(x, tol=1e-30)
    assert torch.equal(y, rt.geometric_median(x))
    xd, yd = x.double().numpy(), y.double().numpy()
    batch, d_in = xd.shape
    allowance = gamma(weiszfeld_step_chain(batch, d_in), UNIT_ROUNDOFF["float32"])
    scale = batch * float(np.linalg.norm(np.abs(xd).max(axis=0)))
    assert 0.5 * allowance == ti.stopping_floor(batch, d_in, torch.float32)
    assert float(oi.certified_gap(xd, yd)) <= allowance * scale
    assert not torch.equal(y, x.mean(dim=0))  # it did iterate
