"""Resampling: the per-example loss and the probabilities (RES-1..RES-3), the samplers of the oracle
and of refsae.torch (RES-4, RES-5) and the statistical tests that check them (RES-6).

The probabilities are also checked against the oracle by the table row `resampling_probabilities`,
whose power the registry's mutants show (`refsae.conform.mutants`, `tests/test_checker_power.py`).
A sampler cannot be compared draw by draw (NumPy and torch use different generators), so each is
tested in distribution: Pearson's chi-square goodness of fit against the exact law, at a false-alarm
rate of `chi_square.FALSE_ALARM` = 1e-6 per statistic, with fixed seeds so that CI is deterministic.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from refsae import oracle
from refsae import torch as rt
from refsae.cases import Case
from refsae.checking.rows.resampling import resampling_cases
from refsae.checking.strategies import TORCH_DTYPES
from refsae.checking.tolerances import UNIT_ROUNDOFF, gamma
from refsae.oracle.resampling import ResamplingLoss
from tests import chi_square

SIDES = ("oracle", "torch")
SEED = 20_240_601
"""Every statistical test draws from generators seeded with this (NumPy) or `torch.manual_seed`."""

U64 = UNIT_ROUNDOFF["float64"]


def _probabilities(side: str, x: np.ndarray, x_hat: np.ndarray, f: np.ndarray, **options: Any) -> np.ndarray:
    if side == "oracle":
        return oracle.resampling_probabilities(x, x_hat, f, **options)
    t = [torch.from_numpy(np.array(a)) for a in (x, x_hat, f)]
    return rt.resampling_probabilities(*t, **options).numpy()


def _sample(side: str, p: np.ndarray, n: int, *, replacement: bool, seed: int = SEED) -> np.ndarray:
    """Draw with a fresh generator seeded `seed`: the oracle's (NumPy) or torch's sampler."""
    if side == "oracle":
        return oracle.sample_examples(p, n, replacement=replacement, generator=np.random.default_rng(seed))
    g = torch.Generator().manual_seed(seed)
    return rt.sample_examples(torch.from_numpy(np.array(p)), n, replacement=replacement, generator=g).numpy()


def _order_tolerance(x: np.ndarray, f: np.ndarray) -> float:
    """Relative difference of two float64 evaluations of p that differ in rounding only: ℓ is a sum
    of d_in + d_sae + 1 non-negative terms (relative error γ(d_in + d_sae + 4) either way), enters p
    squared, and is normalised over B terms; twice that covers both evaluations."""
    return gamma(2 * (x.shape[0] + x.shape[-1] + f.shape[-1]) + 16, U64)


# --- RES-1: the per-example loss ------------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
def test_the_per_example_loss_is_the_summed_squared_residual_plus_lambda_times_the_l1_norm(side: str) -> None:
    """RES-1: `total` adds λ Σ_j |f_j| to Σ_d (x_hat − x)²; `reconstruction` leaves it out."""
    x = np.array([[1.0, 2.0], [0.0, 0.0], [3.0, 3.0]])
    x_hat = np.array([[1.0, 0.0], [1.0, 1.0], [3.0, 3.0]])
    f = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 0.5, 0.0]])
    cases: tuple[tuple[ResamplingLoss, list[float]], ...] = (
        ("total", [5.5, 2.0, 0.25]),
        ("reconstruction", [4.0, 2.0, 0.0]),
    )
    for loss, expected in cases:
        if side == "oracle":
            ell = oracle.per_example_loss(x, x_hat, f, l1_coefficient=1.0 / 2, loss=loss)
        else:
            t = [torch.from_numpy(a) for a in (x, x_hat, f)]
            ell = rt.per_example_loss(*t, l1_coefficient=1.0 / 2, loss=loss).numpy()
        assert ell.tolist() == expected
    p = _probabilities(side, x, x_hat, f, l1_coefficient=0.5, loss="reconstruction")
    assert p.tolist() == [0.8, 0.2, 0.0]


@given(resampling_cases("float64"), st.sampled_from(("mean", "fvu")))
def test_the_mean_and_fvu_conventions_are_the_sum_convention_with_a_rescaled_coefficient(
    case: Case, convention: str
) -> None:
    """RES-1: a per-example loss R_b/c + λ S_b (c = d_in for `mean`, the batch variance V for `fvu`)
    is (R_b + cλ S_b)/c, and a per-instance factor cancels in p; so the probabilities of any
    reconstruction convention are those of `sum` with coefficient cλ."""
    x, x_hat, f = (case.arrays[k] for k in ("x", "x_hat", "f"))
    lam = case.options["l1_coefficient"]
    if convention == "mean":
        c = np.full(x.shape[1:-1], float(x.shape[-1]))
    else:
        c = oracle.total_variance(x)
        if np.any(c == 0):
            return
    ell = ((x_hat - x) ** 2).sum(-1) / c + lam * np.abs(f).sum(-1)
    squared = ell**2
    total = squared.sum(0)
    direct = np.where(total > 0, squared / np.where(total > 0, total, 1.0), 1.0 / x.shape[0])
    for index in np.ndindex(*x.shape[1:-1]):
        at = (slice(None), *index)
        p = oracle.resampling_probabilities(
            x[at], x_hat[at], f[at], l1_coefficient=float(c[index] * lam), loss="total"
        )
        tolerance = _order_tolerance(x, f)
        assert np.all(np.abs(p - direct[at]) <= tolerance * np.maximum(p, direct[at]))


def test_the_decoder_norm_penalty_is_the_l1_penalty_of_latents_scaled_by_the_row_norms() -> None:
    """RES-1, LOSS-5: Σ_j |f_j| ‖W_dec_j‖ = Σ_j |f_j ‖W_dec_j‖|, so `l1_decoder_norm` is served by
    passing f · ‖W_dec_j‖ as f."""
    rng = np.random.default_rng(SEED)
    x, x_hat = rng.standard_normal((2, 5, 3))
    f, W_dec = np.abs(rng.standard_normal((5, 4))), rng.standard_normal((4, 3))
    scaled = f * np.linalg.norm(W_dec, axis=-1)
    ell = oracle.per_example_loss(x, x_hat, scaled, l1_coefficient=0.25)
    per_row = [
        oracle.reconstruction_loss(x[b : b + 1], x_hat[b : b + 1])
        + 0.25 * oracle.sparsity_loss(f[b : b + 1], W_dec, sparsity="l1_decoder_norm")
        for b in range(5)
    ]
    assert np.all(np.abs(ell - np.array(per_row)) <= gamma(3 + 4 + 4, U64) * ell)


# --- RES-2: the probabilities ---------------------------------------------------------------------


@given(resampling_cases("float64"))
def test_probabilities_are_non_negative_sum_to_one_per_instance_and_follow_the_squared_losses(
    case: Case,
) -> None:
    """RES-2, RES-3: p >= 0, Σ_b p_b = 1 per instance, p_b = ℓ_b² / Σ_c ℓ_c², p_b = 0 iff ℓ_b = 0
    (unless the whole instance has zero loss: then 1/B)."""
    a = case.arrays
    p = oracle.resampling_probabilities(a["x"], a["x_hat"], a["f"], **case.options)
    ell = oracle.per_example_loss(a["x"], a["x_hat"], a["f"], **case.options)
    batch = p.shape[0]
    assert p.shape == ell.shape and np.all(p >= 0)
    assert np.all(np.abs(p.sum(axis=0) - 1) <= gamma(2 * batch + 6, U64))
    squared = ell**2
    total = squared.sum(axis=0)
    zero = total == 0
    direct = np.where(zero, 1.0 / batch, squared / np.where(zero, 1.0, total))
    assert np.all(np.abs(p - direct) <= gamma(2 * batch + 8, U64) * np.maximum(p, direct))
    assert np.array_equal(p == 0, (ell == 0) & ~zero)


@given(resampling_cases("float64"))
def test_each_instance_gets_the_probabilities_it_would_get_alone(case: Case) -> None:
    """RES-2, NOT-2: normalisation is per instance, over the batch axis only."""
    a = case.arrays
    p = oracle.resampling_probabilities(a["x"], a["x_hat"], a["f"], **case.options)
    for index in np.ndindex(*p.shape[1:]):
        at = (slice(None), *index)
        alone = oracle.resampling_probabilities(a["x"][at], a["x_hat"][at], a["f"][at], **case.options)
        # NumPy may sum a strided slice in another order: only rounding may differ.
        assert np.all(np.abs(alone - p[at]) <= _order_tolerance(a["x"], a["f"]) * p[at])


@pytest.mark.parametrize("side", SIDES)
@given(resampling_cases("float32"), st.integers(-8, 8))
def test_scaling_the_inputs_by_a_power_of_two_leaves_reconstruction_probabilities_unchanged(
    side: str, case: Case, k: int
) -> None:
    """RES-2: ℓ scales by 4^k exactly, q = ℓ/max ℓ not at all, so p is bit-for-bit the same."""
    a = case.arrays
    p = _probabilities(side, a["x"], a["x_hat"], a["f"], l1_coefficient=0.0, loss="reconstruction")
    scaled = _probabilities(
        side, a["x"] * 2.0**k, a["x_hat"] * 2.0**k, a["f"], l1_coefficient=0.0, loss="reconstruction"
    )
    np.testing.assert_array_equal(p, scaled)


# --- RES-3: zero losses, extreme losses -----------------------------------------------------------


@pytest.mark.parametrize("dtype", list(TORCH_DTYPES))
@pytest.mark.parametrize("loss", ["total", "reconstruction"])
def test_a_batch_with_zero_loss_gets_uniform_probabilities_in_every_dtype(
    dtype: str, loss: ResamplingLoss
) -> None:
    """RES-3: zero-norm inputs reconstructed exactly with no active latent: p = 1/B (rounded once to
    the dtype), never NaN; an instance with zero loss beside one without keeps its uniform p."""
    x = np.zeros((5, 2, 3))
    x_hat = x.copy()
    x_hat[:, 1, 0] = np.arange(5.0)
    f = np.zeros((5, 2, 4))
    p = oracle.resampling_probabilities(x, x_hat, f, l1_coefficient=1.0, loss=loss)
    assert p[:, 0].tolist() == [0.2] * 5
    assert p[:, 1].tolist() == (np.arange(5.0) ** 4 / np.sum(np.arange(5.0) ** 4)).tolist()
    t = TORCH_DTYPES[dtype]
    pt = rt.resampling_probabilities(
        *(torch.from_numpy(a).to(t) for a in (x, x_hat, f)), l1_coefficient=1.0, loss=loss
    )
    assert pt.dtype == t and not bool(pt.isnan().any())
    assert pt[:, 0].tolist() == torch.full((5,), 0.2, dtype=t).tolist()


@pytest.mark.parametrize("side", SIDES)
def test_losses_too_small_or_too_large_to_square_still_give_probabilities(side: str) -> None:
    """RES-2, RES-3: ℓ² of 1e-200 underflows and of 1e200 overflows in float64; the normalisation by
    max ℓ squares only ratios, so p stays exact and finite."""
    x = np.zeros((3, 1))
    for scale in (1e-100, 1e100):
        x_hat = np.array([[1.0], [2.0], [0.0]]) * scale
        p = _probabilities(side, x, x_hat, np.zeros((3, 1)), l1_coefficient=0.0)
        assert np.all(np.abs(p - np.array([1.0, 16.0, 0.0]) / 17) <= gamma(8, U64))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_torch_probabilities_from_underflowing_squares_sum_to_one(dtype: str) -> None:
    """RES-3: residuals of 2^-20 square to 2^-40, below float16's range; still no NaN."""
    t = TORCH_DTYPES[dtype]
    x = torch.zeros(4, 8, dtype=t)
    x_hat = torch.full((4, 8), 2.0**-20, dtype=t) * torch.arange(4, dtype=t)[:, None]
    p = rt.resampling_probabilities(x, x_hat, torch.zeros(4, 2, dtype=t), l1_coefficient=0.0)
    assert not bool(p.isnan().any()) and float(p.double().sum()) == pytest.approx(
        1.0, abs=4 * UNIT_ROUNDOFF[dtype]
    )


