"""The `b_dec` initialisations (init.md): case strategies, error bounds and rows of `b_dec_mean` and
`geometric_median`.

Case strategies of the `b_dec` initialisations (INIT-12): data whose median is known or hard.

Each case is a batch `x` of shape `(batch, *inst, d_in)` (STR-5 shapes, STR-1 values), of one kind:

- `plain`: `strategies.inputs` (iid, with a per-dimension offset, or shaped like activations, STR-9);
- `symmetric`: centrally symmetric pairs `c ± v_i`, whose median is the centre `c`;
- `centre`: the same plus `c` itself, so that the first iterate (the mean) sits on a data point;
- `mean_point`: plain data plus one more point equal to (the dtype's rounding of) their mean;
- `duplicates`: plain data with rows repeated (points of multiplicity > 1);
- `identical`: one point repeated `batch` times;
- `collinear`: points `c + t_b v` on one line, built from small dyadic grids so that they are
  exactly collinear in every dtype (any point of the middle segment is a median when `batch` is
  even). Nearly collinear data, whose objective is nearly flat along a segment, is where Weiszfeld's
  iteration converges slowest (INIT-7); rounding the exactly collinear points would create it.

Rounding to the dtype may break exact symmetry; such a case is still a valid case.

Error bounds of the `b_dec` initialisations (INIT-10, INIT-11), for the tolerance rule (TOL-1).

`b_dec_mean` is an ordinary reduction. The geometric median is checked through its objective
`f(y) = Σ_b ‖x_b − y‖` (INIT-11): the minimiser may be ill-conditioned where `f` is flat, so two
correct results can differ by far more than rounding while their objectives agree. NumPy only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from hypothesis import strategies as st

from refsae.cases import Case
from refsae.checking import strategies as rs
from refsae.checking.equivalence import Equivalence
from refsae.checking.operation import Bounds, Operation, Outputs
from refsae.checking.tolerances import (
    ACCUMULATOR,
    UNIT_ROUNDOFF,
    Bound,
    add,
    gamma,
    leaf,
    weiszfeld_step_chain,
)
from refsae.oracle import init as oracle_init

KINDS = ("plain", "symmetric", "centre", "mean_point", "duplicates", "identical", "collinear")


@st.composite
def init_cases(draw: st.DrawFn, dtype: str) -> Case:
    """One batch of one of the `KINDS`, sometimes with an instance axis."""
    shape = draw(rs.shapes())
    inst, batch, d_in = shape.inst, shape.batch, shape.d_in
    kind = draw(st.sampled_from(KINDS))
    scale = draw(rs.scales(dtype))
    if kind in ("symmetric", "centre"):
        half = max(1, (batch - 1) // 2)
        offset = scale * draw(st.sampled_from((0.0, 1.0, 4.0)))
        c = draw(rs.arrays((1, *inst, d_in), dtype, max(offset, scale)))
        c = c if offset else np.zeros_like(c)
        v = draw(rs.arrays((half, *inst, d_in), dtype, scale))
        parts = [c + v, c - v, *([c] if kind == "centre" else [])]
        x = rs.round_to(np.concatenate(parts, axis=0), dtype)
    elif kind == "identical":
        x = np.repeat(draw(rs.arrays((1, *inst, d_in), dtype, scale)), batch, axis=0)
    elif kind == "collinear":  # exactly collinear in every dtype: multiples of scale/16, |·| <= 3 scale
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        c = rng.integers(-4, 5, (1, *inst, d_in)) / 4
        v = rng.integers(-4, 5, (1, *inst, d_in)) / 4
        t = rng.integers(-8, 9, (batch, *inst, 1)) / 4
        x = rs.round_to((c + t * v) * scale, dtype)
    else:
        x = draw(rs.inputs(shape, dtype))
        if kind == "mean_point":
            x = x[:63]  # one more row: batch stays <= 64 (STR-5)
            x = np.concatenate([x, rs.round_to(x.mean(axis=0, keepdims=True), dtype)], axis=0)
        elif kind == "duplicates":
            rows = draw(st.lists(st.integers(0, batch - 1), min_size=batch, max_size=batch))
            x = x[np.array(rows)]
    return Case({"x": x}, {}, dtype)


def b_dec_mean_bound(x: np.ndarray) -> Bound:
    """(1/B) Σ_b x_b: a B-term sum and a division (k_acc = B + 1), stored once (INIT-10)."""
    return add(np.abs(x).mean(axis=0), leaf(x), k_acc=x.shape[0] + 1, k_store=1)


def geometric_median_objective_bound(x: np.ndarray, gap: np.ndarray, dtype: str) -> Bound:
    """Allowed |f(y_impl) − f(y_oracle)| per instance (INIT-11), all of it derived:

    - rounding: a result computed in `dtype` is the fixed point of a step whose every coordinate
      errs by at most `[γ(1, u) + γ(k, u_acc) + γ(1 + k, u_64)] · m_j` (k = `weiszfeld_step_chain`,
      one final rounding to the dtype, `m_j = max_b |x_bj|` bounding the step's magnitude
      `Σ w_b |x_bj| / Σ w_b`), and `f` is B-Lipschitz: `|f(y + δ) − f(y)| ≤ B ‖δ‖`, so
      `M = B ‖m‖`;
    - the oracle's certified gap `G = certified_gap(x, y_oracle)` (≤ tol · f when it converged,
      INIT-6): a correct result may be better than the oracle's by up to G;
    - float64 evaluation: the two objectives and the certificate are each evaluated with an error
      of at most `γ(d_in + B + 4, u_64) · 2M` (`f ≤ Σ_b (‖x_b‖ + ‖y‖) ≤ 2M`).

    The Bound carries the absolute terms as extra magnitude, `M + (G + 6 γ(·, u_64) M) / factor`,
    so that the tolerance rule's `factor · magnitude` is exactly their sum.
    """
    batch, d_in = x.shape[0], x.shape[-1]
    M = batch * np.linalg.norm(np.abs(x).max(axis=0), axis=-1)
    k_acc, k_store = weiszfeld_step_chain(batch, d_in), 1
    u, u_acc, u64 = UNIT_ROUNDOFF[dtype], UNIT_ROUNDOFF[ACCUMULATOR[dtype]], UNIT_ROUNDOFF["float64"]
    factor = gamma(k_store, u) + gamma(k_acc, u_acc) + gamma(k_store + k_acc, u64)
    evaluation = 6 * gamma(d_in + batch + 4, u64) * M
    return Bound(np.asarray(M + (np.asarray(gap) + evaluation) / factor), k_acc, k_store)


def objective_projection(case: Case, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The geometric-median row's `compare_via` (INIT-11): the returned point `b_dec` is replaced by
    its float64 objective `Σ_b ‖x_b − b_dec‖`; its certified gap rides along (not compared) for the
    bound. Applied to both sides."""
    x, y = case.arrays["x"], np.asarray(out["b_dec"], dtype=np.float64)
    return {
        "b_dec": oracle_init.geometric_median_objective(x, y),
        "certified_gap": oracle_init.certified_gap(x, y),
    }


