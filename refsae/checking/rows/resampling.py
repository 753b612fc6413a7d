"""Resampling probabilities (resampling.md, RES-1..RES-3): case strategy, error bounds and row.

The strategy aims at examples and whole instances with zero loss (RES-3).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking import strategies as rs
from refsae.checking.cases import within_range
from refsae.checking.operation import Bounds, Operation, Outputs
from refsae.checking.rows.dead import seeded_rng
from refsae.checking.tolerances import Bound, add, allowed_error, leaf, mul
from refsae.oracle.resampling import per_example_loss


def loss_is_certain(case: Case) -> bool:
    """Per instance, the largest per-example loss m is exactly 0 (then it is 0 in every dtype) or
    exceeds twice its own allowed error (then it is > 0 in the dtype too): the normalisation by m
    never meets a 0 that the oracle does not (RES-3; the analogue of STR-8)."""
    a, o = case.arrays, case.options
    ell = per_example_loss(a["x"], a["x_hat"], a["f"], loss=o["loss"], l1_coefficient=o["l1_coefficient"])
    b = per_example_loss_bound(a["x"], a["x_hat"], a["f"], o["loss"], o["l1_coefficient"])
    m = ell.max(axis=0)
    allowed = allowed_error(Bound(b.magnitude.max(axis=0), b.k_acc, b.k_store), case.dtype)
    return bool(np.all((m == 0) | (m > 2 * allowed)))


AS_DRAWN, PERFECT, PENALTY_ONLY, ZERO_INPUT = range(4)


EXAMPLE_MIXES: tuple[tuple[float, ...], ...] = (
    (1.0, 0.0, 0.0, 0.0),
    (0.7, 0.3, 0.0, 0.0),
    (0.4, 0.2, 0.2, 0.2),
    (0.5, 0.0, 0.0, 0.5),
)
"""Probabilities of the four kinds of example in `resampling_cases`."""


def balanced_coefficient(x: np.ndarray, x_hat: np.ndarray, f: np.ndarray) -> float:
    """The power of two nearest mean_b Σ_d (x_hat − x)² / mean_b Σ_j |f_j|: a λ at which both terms of
    the total per-example loss matter, as in a trained SAE (1 when either mean is 0)."""
    r, s = float(((x_hat - x) ** 2).sum(-1).mean()), float(np.abs(f).sum(-1).mean())
    if r == 0 or s == 0:
        return 1.0
    return float(2.0 ** np.clip(np.round(np.log2(r / s)), -20, 20))


@st.composite
def resampling_cases(draw: st.DrawFn, dtype: str) -> Case:
    """x, x_hat, f, the loss convention and λ (drawn, or balanced so that the penalty matters);
    x_hat independent of x or near it; some examples, and sometimes whole instances, reconstructed
    perfectly with f = 0 (zero loss, RES-3); some reconstructed perfectly, or zero-norm inputs, with
    active latents (only the penalty left)."""
    loss = draw(st.sampled_from(("total", "reconstruction")))
    # f enters only through Σ_j |f_j|, so d_sae up to 16 tests the same as 64; and two instances
    # show instance bugs as well as three. Both keep cases, and the checker's reproduction note of
    # every case (most of the row's time), small.
    shape = dataclasses.replace(draw(rs.shapes(max_inst=2)), d_sae=draw(st.integers(1, 16)))
    x = draw(rs.inputs(shape, dtype))
    noise = draw(rs.inputs(shape, dtype))
    closeness = draw(st.sampled_from((None, 2.0**-4, 0.5)))
    x_hat = noise if closeness is None else rs.round_to(x + closeness * noise, dtype)
    f = draw(rs.latents(shape, dtype)).copy()
    rng = seeded_rng(draw)
    # Per example: as drawn, perfect (x_hat = x, f = 0: zero loss), or only the penalty left
    # (x_hat = x with active latents; or a zero-norm input x = x_hat = 0 with active latents).
    kind = rng.choice(4, size=(shape.batch, *shape.inst), p=draw(st.sampled_from(EXAMPLE_MIXES)))
    if shape.n_inst is not None and draw(st.integers(0, 3)) == 0:
        kind[:, 0] = PERFECT  # one whole instance with zero loss
    elif draw(st.integers(0, 9)) == 0:
        kind[:] = PERFECT
    x = np.where((kind == ZERO_INPUT)[..., None], 0.0, x)
    x_hat = np.where((kind != AS_DRAWN)[..., None], x, x_hat)
    f = np.where((kind == PERFECT)[..., None], 0.0, f)
    lam = balanced_coefficient(x, x_hat, f) if draw(st.booleans()) else draw(rs.l1_coefficients())
    options = {"loss": loss, "l1_coefficient": lam}
    case = Case({"x": x, "x_hat": x_hat, "f": f}, options, dtype)
    b = per_example_loss_bound(x, x_hat, f, loss, lam)
    assume(within_range(case, [b.magnitude, (np.abs(x) + np.abs(x_hat)) ** 2]))
    assume(loss_is_certain(case))
    return case


def per_example_loss_bound(
    x: np.ndarray, x_hat: np.ndarray, f: np.ndarray, loss: str, l1_coefficient: float
) -> Bound:
    """ℓ_b: d_in squared residuals summed (each residual and square stored), plus under `total` the
    d_sae-term sum of |f| times λ (λ rounded once to the accumulation dtype, as in `bounds.total_loss`)."""
    r = add(np.abs(x_hat) + np.abs(x), leaf(x_hat), leaf(x), k_store=1)
    square = mul(r.magnitude**2, r, r, k_store=1)
    reconstruction = add(square.magnitude.sum(axis=-1), square, k_acc=x.shape[-1], k_store=1)
    if loss == "reconstruction":
        return reconstruction
    l1 = add(np.abs(f).sum(axis=-1), leaf(f), k_acc=f.shape[-1], k_store=1)
    penalty = l1.then(l1_coefficient * l1.magnitude, k_acc=1, k_store=1)
    return add(reconstruction.magnitude + penalty.magnitude, reconstruction, penalty, k_store=1)


def resampling_probabilities_bound(
    x: np.ndarray, x_hat: np.ndarray, f: np.ndarray, ell: np.ndarray, loss: str, l1_coefficient: float
) -> Bound:
    """p_b = q_b² / Σ_c q_c², q_b = ℓ_b / max ℓ; `ell` is the oracle's (float64) per-example loss.

    An instance whose every ℓ_b is 0 computes ℓ = 0 exactly in any dtype (its residuals and
    penalties are exact zeros), takes q = 1 and p = 1/B: one rounding of 1/B, covered by the same
    chains with magnitude 1/B.
    """
    batch = x.shape[0]
    loss_bound = per_example_loss_bound(x, x_hat, f, loss, l1_coefficient)
    m = ell.max(axis=0, keepdims=True)
    zero = m == 0
    safe_m = np.where(zero, 1.0, m)
    largest = Bound(loss_bound.magnitude.max(axis=0, keepdims=True), loss_bound.k_acc, loss_bound.k_store)
    q_value = np.where(zero, 1.0, ell / safe_m)
    q_magnitude = np.where(zero, 1.0, loss_bound.magnitude / safe_m + ell * largest.magnitude / safe_m**2)
    q = add(q_magnitude, loss_bound, largest, k_store=1)
    square = mul(q.magnitude**2, q, q, k_store=1)
    s_value = (q_value**2).sum(axis=0, keepdims=True)
    s = add(square.magnitude.sum(axis=0, keepdims=True), square, k_acc=batch, k_store=1)
    magnitude = square.magnitude / s_value + q_value**2 * s.magnitude / s_value**2
    return add(magnitude, square, s, k_store=1)


def resampling_probabilities_bounds(case: Case, out: Outputs) -> Bounds:
    a, o = case.arrays, case.options
    ell = oracle.per_example_loss(a["x"], a["x_hat"], a["f"], **o)
    return {
        "probabilities": resampling_probabilities_bound(
            a["x"], a["x_hat"], a["f"], ell, o["loss"], o["l1_coefficient"]
        )
    }


def has_instance_without_loss(case: Case) -> bool:
    """RES-3's case: an instance whose every per-example loss is 0 (exact reconstructions and, under
    `loss="total"` with λ > 0, zero latents)."""
    a, o = case.arrays, case.options
    zero = np.all(a["x"] == a["x_hat"], axis=-1)
    if o.get("loss", "total") == "total" and o.get("l1_coefficient", 0.0) > 0:
        zero &= np.all(a["f"] == 0, axis=-1)
    return bool(np.any(np.all(zero, axis=0)))


ROWS = (
    Operation(
        name="resampling_probabilities",
        summary="p_b ∝ ℓ_b² over the batch, per instance; uniform where every ℓ_b = 0",
        clauses=("RES-1", "RES-2", "RES-3"),
        arrays=("x", "x_hat", "f"),
        outputs=("probabilities",),
        cases=resampling_cases,
        bounds=resampling_probabilities_bounds,
        example={"loss": "total", "l1_coefficient": 0.5},
        edge_clauses=(("RES-3", has_instance_without_loss),),
    ),
)
