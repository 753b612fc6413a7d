"""The evaluation metrics (evaluation.md): case strategies, error bounds, rows and equivalences of
`cosine_similarity`, `l2_ratio`, `relative_reconstruction_bias`, `explained_variance_per_token`,
`feature_density` and `fraction_above`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking import bounds
from refsae.checking import strategies as rs
from refsae.checking.cases import finish
from refsae.checking.equivalence import Equivalence, calling
from refsae.checking.operation import Bounds, BoundsFn, Operation, Outputs, exact
from refsae.checking.rows.metrics import RECONSTRUCTION_ERRORS
from refsae.checking.tolerances import Bound, add, allowed_error, leaf, mul

TINY_NORM = 2.0**-16
"""A token of this norm (1.5e-5, below SAEBench's guard 1e-4, EQ-13) is put in some float64 and
float32 cases of the x / x_hat rows (STR-11): where the definitions and the guard part."""

SHRINKS = (1.0, 1.0, 0.5, 0.9)
"""x_hat = s · (x + e · noise): mostly unscaled, sometimes shrunk as an L1-trained SAE's is (the
relative reconstruction bias measures s, EVAL-4)."""

DENSITIES = (0.0, 0.01, 0.1, 0.25, 0.5)
"""Density thresholds of `fraction_above`: SAEBench's three (0, 1 %, 10 %) and two others."""


def _nonzero_rows(a: np.ndarray, scale: float) -> np.ndarray:
    """Tokens of norm 0 replaced by `scale` times the first basis vector (the metrics of x and x_hat
    are undefined on a zero token, EVAL-2, EVAL-3)."""
    a = a.copy()
    zero = np.linalg.norm(a, axis=-1) == 0
    a[zero, ..., 0] = scale
    return a


@st.composite
def pair_cases(draw: st.DrawFn, dtype: str, min_batch: int = 1) -> Case:
    """x (STR-3, STR-5, STR-9) and a reconstruction x_hat = s (x + e · noise) of it, no zero token
    in either; in float64 and float32, sometimes one token of x of norm `TINY_NORM` (STR-11)."""
    shape = draw(rs.shapes(min_batch=min_batch))
    scale = draw(rs.scales(dtype))
    x = _nonzero_rows(draw(rs.inputs(shape, dtype)), scale)
    noise = draw(rs.inputs(shape, dtype))
    shrink = draw(st.sampled_from(SHRINKS))
    x_hat = rs.round_to(shrink * (x + noise * draw(st.sampled_from(RECONSTRUCTION_ERRORS))), dtype)
    x_hat = _nonzero_rows(x_hat, scale)
    if dtype in ("float64", "float32") and draw(st.integers(0, 3)) == 0:
        b = draw(st.integers(0, shape.batch - 1))
        x[b] = rs.round_to(x[b] * (TINY_NORM / np.linalg.norm(x[b], axis=-1, keepdims=True)), dtype)
        x = _nonzero_rows(x, TINY_NORM)
    ratio = np.linalg.norm(x_hat, axis=-1) / np.linalg.norm(x, axis=-1)
    squares = ((np.abs(x) + np.abs(x_hat)) ** 2).sum(axis=-1)
    return finish(Case({"x": x, "x_hat": x_hat}, {}, dtype), [ratio, squares, ratio * shape.batch])


def _dot(a: np.ndarray, b: np.ndarray, a_bound: Bound, b_bound: Bound) -> Bound:
    """⟨a_b, b_b⟩ per token: a d-term accumulation, stored; magnitude Σ|a||b|."""
    return mul((np.abs(a) * np.abs(b)).sum(axis=-1), a_bound, b_bound, k_acc=a.shape[-1], k_store=1)


def _batch_mean(per_token: Bound) -> Bound:
    """The mean over the batch: B terms accumulated, a division, stored."""
    batch = per_token.magnitude.shape[0]
    return add(per_token.magnitude.mean(axis=0), per_token, k_acc=batch + 1, k_store=1)


def cosine_similarity_bounds(case: Case, out: Outputs) -> Bounds:
    """p / (‖x‖ ‖x_hat‖) per token: the relative errors add; magnitude Σ|x||x_hat| / (‖x‖ ‖x_hat‖)."""
    x, x_hat = case.arrays["x"], case.arrays["x_hat"]
    dot, nx, nh = _dot(x, x_hat, leaf(x), leaf(x_hat)), bounds.row_norms(x), bounds.row_norms(x_hat)
    per_token = mul(dot.magnitude / (nx.magnitude * nh.magnitude), dot, nx, nh, k_store=2)
    return {"cosine_similarity": _batch_mean(per_token)}