@pytest.mark.parametrize("side", SIDES)
def test_a_per_example_loss_that_overflows_raises_value_error(side: str) -> None:
    """RES-3: an infinite ℓ_b would give inf/inf; it raises instead."""
    x = np.zeros((2, 2))
    with pytest.raises(ValueError, match="overflows"):
        _probabilities(side, x, np.full((2, 2), 1e200), np.zeros((2, 1)), l1_coefficient=0.0)


def test_a_per_example_loss_that_overflows_float16_raises_value_error() -> None:
    """RES-3: in float16 a residual of 300 already squares past 65504."""
    with pytest.raises(ValueError, match=r"overflows in torch\.float16"):
        rt.resampling_probabilities(
            torch.zeros(2, 2, dtype=torch.float16),
            torch.full((2, 2), 300.0, dtype=torch.float16),
            torch.zeros(2, 1, dtype=torch.float16),
            l1_coefficient=0.0,
        )


@pytest.mark.parametrize("side", SIDES)
def test_an_unknown_loss_name_raises_listing_the_known_ones(side: str) -> None:
    """RES-1: the loss convention is a closed set (`total`, `reconstruction`)."""
    from jaxtyping import TypeCheckError

    with pytest.raises((ValueError, TypeCheckError), match="reconstruction"):
        _probabilities(
            side, np.zeros((2, 2)), np.ones((2, 2)), np.zeros((2, 1)), l1_coefficient=0.0, loss="l2"
        )