def geometric_median_bounds(case: Case, projected: dict[str, np.ndarray]) -> dict[str, Bound | None]:
    """The row's bounds: the objective bound above, with the oracle's certified gap."""
    return {
        "b_dec": geometric_median_objective_bound(case.arrays["x"], projected["certified_gap"], case.dtype)
    }


def b_dec_mean_bounds(case: Case, out: Outputs) -> Bounds:
    return {"b_dec": b_dec_mean_bound(case.arrays["x"])}


def starts_on_a_point(case: Case) -> bool:
    """INIT-4's case: a plain Weiszfeld iterate from the mean (the first one included: a batch of one
    point, or of equal points) comes within the dtype's rounding of a data point of its instance,
    where an unguarded step divides by a zero (or rounded-to-zero) distance. Simulated in float64
    for 100 steps (dictionary_learning's `max_iter`)."""
    pts = np.moveaxis(case.arrays["x"], 0, -2)
    near = 64 * UNIT_ROUNDOFF[case.dtype]
    y = pts.mean(axis=-2)
    for _ in range(100):
        distance = np.linalg.norm(pts - y[..., None, :], axis=-1)
        scale = np.linalg.norm(pts, axis=-1) + np.linalg.norm(y, axis=-1)[..., None]
        if np.any(distance <= near * scale):
            return True
        weights = 1.0 / distance
        y = (weights[..., None] * pts).sum(axis=-2) / weights.sum(axis=-1)[..., None]
    return False


ROWS = (
    Operation(
        name="b_dec_mean",
        summary="b_dec = (1/B) Σ_b x_b, per instance",
        clauses=("INIT-1", "INIT-10", "INIT-12"),
        arrays=("x",),
        outputs=("b_dec",),
        cases=init_cases,
        bounds=b_dec_mean_bounds,
    ),
    Operation(
        name="geometric_median",
        summary="b_dec = argmin Σ_b ‖x_b − b_dec‖, compared through that objective",
        clauses=("INIT-2", "INIT-3", "INIT-4", "INIT-5", "INIT-6", "INIT-9", "INIT-11", "INIT-12"),
        arrays=("x",),
        outputs=("b_dec",),
        cases=init_cases,
        bounds=geometric_median_bounds,
        compare_via=objective_projection,
        edge_clauses=(("INIT-4", starts_on_a_point),),
    ),
)


def _weiszfeld_stopped(op: Operation, case: Case, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    y = oracle_init.weiszfeld_stopped(case.arrays["x"], max_iter=params["max_iter"], tol=params["tol"])
    return {"b_dec": y}


def weiszfeld_stopped_bounds(
    op: Operation, case: Case, projected: dict[str, np.ndarray], params: Mapping[str, Any]
) -> dict[str, Bound | None]:
    """EQ-11's bounds: the row's objective bound (INIT-11) with the slack of the stopping rule in
    place of the oracle's certified gap. Two runs of the rule (the library's in its dtype, the
    reference's in float64) stop within one step shorter than `tol` of each other, so their points
    differ by at most `2 tol` and, f being B-Lipschitz, their objectives by `2 B tol`; an iterate
    stopped early (three steps, say) is further off and fails."""
    x = case.arrays["x"]
    slack = np.full(np.shape(projected["b_dec"]), 2.0 * x.shape[0] * params["tol"])
    return {"b_dec": geometric_median_objective_bound(x, slack, case.dtype)}


EQUIVALENCES = (
    Equivalence(
        name="weiszfeld_stopped",
        formula="plain Weiszfeld steps from the mean, stopped after max_iter steps or at the first step "
        "shorter than tol (an approximation of INIT-2's minimiser, to a stated tolerance)",
        clause="EQ-11",
        rows=("geometric_median",),
        reference=_weiszfeld_stopped,
        bounds=weiszfeld_stopped_bounds,
        parameters={"max_iter": 100, "tol": 1e-5},
        requires=("max_iter", "tol"),
        about=("INIT-2", "INIT-3", "INIT-6"),
    ),
)