def l2_ratio_bounds(case: Case, out: Outputs) -> Bounds:
    """‖x_hat_b‖ / ‖x_b‖ per token (a quotient of two norms), then the mean."""
    x, x_hat = case.arrays["x"], case.arrays["x_hat"]
    nx, nh = bounds.row_norms(x), bounds.row_norms(x_hat)
    return {"l2_ratio": _batch_mean(mul(nh.magnitude / nx.magnitude, nh, nx, k_store=1))}


def _rrb_parts(x: np.ndarray, x_hat: np.ndarray) -> tuple[Bound, Bound, np.ndarray, np.ndarray]:
    """The bounds of N = E ‖x_hat‖² and D = E ⟨x, x_hat⟩, and their float64 values."""
    numerator = _batch_mean(_dot(x_hat, x_hat, leaf(x_hat), leaf(x_hat)))
    denominator = _batch_mean(_dot(x, x_hat, leaf(x), leaf(x_hat)))
    N = (x_hat**2).sum(axis=-1).mean(axis=0)
    D = (x * x_hat).sum(axis=-1).mean(axis=0)
    return numerator, denominator, N, D


def relative_reconstruction_bias_bounds(case: Case, out: Outputs) -> Bounds:
    """N / D, first order |ΔN|/|D| + N |ΔD| / D² (D's magnitude E Σ|x||x_hat|), then the division."""
    numerator, denominator, N, D = _rrb_parts(case.arrays["x"], case.arrays["x_hat"])
    magnitude = numerator.magnitude / np.abs(D) + N * denominator.magnitude / D**2
    return {"relative_reconstruction_bias": add(magnitude, numerator, denominator, k_store=1)}


@st.composite
def relative_reconstruction_bias_cases(draw: st.DrawFn, dtype: str) -> Case:
    """A pair whose E ⟨x, x_hat⟩ is certain in `dtype`: larger than twice its own allowed error, so
    that its sign and its being non-zero do not depend on rounding (STR-8's rule for a denominator)."""
    case = draw(pair_cases(dtype))
    _, denominator, _, D = _rrb_parts(case.arrays["x"], case.arrays["x_hat"])
    assume(bool(np.all(2 * allowed_error(denominator, dtype) < np.abs(D))))
    return case


def _spread(x: np.ndarray) -> Bound:
    """‖x_b − μ‖² per token: the mean (B terms), the centring, the square, the d-term sum."""
    batch = x.shape[0]
    mean = add(np.abs(x).mean(axis=0, keepdims=True), leaf(x), k_acc=batch + 1, k_store=1)
    centred = add(np.abs(x) + mean.magnitude, leaf(x), mean, k_store=1)
    return mul((centred.magnitude**2).sum(axis=-1), centred, centred, k_acc=x.shape[-1], k_store=1)


def explained_variance_per_token_bounds(case: Case, out: Outputs) -> Bounds:
    """1 − R_b / S_b per token, first order |ΔR|/S + R |ΔS| / S², then the mean over the batch."""
    x, x_hat = case.arrays["x"], case.arrays["x_hat"]
    r = add(np.abs(x) + np.abs(x_hat), leaf(x), leaf(x_hat), k_store=1)
    residual = mul((r.magnitude**2).sum(axis=-1), r, r, k_acc=x.shape[-1], k_store=1)
    spread = _spread(x)
    R = ((x - x_hat) ** 2).sum(axis=-1)
    S = ((x - x.mean(axis=0, keepdims=True)) ** 2).sum(axis=-1)
    ratio = add(residual.magnitude / S + R * spread.magnitude / S**2, residual, spread, k_store=1)
    return {"explained_variance_per_token": _batch_mean(ratio.then(1 + ratio.magnitude, k_store=1))}


@st.composite
def explained_variance_per_token_cases(draw: st.DrawFn, dtype: str) -> Case:
    """A pair (batch >= 2) whose every token's ‖x_b − μ‖² is certain in `dtype` (STR-8 per token)."""
    case = draw(pair_cases(dtype, min_batch=2))
    x = case.arrays["x"]
    S = ((x - x.mean(axis=0, keepdims=True)) ** 2).sum(axis=-1)
    assume(bool(np.all(2 * allowed_error(_spread(x), dtype) < S)))
    return case