# --- RES-4, RES-6: the law of each sampler --------------------------------------------------------

LAW = np.array([0.05, 0.1, 0.0, 0.15, 0.3, 0.4])
"""Six examples with distinct probabilities, one of them 0."""


def _sequence_law(p: np.ndarray, n: int) -> dict[tuple[int, ...], float]:
    """Exact probabilities of every ordered sequence of n distinct indices under successive sampling:
    Π_k p_{i_k} / (1 − Σ_{l<k} p_{i_l})."""
    law = {}
    for seq in itertools.permutations(range(len(p)), n):
        prob, removed = 1.0, 0.0
        for i in seq:
            prob *= p[i] / (1.0 - removed)
            removed += p[i]
        law[seq] = prob
    return law


def _sequence_counts(draws: np.ndarray, law: dict[tuple[int, ...], float]) -> tuple[list[int], list[float]]:
    observed = dict.fromkeys(law, 0)
    for row in map(tuple, draws.tolist()):
        observed[row] += 1  # a KeyError here is a repeated index: not a draw without replacement
    return [observed[s] for s in law], list(law.values())


@pytest.mark.parametrize("side", SIDES)
def test_draws_with_replacement_follow_the_probabilities_of_each_instance(side: str) -> None:
    """RES-4, RES-6: 60 000 draws per instance; three instances with different laws (the probabilities
    reversed, and uniform), one chi-square test each; the zero-probability example is never drawn."""
    p = np.stack([LAW, LAW[::-1], np.full(6, 1 / 6)], axis=1)
    draws = _sample(side, p, 60_000, replacement=True)
    assert draws.shape == (3, 60_000) and draws.dtype == np.int64
    for i in range(3):
        counts = np.bincount(draws[i], minlength=6)
        assert chi_square.goodness_of_fit(counts, p[:, i]) == ""


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(("p", "n"), [([0.2, 0.3, 0.5], 3), ([0.1, 0.2, 0.3, 0.4], 2)], ids=["3of3", "2of4"])
def test_draws_without_replacement_follow_the_successive_sampling_law_of_whole_sequences(
    side: str, p: list[float], n: int
) -> None:
    """RES-4, RES-6: 20 000 independent samples (one per instance of a replicated instance axis);
    every ordered sequence is a cell whose exact probability is Π p_i / (1 − Σ earlier p); this
    fixes the first draw's law, the inclusion frequencies, and every later draw's."""
    replicated = np.repeat(np.array(p)[:, None], 20_000, axis=1)
    draws = _sample(side, replicated, n, replacement=False)
    assert draws.shape == (20_000, n)
    observed, expected = _sequence_counts(draws, _sequence_law(np.array(p), n))
    assert chi_square.goodness_of_fit(observed, expected) == ""


