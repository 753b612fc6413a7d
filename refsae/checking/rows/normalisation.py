"""Activation normalisation (normalisation.md): case strategies, error bounds and rows of
`activation_norm_factor`, `constant_norm_rescale`, `layer_norm` and `layer_norm_inverse`.

Case strategies (NORM-10):

- `factor_cases`: a sample x (STR-3, STR-5, STR-9) with at least one non-zero token per instance
  (NORM-5), sometimes some zero tokens, and the target drawn (`norm_target`, NORM-2, NORM-3).
- `rescale_cases`: x with, a quarter of the time, some tokens exactly zero (NORM-7).

In both, every non-zero token's ‖x_b‖² is at least d_in ν / u of the accumulator (NORM-10): below it
the squares underflow and the dtype computes the token as zero, a range limit of the dtype (as
overflow is, STR-4), not of the definition.
- `layer_norm_cases`: x with d_in >= 2 whose every token's spread Σ (x_bi − μ_b)² is certain in the
  dtype (larger than twice its allowed error, STR-8's rule for a quantity that is divided by or
  square-rooted), and ε drawn from SAELens's 1e-5 and two others.
- `inverse_cases`: y, μ and σ >= 0 per token, and ε.
"""

from __future__ import annotations

import dataclasses
from typing import get_args

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking import bounds
from refsae.checking import strategies as rs
from refsae.checking.cases import finish
from refsae.checking.operation import Bounds, Operation, Outputs
from refsae.checking.tolerances import (
    ACCUMULATOR,
    SMALLEST_NORMAL,
    UNIT_ROUNDOFF,
    Bound,
    add,
    allowed_error,
    leaf,
    magnitude_floor,
    mul,
)
from refsae.conventions import OPERATION_AXES, NormTarget
from refsae.oracle.normalisation import LAYER_NORM_EPS

EPSILONS = (LAYER_NORM_EPS, 1e-3, 0.25)
"""ε of `layer_norm`: SAELens's, and two that make σ + ε differ from σ in every dtype."""


def _zero_tokens(draw: st.DrawFn, x: np.ndarray) -> np.ndarray:
    """x with some tokens set exactly to zero, a quarter of the time."""
    if draw(st.integers(0, 3)) > 0:
        return x
    zero = np.array(draw(st.lists(st.booleans(), min_size=x.shape[0], max_size=x.shape[0])), dtype=bool)
    x = x.copy()
    x[zero] = 0.0
    return x


def _norms_in_range(x: np.ndarray, dtype: str) -> bool:
    """Every token's ‖x_b‖² is 0 or at least d_in ν / u of the accumulator (its squares do not
    underflow to a zero token, NORM-10)."""
    acc = ACCUMULATOR[dtype]
    squares = (x**2).sum(axis=-1)
    floor = x.shape[-1] * SMALLEST_NORMAL[acc] / UNIT_ROUNDOFF[acc]
    return bool(np.all((squares == 0) | (squares >= floor)))


def has_zero_token(case: Case) -> bool:
    """The case's x has a token that is the zero vector (NORM-7)."""
    return bool(np.any(np.all(case.arrays["x"] == 0, axis=-1)))


def zero_tokens(case: Case) -> dict[str, np.ndarray]:
    """The elements of the outputs at the zero tokens (what NORM-7 is about)."""
    zero = np.all(case.arrays["x"] == 0, axis=-1)
    return {"x_n": np.broadcast_to(zero[..., None], case.arrays["x"].shape), "coefficient": zero}


@st.composite
def factor_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape = draw(rs.shapes())
    x = _zero_tokens(draw, draw(rs.inputs(shape, dtype)))
    x[0, ..., 0] = np.where(np.all(x == 0, axis=(0, -1)), 1.0, x[0, ..., 0])  # NORM-5: one token non-zero
    assume(_norms_in_range(x, dtype))
    options = {"norm_target": draw(rs.convention("norm_target", OPERATION_AXES["norm_target"]))}
    norms = np.linalg.norm(x, axis=-1)
    factors = [oracle.activation_norm_factor(x, norm_target=t) for t in get_args(NormTarget)]
    return finish(
        Case({"x": x}, options, dtype), [norms**2 * shape.batch, np.abs(x) ** 2 * shape.d_in, *factors]
    )