@st.composite
def latent_cases(draw: st.DrawFn, dtype: str, densities: bool = False) -> Case:
    """Latents whose latents fire at rates of their own (each latent j keeps a token with probability
    p_j), non-negative or, a third of the time, signed (AbsTopK's); with a `density` threshold."""
    shape = draw(rs.shapes())
    values = draw(rs.arrays((shape.batch, *shape.inst, shape.d_sae), dtype, draw(rs.scales(dtype))))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rates = rng.uniform(size=(*shape.inst, shape.d_sae)) ** draw(st.sampled_from((0.5, 1.0, 4.0)))
    f = np.where(rng.uniform(size=values.shape) < rates, values, 0.0)
    if draw(st.integers(0, 2)) > 0:
        f = np.maximum(f, 0.0)
    options = {"density": draw(st.sampled_from(DENSITIES))} if densities else {}
    return Case({"f": f + 0.0}, options, dtype)


def feature_density_working_bounds(case: Case, out: Outputs) -> Bounds:
    """EVAL-6 computed in floating point (CONF-14): a count over B, then one division."""
    return {"feature_density": Bound(np.abs(out["feature_density"]), case.arrays["f"].shape[0], 1)}


def fraction_above_working_bounds(case: Case, out: Outputs) -> Bounds:
    """EVAL-7 computed in floating point (CONF-14): the comparisons are exact (a density c/B and a
    threshold differ by far more than a rounding unless they are equal), a count over d_sae, a division."""
    return {"fraction_above": Bound(np.abs(out["fraction_above"]), case.arrays["f"].shape[-1], 1)}


def _pair_row(
    name: str, summary: str, clause: str, cases: Callable[[str], st.SearchStrategy[Case]], bounds: BoundsFn
) -> Operation:
    """A row of a metric of (x, x_hat) with one output named as the row."""
    return Operation(
        name=name,
        summary=summary,
        clauses=(clause,),
        arrays=("x", "x_hat"),
        outputs=(name,),
        cases=cases,
        bounds=bounds,
    )


ROWS = (
    _pair_row(
        "cosine_similarity",
        "mean cosine of x and x_hat per token",
        "EVAL-2",
        pair_cases,
        cosine_similarity_bounds,
    ),
    _pair_row("l2_ratio", "mean of ‖x_hat‖ / ‖x‖ per token", "EVAL-3", pair_cases, l2_ratio_bounds),
    _pair_row(
        "relative_reconstruction_bias",
        "E‖x_hat‖² / E⟨x, x_hat⟩",
        "EVAL-4",
        relative_reconstruction_bias_cases,
        relative_reconstruction_bias_bounds,
    ),
    _pair_row(
        "explained_variance_per_token",
        "mean over tokens of 1 − ‖x − x_hat‖² / ‖x − μ‖²",
        "EVAL-5",
        explained_variance_per_token_cases,
        explained_variance_per_token_bounds,
    ),
    Operation(
        name="feature_density",
        summary="fraction of tokens on which each latent fires",
        clauses=("EVAL-6",),
        arrays=("f",),
        outputs=("feature_density",),
        cases=latent_cases,
        bounds=exact("feature_density"),
        working_bounds=feature_density_working_bounds,
    ),
    Operation(
        name="fraction_above",
        summary="fraction of latents denser than a threshold",
        clauses=("EVAL-7",),
        arrays=("f",),
        outputs=("fraction_above",),
        cases=lambda dtype: latent_cases(dtype, densities=True),
        bounds=exact("fraction_above"),
        example={"density": 0.01},
        working_bounds=fraction_above_working_bounds,
    ),
)


def _fraction_above_positive(f: np.ndarray, *, density: float) -> np.ndarray:
    return np.asarray(np.mean(oracle.feature_density_positive(f) > density, axis=-1), dtype=np.float64)


EQUIVALENCES = (
    Equivalence(
        name="norm_guard_1e-4",
        clause="EQ-13",
        rows=("l2_ratio",),
        formula="‖x_hat_b‖ / max'(‖x_b‖): a token with ‖x_b‖ < 1e-4 divided by 1 (SAEBench, SAELens evals)",
        reference=calling({"l2_ratio": oracle.l2_ratio_guarded}),
        about=("EVAL-3",),
    ),
    Equivalence(
        name="fires_if_positive",
        clause="EQ-14",
        rows=("feature_density", "fraction_above"),
        formula="a latent fires where f_bj > 0 (EVAL-6 counts f_bj ≠ 0); equal on non-negative latents",
        reference=calling(
            {"feature_density": oracle.feature_density_positive, "fraction_above": _fraction_above_positive}
        ),
        about=("EVAL-6",),
    ),
)
"""SAEBench's guard of l2_ratio (EQ-13) and its density of positive latents (EQ-14)."""