@pytest.mark.parametrize("side", SIDES)
def test_the_first_draw_without_replacement_follows_the_probabilities(side: str) -> None:
    """RES-4, RES-6: the first of n = 4 draws from six examples is distributed as p (20 000 samples)."""
    replicated = np.repeat(LAW[:, None], 20_000, axis=1)
    draws = _sample(side, replicated, 4, replacement=False)
    assert np.all(np.sort(draws, axis=1)[:, 1:] != np.sort(draws, axis=1)[:, :-1])  # distinct
    assert chi_square.goodness_of_fit(np.bincount(draws[:, 0], minlength=6), LAW) == ""


def test_the_goodness_of_fit_test_rejects_a_sampler_drawing_in_proportion_to_the_loss_not_its_square() -> (
    None
):
    """RES-6: the test has power: probabilities ∝ ℓ (√p) instead of ℓ² fail, on the same seed."""
    wrong = np.sqrt(LAW)
    draws = oracle.sample_examples(wrong, 60_000, replacement=True, generator=np.random.default_rng(SEED))
    assert "chi-square" in chi_square.goodness_of_fit(np.bincount(draws, minlength=6), LAW)


def test_the_goodness_of_fit_test_rejects_later_draws_that_ignore_the_probabilities() -> None:
    """RES-6: a sampler whose second draw is uniform over the rest fails the sequence test."""
    rng = np.random.default_rng(SEED)
    p = np.array([0.1, 0.2, 0.3, 0.4])
    first = oracle.sample_examples(np.repeat(p[:, None], 20_000, axis=1), 1, replacement=False, generator=rng)
    offsets = rng.integers(1, 4, size=(20_000, 1))
    draws = np.concatenate([first, (first + offsets) % 4], axis=1)
    observed, expected = _sequence_counts(draws, _sequence_law(p, 2))
    assert "chi-square" in chi_square.goodness_of_fit(observed, expected)


