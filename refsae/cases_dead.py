"""Case strategies for dead-latent detection (DEAD) and resampling probabilities (RES).

Like `refsae.cases`: every float array is representable in the case's dtype (STR-1); integer arrays
(fire counts, steps since fired) are int64 and need no rounding. The strategies aim at the edges of
each rule: latents that never fire, exact zeros and negative values of `f` (DEAD-1), counts and
thresholds that tie exactly (DEAD-2, DEAD-4), examples and whole instances with zero loss (RES-3).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import bounds_dead
from refsae import strategies as rs
from refsae.cases import Case, _within_range
from refsae.oracle.resampling import per_example_loss
from refsae.tolerances import Bound, allowed_error


@st.composite
def latents_with_dead(draw: st.DrawFn, shape: rs.Shape, dtype: str) -> np.ndarray:
    """f of shape (batch, *inst, d_sae): ReLU-like (non-negative with exact zeros) two times in three,
    signed otherwise (a negative value does not fire, DEAD-1); some latents are 0 on every example."""
    scale = draw(rs.scales(dtype))
    f = draw(rs.arrays((shape.batch, *shape.inst, shape.d_sae), dtype, scale)).copy()
    if draw(st.integers(0, 2)) > 0:
        f = np.maximum(f, 0.0)
    silent = draw(st.lists(st.booleans(), min_size=shape.d_sae, max_size=shape.d_sae))
    f[..., np.array(silent, dtype=bool)] = 0.0
    return f


def _rng(draw: st.DrawFn) -> np.random.Generator:
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


@st.composite
def fire_count_cases(draw: st.DrawFn, dtype: str) -> Case:
    """f for `fire_counts` (DEAD-1)."""
    shape = draw(rs.shapes())
    return Case({"f": draw(latents_with_dead(shape, dtype))}, {}, dtype)


PRODUCT_FORM_TIES: tuple[tuple[int, int], ...] = tuple(
    (k, n) for n in range(1, 200) for k in range(n) if (k / n) * n < k
)
"""(k, n) whose float64 quotient k/n, multiplied back by n, rounds below k: there the quotient rule
of DEAD-2 and the product form `count <= threshold * n` disagree at the tie."""


@st.composite
def fraction_cases(draw: st.DrawFn, dtype: str) -> Case:
    """Counts in 0 … n_examples with thresholds at, just beside, and away from a tie k/n; a third of
    the time the threshold is a tie where the product form rounds the other way, with a count on it
    (DEAD-2)."""
    shape = draw(rs.shapes())
    hard = draw(st.integers(0, 2)) == 0
    if hard:
        k, n = draw(st.sampled_from(PRODUCT_FORM_TIES))
    else:
        n = draw(st.integers(1, 64) | st.integers(65, 100_000))
        k = draw(st.integers(0, n - 1))
    tie = k / n
    beside = (float(np.nextafter(tie, 1.0)), max(0.0, float(np.nextafter(tie, -1.0))), 0.0, 0.1, 0.3)
    threshold = (
        tie if hard else draw(st.just(tie) | st.sampled_from(beside) | st.floats(0.0, 1.0, exclude_max=True))
    )
    rng = _rng(draw)
    size = (*shape.inst, shape.d_sae)
    counts = rng.integers(0, n + 1, size)
    special = rng.choice(np.array([0, k, k + 1, n, 3 * n // 10]), size)
    counts = np.where(rng.uniform(size=size) < 0.5, special, counts).astype(np.int64)
    if hard:
        counts.flat[0] = k  # a count exactly at the tie
    return Case({"fire_counts": counts}, {"n_examples": n, "threshold": threshold}, dtype)


@st.composite
def steps_update_cases(draw: st.DrawFn, dtype: str) -> Case:
    """steps_since in 0 … 999 (zeros often) and a batch of latents (DEAD-3)."""
    shape = draw(rs.shapes())
    rng = _rng(draw)
    size = (*shape.inst, shape.d_sae)
    steps = np.where(rng.uniform(size=size) < 0.3, 0, rng.integers(0, 1000, size)).astype(np.int64)
    return Case({"steps_since": steps, "f": draw(latents_with_dead(shape, dtype))}, {}, dtype)


@st.composite
def dead_by_steps_cases(draw: st.DrawFn, dtype: str) -> Case:
    """steps_since around the limit n (n − 1, n, n + 1) and anywhere else (DEAD-4)."""
    shape = draw(rs.shapes())
    n = draw(st.integers(0, 10) | st.integers(11, 100_000))
    rng = _rng(draw)
    size = (*shape.inst, shape.d_sae)
    near = np.maximum(0, n + rng.integers(-1, 2, size))
    steps = np.where(rng.uniform(size=size) < 0.6, near, rng.integers(0, 2 * n + 2, size)).astype(np.int64)
    return Case({"steps_since": steps}, {"n": n}, dtype)


def loss_is_certain(case: Case) -> bool:
    """Per instance, the largest per-example loss m is exactly 0 (then it is 0 in every dtype) or
    exceeds twice its own allowed error (then it is > 0 in the dtype too): the normalisation by m
    never meets a 0 that the oracle does not (RES-3; the analogue of STR-8)."""
    a, o = case.arrays, case.options
    ell = per_example_loss(a["x"], a["x_hat"], a["f"], loss=o["loss"], l1_coefficient=o["l1_coefficient"])
    b = bounds_dead.per_example_loss(a["x"], a["x_hat"], a["f"], o["loss"], o["l1_coefficient"])
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
    rng = _rng(draw)
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
    b = bounds_dead.per_example_loss(x, x_hat, f, loss, lam)
    assume(_within_range(case, [b.magnitude, (np.abs(x) + np.abs(x_hat)) ** 2]))
    assume(loss_is_certain(case))
    return case