def factor_bounds(case: Case, out: Outputs) -> Bounds:
    """`mean_norm_sqrt_d_in`: the norms, their mean m (B terms, a division), √d_in / m (√d_in rounded,
    a division). `mean_squared_norm_one`: the norms squared, their mean m, a reciprocal square root.
    A quotient c = k / m errs by c Δm / m: magnitude c M_m / m, with the stored norms and means
    floored at the dtype's smallest normal (TOL-7: a subnormal norm errs absolutely)."""
    x, dtype = case.arrays["x"], case.dtype
    batch = x.shape[0]
    factor = np.abs(out["factor"])
    with magnitude_floor(dtype):
        norms = bounds.row_norms(x)
        if case.options["norm_target"] == "mean_norm_sqrt_d_in":
            m = np.linalg.norm(x, axis=-1).mean(axis=0)
            mean = add(norms.magnitude.mean(axis=0), norms, k_acc=batch + 1, k_store=1)
            return {"factor": mean.then(factor * mean.magnitude / m, k_store=2)}
        m = (np.linalg.norm(x, axis=-1) ** 2).mean(axis=0)
        squares = mul(norms.magnitude**2, norms, norms, k_store=1)
        mean = add(squares.magnitude.mean(axis=0), squares, k_acc=batch + 1, k_store=1)
        return {"factor": mean.then(factor * mean.magnitude / m, k_store=1)}


@st.composite
def rescale_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape = draw(rs.shapes())
    x = _zero_tokens(draw, draw(rs.inputs(shape, dtype)))
    assume(_norms_in_range(x, dtype))
    coefficient = oracle.constant_norm_rescale(x)[1]
    return finish(Case({"x": x}, {}, dtype), [np.abs(x) ** 2 * shape.d_in, coefficient])


def rescale_bounds(case: Case, out: Outputs) -> Bounds:
    """a = √d_in / ‖x_b‖ (the norm, √d_in rounded, a division), x_n = a · x (one product); a zero
    token's a = 1 and x_n = 0 are exact."""
    x = case.arrays["x"]
    norms = bounds.row_norms(x)
    a = mul(np.abs(out["coefficient"]), norms, k_store=2)
    zero = norms.magnitude == 0
    a = Bound(np.where(zero, 0.0, a.magnitude), a.k_acc, a.k_store)
    return {
        "x_n": mul(np.abs(x) * np.abs(out["coefficient"])[..., None], leaf(x), a, k_store=1),
        "coefficient": a,
    }