# --- RES-4, RES-5: sizes, edge cases, determinism -------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("replacement", [True, False])
def test_the_same_seed_gives_the_same_draws_and_a_scaled_probability_vector_the_same_law(
    side: str, replacement: bool
) -> None:
    """RES-4: draws are a function of the generator state; probabilities need not sum to 1 (a power
    of two times p gives bit-identical normalised weights, hence identical draws)."""
    p = np.stack([LAW, LAW[::-1]], axis=1)
    once = _sample(side, p, 5, replacement=replacement)
    np.testing.assert_array_equal(once, _sample(side, p, 5, replacement=replacement))
    np.testing.assert_array_equal(once, _sample(side, 4.0 * p, 5, replacement=replacement))


def test_the_oracle_draws_without_replacement_one_at_a_time_so_a_prefix_is_a_smaller_sample() -> None:
    """RES-4: successive sampling: the first k of n draws are exactly the draws of n = k."""
    five = _sample("oracle", LAW, 5, replacement=False)
    for k in range(1, 5):
        np.testing.assert_array_equal(five[:k], _sample("oracle", LAW, k, replacement=False))


@pytest.mark.parametrize("side", SIDES)
def test_more_dead_latents_than_examples_is_fine_with_replacement_and_an_error_without(side: str) -> None:
    """RES-5, DEAD-4: every one of 10 latents dead, a batch of 4 with one perfect example: with
    replacement 10 draws among the 3 examples of positive loss; without, a clear ValueError; none
    dead draws nothing."""
    x = np.zeros((4, 2))
    x_hat = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0], [1.0, 1.0]])
    p = _probabilities(side, x, x_hat, np.zeros((4, 10)), l1_coefficient=0.0)
    dead = oracle.dead_by_steps(np.full(10, 7), 3)
    n = int(dead.sum())
    draws = _sample(side, p, n, replacement=True)
    assert draws.shape == (10,) and set(draws.tolist()) <= {0, 1, 3}
    with pytest.raises(ValueError, match="without replacement: an instance has only 3"):
        _sample(side, p, n, replacement=False)
    assert sorted(_sample(side, p, 3, replacement=False).tolist()) == [0, 1, 3]
    assert _sample(side, p, 0, replacement=False).shape == (0,)
    assert _sample(side, np.stack([p, p], axis=1), 0, replacement=True).shape == (2, 0)


