"""The evaluation metrics beyond the table rows (EVAL-1..EVAL-8, EQ-13, EQ-14): the invariants each
definition promises, how the variants relate, and bad input. The rows themselves are proved against
the oracle by `tests/test_torch_matches_oracle.py`; the checker's power on them by the mutants of
`refsae.conform.mutants.evaluation`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from refsae import oracle
from refsae import torch as rt
from refsae.checking.rows.evaluation import latent_cases, pair_cases
from refsae.checking.tolerances import UNIT_ROUNDOFF, gamma
from tests.float64_agreement import agree

SIDES = ("oracle", "torch")


def _call(side: str, name: str, *arrays: np.ndarray, **options: Any) -> np.ndarray:
    if side == "oracle":
        return np.asarray(getattr(oracle, name)(*arrays, **options))
    result = getattr(rt, name)(*(torch.from_numpy(a) for a in arrays), **options)
    return np.asarray(result.numpy())


@given(pair_cases("float64", min_batch=2), st.sampled_from((0.25, 1.0, 8.0)), st.sampled_from((0.5, 2.0)))
def test_cosine_similarity_ignores_the_scales_of_x_and_x_hat(case: Any, a: float, b: float) -> None:
    """EVAL-2: cos(a·x, b·x̂) = cos(x, x̂) for a, b > 0 (powers of two: the scaling is exact), in [−1, 1]."""
    x, x_hat = case.arrays["x"], case.arrays["x_hat"]
    cos = oracle.cosine_similarity(x, x_hat)
    assert agree(oracle.cosine_similarity(a * x, b * x_hat), cos, np.ones_like(cos), 0)
    assert np.all(
        np.abs(cos) <= 1 + gamma(3 * x.shape[-1] + 8, UNIT_ROUNDOFF["float64"])
    )  # |cos| <= 1, TOL-1


@given(pair_cases("float64"), st.sampled_from((0.5, 0.75, 1.0, 2.0)))
def test_a_reconstruction_scaled_by_s_has_l2_ratio_and_relative_bias_s(case: Any, s: float) -> None:
    """EVAL-3, EVAL-4: x̂ = s·x gives ratio s and γ = s (and cosine 1, EVAL-2)."""
    x = case.arrays["x"]
    d = x.shape[-1]
    for name in ("l2_ratio", "relative_reconstruction_bias"):
        value = getattr(oracle, name)(x, s * x)
        assert agree(value, np.full_like(value, s), np.full_like(value, s), 4 * d + x.shape[0] + 8), name
    cos = oracle.cosine_similarity(x, x)
    assert agree(cos, np.ones_like(cos), np.ones_like(cos), 3 * d + 8)


def test_the_relative_bias_is_a_ratio_of_means_not_a_mean_of_ratios() -> None:
    """EVAL-4: two tokens, one shrunk to 1/2 and one reconstructed exactly: γ = (1 + 16) / (2 + 16)."""
    x = np.array([[2.0, 0.0], [0.0, 4.0]])
    x_hat = np.array([[1.0, 0.0], [0.0, 4.0]])
    assert float(oracle.relative_reconstruction_bias(x, x_hat)) == 8.5 / 9  # exact means, one division
    per_token = ((x_hat**2).sum(-1) / (x * x_hat).sum(-1)).mean()
    assert per_token == 0.75 != float(oracle.relative_reconstruction_bias(x, x_hat))


@given(pair_cases("float64", min_batch=2))
def test_the_per_token_explained_variance_is_one_for_a_perfect_reconstruction(case: Any) -> None:
    """EVAL-5: EV_tok(x, x) = 1, as MET-3's; the two differ on the same reconstruction (next test)."""
    x = case.arrays["x"]
    spread = ((x - x.mean(0)) ** 2).sum(-1)
    if np.all(spread > 0):
        assert np.all(oracle.explained_variance_per_token(x, x) == 1.0)


