"""Activation normalisation beyond the table rows (NORM-1..NORM-9): each factor meets its target, the
two targets differ as NORM-4 says, the per-token maps and their inverses, the edges, and bad input on
both sides. The rows are proved against the oracle by `tests/test_torch_matches_oracle.py`; the
checker's power on them by the mutants of `refsae.conform.mutants.normalisation`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from refsae import oracle
from refsae import torch as rt
from refsae.checking import strategies as rs
from refsae.checking.tolerances import UNIT_ROUNDOFF, gamma
from tests.float64_agreement import agree

SIDES = ("oracle", "torch")


def _call(side: str, name: str, *arrays: np.ndarray, **options: Any) -> Any:
    if side == "oracle":
        return getattr(oracle, name)(*arrays, **options)
    return getattr(rt, name)(*(torch.from_numpy(a) for a in arrays), **options)


def _sample(data: st.DataObject) -> np.ndarray:
    shape = data.draw(rs.shapes(max_dim=16))
    x = data.draw(rs.inputs(shape, "float64"))
    x[0, ..., 0] += 1.0  # NORM-5: a non-zero token per instance
    return x


@given(st.data())
def test_each_factor_gives_its_target_mean_norm_or_mean_squared_norm(data: st.DataObject) -> None:
    """NORM-1, NORM-2, NORM-3: after scaling by c, mean ‖c x_b‖ = √d_in, or mean ‖c x_b‖² = 1."""
    x = _sample(data)
    d_in, chain = x.shape[-1], 2 * (x.shape[-1] + x.shape[0]) + 8
    c2 = oracle.activation_norm_factor(x)
    c3 = oracle.activation_norm_factor(x, norm_target="mean_squared_norm_one")
    mean_norm = np.linalg.norm(c2[..., None] * x, axis=-1).mean(axis=0)
    mean_square = (np.linalg.norm(c3[..., None] * x, axis=-1) ** 2).mean(axis=0)
    assert agree(
        mean_norm, np.full_like(mean_norm, np.sqrt(d_in)), np.full_like(mean_norm, np.sqrt(d_in)), chain
    )
    assert agree(mean_square, np.ones_like(mean_square), np.ones_like(mean_square), chain)


@given(st.data())
def test_the_two_targets_differ_by_at_least_root_d_in_and_exactly_so_for_equal_norms(
    data: st.DataObject,
) -> None:
    """NORM-4: c₂ / c₃ = √d_in √(E‖x‖²) / E‖x‖ >= √d_in, with equality when every token has one norm."""
    x = _sample(data)
    d_in, chain = x.shape[-1], 2 * (x.shape[-1] + x.shape[0]) + 8
    norms = np.linalg.norm(x, axis=-1)
    ratio = oracle.activation_norm_factor(x) / oracle.activation_norm_factor(
        x, norm_target="mean_squared_norm_one"
    )
    formula = np.sqrt(d_in) * np.sqrt((norms**2).mean(axis=0)) / norms.mean(axis=0)
    assert agree(ratio, formula, formula, chain)
    assert np.all(ratio >= np.sqrt(d_in) - 2 * gamma(chain, UNIT_ROUNDOFF["float64"]) * ratio)
    unit = x / np.where(norms > 0, norms, 1.0)[..., None]
    unit = np.where(norms[..., None] > 0, unit, unit[:1] * 0 + np.eye(d_in)[0])  # every token of norm 1
    equal = oracle.activation_norm_factor(unit) / oracle.activation_norm_factor(
        unit, norm_target="mean_squared_norm_one"
    )
    assert agree(equal, np.full_like(equal, np.sqrt(d_in)), np.full_like(equal, np.sqrt(d_in)), chain)


@pytest.mark.parametrize("side", SIDES)
def test_a_sample_of_zero_tokens_has_no_factor_but_zero_tokens_among_others_count(side: str) -> None:
    """NORM-5: every token of an instance zero: ValueError; one zero token among others is in the mean."""
    with pytest.raises(ValueError, match="every token x_b is 0"):
        _call(side, "activation_norm_factor", np.zeros((3, 1, 2)).reshape(3, 1, 2)[:, 0])
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    factor = float(np.asarray(_call(side, "activation_norm_factor", x)))
    expected = np.sqrt(2) / 2.5  # mean norm (5 + 0) / 2
    assert agree(np.asarray(factor), np.asarray(expected), np.asarray(expected), x.shape[-1] + x.shape[0] + 4)


@pytest.mark.parametrize("side", SIDES)
def test_constant_norm_rescale_gives_every_token_norm_root_d_in_and_leaves_a_zero_token(side: str) -> None:
    """NORM-6, NORM-7: ‖x_n_b‖ = √d_in; a zero token keeps coefficient 1 and stays 0, never NaN."""
    x = np.random.default_rng(1).standard_normal((5, 2, 9))
    x[2, 1] = 0.0
    x_n, a = (np.asarray(v) for v in _call(side, "constant_norm_rescale", x))
    norms = np.linalg.norm(x_n, axis=-1)
    nonzero = np.delete(norms.reshape(-1), 5)
    assert agree(nonzero, np.full_like(nonzero, 3.0), np.full_like(nonzero, 3.0), 2 * x.shape[-1] + 6)
    assert a[2, 1] == 1.0 and np.all(x_n[2, 1] == 0.0)
    assert np.all(np.isfinite(x_n))


@given(st.data())
def test_layer_norm_centres_and_scales_with_bessel_and_its_inverse_undoes_it(data: st.DataObject) -> None:
    """NORM-8, NORM-9: x_n has mean 0 and standard deviation σ/(σ + ε) (d_in − 1 in the divisor), and
    layer_norm_inverse(layer_norm(x)) = x for every ε."""
    shape = data.draw(rs.shapes(max_dim=16))
    x = data.draw(rs.inputs(shape, "float64"))
    if x.shape[-1] < 2:
        x = np.concatenate([x, x + 1.0], axis=-1)
    eps = data.draw(st.sampled_from((1e-5, 0.25)))
    x_n, mu, sigma = oracle.layer_norm(x, eps=eps)
    d_in = x.shape[-1]
    magnitude = np.abs(x).max(axis=-1) / (sigma + eps) + 1.0
    assert agree(x_n.mean(axis=-1), np.zeros_like(mu), magnitude, 4 * d_in + 8)
    spread = np.sqrt((x_n**2).sum(axis=-1) / (d_in - 1))
    assert agree(spread, sigma / (sigma + eps), magnitude, 8 * d_in + 16)
    back = oracle.layer_norm_inverse(x_n, mu, sigma, eps=eps)
    assert agree(back, x, np.abs(x) + np.abs(x).max(axis=-1, keepdims=True), 8 * d_in + 16)


@pytest.mark.parametrize("side", SIDES)
def test_a_constant_token_normalises_to_zero(side: str) -> None:
    """NORM-8: σ_b = 0 for a constant token, whose x_n_b is 0 (ε > 0 keeps the quotient defined)."""
    x_n, mu, sigma = (np.asarray(v) for v in _call(side, "layer_norm", np.full((1, 4), 2.5)))
    assert mu.tolist() == [2.5] and sigma.tolist() == [0.0] and x_n.tolist() == [[0.0] * 4]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    ("name", "arrays", "options", "message"),
    [
        ("layer_norm", ((2, 1),), {}, "d_in >= 2"),
        ("layer_norm", ((2, 3),), {"eps": 0.0}, "eps must be a finite number > 0"),
        ("layer_norm", ((2, 3),), {"eps": float("nan")}, "eps must be a finite number > 0"),
        ("layer_norm_inverse", ((2, 3), (2,), (2,)), {"eps": -1.0}, "eps must be a finite number > 0"),
    ],
)
def test_bad_options_are_rejected_by_name(
    side: str, name: str, arrays: tuple[tuple[int, ...], ...], options: dict[str, Any], message: str
) -> None:
    """NORM-8 (d_in >= 2, ε > 0), NORM-9 (ε > 0); an unknown `norm_target` is tests/test_error_inputs.py's."""
    values = [np.ones(shape) for shape in arrays]
    with pytest.raises(ValueError, match=message):
        _call(side, name, *values, **options)


@pytest.mark.parametrize("side", SIDES)
def test_a_negative_sigma_is_rejected(side: str) -> None:
    """NORM-9: σ is a standard deviation, >= 0."""
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        _call(side, "layer_norm_inverse", np.ones((2, 3)), np.zeros(2), np.array([1.0, -1.0]))