BAD_WEIGHTS: list[tuple[np.ndarray, int, str]] = [
    (np.array([0.5, -0.1, 0.6]), 1, "probabilities must be >= 0"),
    (np.array([0.5, np.nan, 0.5]), 1, "probabilities contains NaN or Inf"),
    (np.array([0.5, np.inf, 0.5]), 1, "probabilities contains NaN or Inf"),
    (np.array([[0.5, 0.0], [0.5, 0.0]]), 1, "every instance needs an example with probability > 0"),
    (np.zeros((0, 2)), 1, "empty batch"),
    (np.array([0.5, 0.5]), -1, "n must be an integer >= 0"),
]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize(("p", "n", "message"), BAD_WEIGHTS, ids=[b[2] for b in BAD_WEIGHTS])
def test_invalid_probabilities_or_sizes_raise_value_error(
    side: str, replacement: bool, p: np.ndarray, n: int, message: str
) -> None:
    """RES-5, NOT-5, NOT-6."""
    with pytest.raises(ValueError, match=message):
        _sample(side, p, n, replacement=replacement)


@pytest.mark.parametrize("dtype", list(TORCH_DTYPES))
def test_the_torch_sampler_takes_probabilities_in_any_dtype_and_returns_int64(dtype: str) -> None:
    """RES-4: low-precision probabilities are widened to float64 before drawing."""
    p = torch.tensor([0.25, 0.0, 0.75], dtype=TORCH_DTYPES[dtype])
    draws = rt.sample_examples(p, 50, replacement=True, generator=torch.Generator().manual_seed(SEED))
    assert draws.dtype == torch.int64 and draws.shape == (50,) and 1 not in draws.tolist()


# --- the chi-square machinery itself (RES-6) ------------------------------------------------------

# The exponent −x/2 + (k/2)·ln(x/2) − lnΓ(k/2) is rounded to a few u·x (x <= 200 here); exp turns
# that absolute error into a relative one. 1000 roundings of u cover it with room to spare.
SF_TOLERANCE = gamma(1000, U64)

# Printed chi-square tables give three decimals: they are exact to half a unit in the last place.
TABLE_HALF_UNIT = 0.0005


@pytest.mark.parametrize(
    "x", [1e-3, 0.1, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 50.0, 80.0, 200.0]
)
def test_the_chi_square_tail_matches_its_closed_forms(x: float) -> None:
    """RES-6: even degrees of freedom 2k: e^{-x/2} Σ_{i<k} (x/2)^i / i!; one: erfc √(x/2); three:
    erfc √(x/2) + √(2x/π) e^{-x/2}."""
    for k in range(1, 40):
        exact = math.exp(-x / 2) * sum((x / 2) ** i / math.factorial(i) for i in range(k))
        assert abs(chi_square.chi2_sf(x, 2 * k) - exact) <= SF_TOLERANCE * exact
    one = math.erfc(math.sqrt(x / 2))
    three = one + math.sqrt(2 * x / math.pi) * math.exp(-x / 2)
    assert abs(chi_square.chi2_sf(x, 1) - one) <= SF_TOLERANCE * one
    assert abs(chi_square.chi2_sf(x, 3) - three) <= SF_TOLERANCE * three


@pytest.mark.parametrize(
    ("alpha", "dof", "table"),
    [
        (0.05, 1, 3.841),
        (0.025, 1, 5.024),
        (0.05, 5, 11.070),
        (0.01, 10, 23.209),
        (0.001, 30, 59.703),
        (0.05, 100, 124.342),
    ],
)
def test_chi_square_critical_values_match_the_printed_tables(alpha: float, dof: int, table: float) -> None:
    """RES-6: the quantile inverts the tail to float64 resolution and agrees with standard tables."""
    critical = chi_square.chi2_critical(alpha, dof)
    assert abs(critical - table) <= TABLE_HALF_UNIT
    assert abs(chi_square.chi2_sf(critical, dof) - alpha) <= SF_TOLERANCE * alpha


def test_the_false_alarm_critical_values_are_exact_where_the_tail_has_a_closed_form() -> None:
    """RES-6: with two degrees of freedom the tail is e^{-x/2}, so the 1e-6 critical value is
    −2 ln 1e-6; with one it is the square of the normal quantile (checked through erfc)."""
    two = chi_square.chi2_critical(chi_square.FALSE_ALARM, 2)
    assert abs(two - (-2 * math.log(chi_square.FALSE_ALARM))) <= SF_TOLERANCE * two
    one = chi_square.chi2_critical(chi_square.FALSE_ALARM, 1)
    assert (
        abs(math.erfc(math.sqrt(one / 2)) - chi_square.FALSE_ALARM) <= SF_TOLERANCE * chi_square.FALSE_ALARM
    )