def test_the_per_token_explained_variance_weights_tokens_near_the_mean() -> None:
    """EVAL-5 against MET-3 (EVAL-1): the token nearest the mean, reconstructed worst, costs EV_tok a third
    of its value and MET-3 a tenth."""
    x = np.array([[1.0, 1.0], [0.0, 4.0], [5.0, 1.0]])
    x_hat = x + np.array([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    assert float(oracle.explained_variance(x, x_hat)) == 1 - 2 / 20  # small integers: exact sums
    assert float(oracle.explained_variance_per_token(x, x_hat)) == 2 / 3  # (0 + 1 + 1) / 3


@given(pair_cases("float64", min_batch=2))
def test_the_one_pass_variance_is_mets_variance_and_the_mse_is_loss_1(case: Any) -> None:
    """EVAL-1: E‖x‖² − ‖E x‖² is MET-3's variance Σ‖x_b − μ‖² / B (within the cancellation of its two
    terms, whose magnitude is E‖x‖²); the MSE is reconstruction_loss under `sum`, which repeating the
    batch leaves unchanged (SAEBench's mse / N would halve)."""
    x, x_hat = case.arrays["x"], case.arrays["x_hat"]
    B, d = x.shape[0], x.shape[-1]
    one_pass = (x**2).sum(-1).mean(0) - (x.mean(0) ** 2).sum(-1)
    two_pass = ((x - x.mean(0)) ** 2).sum(axis=(0, -1)) / B
    assert agree(one_pass, two_pass, (x**2).sum(-1).mean(0), 2 * (B + d) + 8)
    mse = oracle.reconstruction_loss(x, x_hat, reconstruction="sum")
    assert agree(mse, ((x - x_hat) ** 2).sum(-1).mean(0), mse, B + d + 4)
    twice = oracle.reconstruction_loss(
        np.concatenate([x, x]), np.concatenate([x_hat, x_hat]), reconstruction="sum"
    )
    assert agree(twice, mse, mse, 2 * B + d + 4)


def test_averaging_per_batch_values_is_right_for_means_over_tokens_but_not_for_ratios_of_means() -> None:
    """EVAL-8: two equal batches; the mean of their cosines is the cosine of the union, the mean of
    their γ is not the union's γ."""
    x1, h1 = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 1.0], [0.0, 2.0]])
    x2, h2 = np.array([[4.0, 0.0], [0.0, 4.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    union_x, union_h = np.concatenate([x1, x2]), np.concatenate([h1, h2])
    cos = [float(oracle.cosine_similarity(a, b)) for a, b in ((x1, h1), (x2, h2))]
    union_cos = oracle.cosine_similarity(union_x, union_h)
    assert agree(
        np.asarray(np.mean(cos)), union_cos, np.ones_like(union_cos), 3 * 2 + 8
    )  # two means of cosines
    gammas = [float(oracle.relative_reconstruction_bias(a, b)) for a, b in ((x1, h1), (x2, h2))]
    union = float(oracle.relative_reconstruction_bias(union_x, union_h))
    assert gammas == [2.0, 0.25] and union == 2 / 2.75  # (8/4) / (11/4): exact means, one division
    assert np.mean(gammas) != pytest.approx(union)


@given(latent_cases("float64"))
def test_the_mean_density_is_l0_over_d_sae_and_fraction_alive_is_one_minus_the_dead_fraction(
    case: Any,
) -> None:
    """EVAL-6 against MET-1, EVAL-7 against MET-2: the definitions agree on the same batch."""
    f = case.arrays["f"]
    density = oracle.feature_density(f)
    d_sae = f.shape[-1]
    assert agree(density.mean(-1), oracle.l0(f) / d_sae, oracle.l0(f) / d_sae, d_sae + 4)
    counts = np.count_nonzero(f, axis=0)
    alive = oracle.fraction_above(f)
    assert agree(alive, 1 - oracle.dead_fraction(counts), np.ones_like(alive), 4)  # c/d = 1 − (d − c)/d


@given(latent_cases("float64"))
def test_the_fraction_above_falls_as_the_density_threshold_rises(case: Any) -> None:
    """EVAL-7: monotone in the threshold, and strict: the threshold equal to a density leaves it out."""
    f = case.arrays["f"]
    values = [float(oracle.fraction_above(f, density=t).max()) for t in (0.0, 0.01, 0.1, 0.5, 0.99)]
    assert values == sorted(values, reverse=True)
    density = oracle.feature_density(f)
    if f.ndim == 2 and density.max() < 1:
        top = float(density.max())
        assert float(oracle.fraction_above(f, density=top)) == 0.0


@given(pair_cases("float64"))
def test_the_guarded_l2_ratio_equals_eval_3_when_no_token_is_tinier_than_the_guard(case: Any) -> None:
    """EQ-13: `norm_guard_1e-4` is `l2_ratio` on batches whose tokens have norms >= 1e-4, and differs
    (the tiny token's ratio replaced by ‖x̂_b‖) where one is smaller."""
    x, x_hat = case.arrays["x"], case.arrays["x_hat"]
    guarded, plain = oracle.l2_ratio_guarded(x, x_hat), oracle.l2_ratio(x, x_hat)
    tiny = (np.linalg.norm(x, axis=-1) < 1e-4).any(axis=0)  # per instance: a token below the guard
    assert np.array_equal(guarded[~tiny], plain[~tiny])
    assert np.all(guarded[tiny] < plain[tiny])  # its ‖x̂_b‖ / 1 < ‖x̂_b‖ / ‖x_b‖ (x̂_b ≠ 0, ‖x_b‖ < 1)


@given(latent_cases("float64"))
def test_counting_positive_latents_is_eval_6_on_non_negative_latents(case: Any) -> None:
    """EQ-14: `fires_if_positive` differs from EVAL-6 exactly on the latents with a negative value."""
    f = case.arrays["f"]
    negative = (f < 0).any(axis=0)
    same = oracle.feature_density_positive(f) == oracle.feature_density(f)
    assert np.array_equal(same, ~negative)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    ("name", "x_hat_row", "x_row", "names"),
    [
        ("cosine_similarity", [0.0, 0.0], [1.0, 0.0], "x_hat"),
        ("cosine_similarity", [1.0, 0.0], [0.0, 0.0], "x"),
        ("l2_ratio", [1.0, 0.0], [0.0, 0.0], "x"),
    ],
)
def test_a_zero_token_raises_naming_the_array(
    side: str, name: str, x_hat_row: list[float], x_row: list[float], names: str
) -> None:
    """EVAL-2, EVAL-3: a cosine or norm ratio of a zero vector is undefined."""
    x = np.array([[1.0, 2.0], x_row])
    x_hat = np.array([[1.0, 1.0], x_hat_row])
    with pytest.raises(ValueError, match=f"whose {names} is the zero vector"):
        _call(side, name, x, x_hat)


@pytest.mark.parametrize("side", SIDES)
def test_undefined_ratios_raise(side: str) -> None:
    """EVAL-4: E⟨x, x̂⟩ = 0; EVAL-5: a token at the batch mean (a batch of 1)."""
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="E_b ⟨x_b, x_hat_b⟩ = 0"):
        _call(side, "relative_reconstruction_bias", x, np.array([[0.0, 1.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="equal to the batch mean"):
        _call(side, "explained_variance_per_token", x[:1], x[:1])


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("density", [-0.1, 1.0, float("nan"), True])
def test_a_density_threshold_outside_zero_to_one_raises(side: str, density: Any) -> None:
    """EVAL-7: the threshold is a number in [0, 1)."""
    with pytest.raises(ValueError, match="density must be a number in"):
        _call(side, "fraction_above", np.ones((2, 3)), density=density)