def _layer_norm_parts(x: np.ndarray, eps: float) -> tuple[Bound, Bound, Bound, np.ndarray, np.ndarray]:
    """Bounds of μ, x − μ and Σ (x − μ)², and the exact σ and Σ (x − μ)²."""
    d = x.shape[-1]
    mu = add(np.abs(x).mean(axis=-1), leaf(x), k_acc=d + 1, k_store=1)
    centred = add(np.abs(x) + mu.magnitude[..., None], leaf(x), mu, k_store=1)
    spread = mul((centred.magnitude**2).sum(axis=-1), centred, centred, k_acc=d, k_store=1)
    S = ((x - x.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    return mu, centred, spread, np.sqrt(S / (d - 1)), S


@st.composite
def layer_norm_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape = draw(rs.shapes())
    shape = dataclasses.replace(shape, d_in=max(shape.d_in, 2))
    x = draw(rs.inputs(shape, dtype))
    eps = draw(st.sampled_from(EPSILONS))
    _, _, spread, sigma, S = _layer_norm_parts(x, eps)
    assume(bool(np.all(2 * allowed_error(spread, dtype) < S)))
    ratio = (np.abs(x) + np.abs(x).mean(axis=-1, keepdims=True)) / (sigma + eps)[..., None]
    return finish(Case({"x": x}, {"eps": eps}, dtype), [np.abs(x) ** 2 * shape.d_in, ratio])


def layer_norm_bounds(case: Case, out: Outputs) -> Bounds:
    """μ: a mean; x − μ: a difference; σ = √(S / (d_in − 1)) with S the sum of squares, whose error
    ΔS moves σ by ΔS / (2 (d_in − 1) σ) (magnitude M_S / ((d_in − 1) σ) covers that and σ's own two
    roundings); σ + ε (ε rounded, a sum) and the quotient."""
    x, eps = case.arrays["x"], case.options["eps"]
    d = x.shape[-1]
    mu, centred, spread, sigma, _ = _layer_norm_parts(x, eps)
    sigma_bound = spread.then(spread.magnitude / ((d - 1) * sigma), k_store=2)
    denominator = sigma_bound.then(sigma_bound.magnitude + eps, k_store=2)
    x_n = mul(
        centred.magnitude * denominator.magnitude[..., None] / ((sigma + eps) ** 2)[..., None],
        centred,
        denominator,
        k_store=1,
    )
    return {"x_n": x_n, "mu": mu, "sigma": sigma_bound}


@st.composite
def inverse_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape = draw(rs.shapes())
    shape = dataclasses.replace(shape, d_in=max(shape.d_in, 2))
    y = draw(rs.inputs(shape, dtype))
    scale = draw(rs.scales(dtype))
    mu = draw(rs.arrays((shape.batch, *shape.inst), dtype, scale))
    sigma = np.abs(draw(rs.arrays((shape.batch, *shape.inst), dtype, scale)))
    eps = draw(st.sampled_from(EPSILONS))
    magnitude = np.abs(y) * (sigma + eps)[..., None] + np.abs(mu)[..., None]
    return finish(Case({"y": y, "mu": mu, "sigma": sigma}, {"eps": eps}, dtype), [magnitude])


def inverse_bounds(case: Case, out: Outputs) -> Bounds:
    """σ + ε (ε rounded, a sum), the product with y, the sum with μ."""
    a, eps = case.arrays, case.options["eps"]
    denominator = leaf(a["sigma"]).then(a["sigma"] + eps, k_store=2)
    product = mul(np.abs(a["y"]) * denominator.magnitude[..., None], leaf(a["y"]), denominator, k_store=1)
    return {"x_hat": add(product.magnitude + np.abs(a["mu"])[..., None], product, k_store=1)}


ROWS = (
    Operation(
        name="activation_norm_factor",
        summary="the input scale c estimated from a sample (mean norm √d_in, or mean squared norm 1)",
        clauses=("NORM-1", "NORM-2", "NORM-3", "NORM-10"),
        arrays=("x",),
        outputs=("factor",),
        cases=factor_cases,
        bounds=factor_bounds,
        example={"norm_target": "mean_norm_sqrt_d_in"},
    ),
    Operation(
        name="constant_norm_rescale",
        summary="every token scaled to norm √d_in",
        clauses=("NORM-6", "NORM-7", "NORM-10"),
        arrays=("x",),
        outputs=("x_n", "coefficient"),
        cases=rescale_cases,
        bounds=rescale_bounds,
        edge_clauses=(("NORM-7", has_zero_token),),
        edge_elements={"NORM-7": zero_tokens},
    ),
    Operation(
        name="layer_norm",
        summary="(x − μ) / (σ + ε) per token, σ with Bessel's correction",
        clauses=("NORM-8", "NORM-10"),
        arrays=("x",),
        outputs=("x_n", "mu", "sigma"),
        cases=layer_norm_cases,
        bounds=layer_norm_bounds,
        example={"eps": LAYER_NORM_EPS},
    ),
    Operation(
        name="layer_norm_inverse",
        summary="y · (σ + ε) + μ per token: layer_norm undone on the decoder's output",
        clauses=("NORM-9", "NORM-10"),
        arrays=("y", "mu", "sigma"),
        outputs=("x_hat",),
        cases=inverse_cases,
        bounds=inverse_bounds,
        example={"eps": LAYER_NORM_EPS},
    ),
)
