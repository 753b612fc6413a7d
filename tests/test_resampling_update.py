"""The resampling update given the chosen inputs (RES-10..RES-15): its edge cases, in the oracle and
in refsae.torch alike. The table rows `resample_anthropic` and `resample_simple` check drawn cases;
these tests pin the cases that must never give NaN. The checker's power on the rows: the registry's
mutants (`refsae.conform.mutants`), run by `tests/test_checker_power.py`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from refsae import oracle
from refsae import torch as rt
from refsae.checking.tolerances import gamma
from refsae.oracle.optimizer import PARAMETERS

SIDES = ("oracle", "torch")
D_IN, D_SAE = 3, 4

# float64 rounding of the update, derived (TOL-1): a row norm (D_IN squares, a sum, a square root), a
# division; for the Anthropic encoder column also the mean of D_SAE column norms and two products.
UNIT = gamma(D_IN + 3, 2.0**-53)
COLUMN = gamma(2 * D_IN + D_SAE + 6, 2.0**-53)


def _param(seed: int = 0, inst: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "W_enc": rng.standard_normal((*inst, D_IN, D_SAE)),
        "b_enc": rng.standard_normal((*inst, D_SAE)),
        "W_dec": rng.standard_normal((*inst, D_SAE, D_IN)),
        "b_dec": rng.standard_normal((*inst, D_IN)),
    }


def _resample(
    side: str, param: dict[str, np.ndarray], dead: np.ndarray, chosen: np.ndarray, **kw: Any
) -> Any:
    """The update on one side, as NumPy: (param, resampled)."""
    simple = kw.pop("simple", False)
    if side == "oracle":
        fn = oracle.resample_simple if simple else oracle.resample_anthropic
        out = fn(param, dead, chosen, **kw)
        return out["param"], np.asarray(out["resampled"])
    tfn = rt.resample_simple if simple else rt.resample_anthropic
    t = tfn(
        {k: torch.from_numpy(v) for k, v in param.items()},
        torch.from_numpy(dead),
        torch.from_numpy(chosen),
        **kw,
    )
    return {k: v.numpy() for k, v in t["param"].items()}, t["resampled"].numpy()


@pytest.mark.parametrize("side", SIDES)
def test_a_resampled_latent_gets_the_unit_input_direction_a_scaled_encoder_column_and_zero_bias(
    side: str,
) -> None:
    """RES-10: W_dec_j = v/‖v‖, W_enc[:, j] = v/‖v‖ · 0.2 · mean alive column norm, b_enc_j = 0;
    live latents and b_dec are copied bit for bit."""
    param = _param()
    dead = np.array([0, 1, 0, 0])
    chosen = np.random.default_rng(1).standard_normal((D_SAE, D_IN))
    new, resampled = _resample(side, param, dead, chosen)
    v = chosen[1] / np.linalg.norm(chosen[1])
    alive_norm = np.linalg.norm(param["W_enc"][:, [0, 2, 3]], axis=0).mean()
    assert np.abs(new["W_dec"][1] - v).max() <= UNIT
    assert np.abs(new["W_enc"][:, 1] - 0.2 * alive_norm * v).max() <= COLUMN * 0.2 * alive_norm
    assert new["b_enc"][1] == 0.0
    for j in (0, 2, 3):
        assert np.array_equal(new["W_dec"][j], param["W_dec"][j])
        assert np.array_equal(new["W_enc"][:, j], param["W_enc"][:, j])
        assert new["b_enc"][j] == param["b_enc"][j]
    assert np.array_equal(new["b_dec"], param["b_dec"])
    assert resampled.tolist() == [False, True, False, False]


@pytest.mark.parametrize("side", SIDES)
def test_the_centred_variant_takes_the_direction_of_the_input_minus_b_dec(side: str) -> None:
    """RES-12: with b_dec ≠ 0 the centred and plain directions differ; centred is (v − b_dec)/‖·‖."""
    param = _param()
    dead = np.array([1, 0, 0, 0])
    chosen = np.random.default_rng(2).standard_normal((D_SAE, D_IN))
    plain, _ = _resample(side, param, dead, chosen)
    centred, _ = _resample(side, param, dead, chosen, centred=True)
    u = chosen[0] - param["b_dec"]
    assert np.abs(centred["W_dec"][0] - u / np.linalg.norm(u)).max() <= gamma(
        D_IN + 4, 2.0**-53
    )  # + the centring
    assert np.abs(plain["W_dec"][0] - centred["W_dec"][0]).max() > 1e-3


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("centred", [False, True])
def test_a_zero_direction_leaves_the_latent_as_it_is_and_unmarked(side: str, centred: bool) -> None:
    """RES-13: a zero input (or, centred, an input equal to b_dec) has no direction: the latent keeps
    its parameters, is not in `resampled` (so its optimizer state is not reset), and nothing is NaN."""
    param = _param()
    dead = np.array([1, 1, 0, 0])
    chosen = np.ones((D_SAE, D_IN))
    chosen[0] = param["b_dec"] if centred else 0.0
    new, resampled = _resample(side, param, dead, chosen, centred=centred)
    assert resampled.tolist() == [False, True, False, False]
    for k in PARAMETERS:
        assert np.isfinite(new[k]).all()
    assert np.array_equal(new["W_dec"][0], param["W_dec"][0]) and new["b_enc"][0] == param["b_enc"][0]


@pytest.mark.parametrize("side", SIDES)
def test_with_every_latent_dead_the_encoder_scale_is_taken_against_unit_columns(side: str) -> None:
    """RES-14: no live latent, no mean norm: the columns get norm encoder_scale · 1; no NaN."""
    param = _param(inst=(2,))
    dead = np.array([[1, 1, 1, 1], [0, 1, 0, 0]])
    chosen = np.random.default_rng(3).standard_normal((2, D_SAE, D_IN))
    new, resampled = _resample(side, param, dead, chosen, encoder_scale=0.5)
    assert np.abs(np.linalg.norm(new["W_enc"][0], axis=0) - 0.5).max() <= COLUMN * 0.5
    alive_norm = np.linalg.norm(param["W_enc"][1][:, [0, 2, 3]], axis=0).mean()  # instance 1: its own
    assert abs(np.linalg.norm(new["W_enc"][1][:, 1]) - 0.5 * alive_norm) <= COLUMN * 0.5 * alive_norm
    assert resampled.tolist() == dead.astype(bool).tolist()


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("simple", [False, True])
def test_with_no_latent_dead_nothing_changes(side: str, simple: bool) -> None:
    """RES-14, RES-15: an all-zero mask returns the parameters unchanged and `resampled` all False."""
    param = _param()
    new, resampled = _resample(
        side, param, np.zeros(D_SAE, dtype=np.int64), np.ones((D_SAE, D_IN)), simple=simple
    )
    assert not resampled.any()
    for k in PARAMETERS:
        assert np.array_equal(new[k], param[k])


@pytest.mark.parametrize("side", SIDES)
def test_the_simple_method_uses_the_given_direction_scaled_by_the_encoder_scale(side: str) -> None:
    """RES-15: W_dec_j = v̂, W_enc[:, j] = encoder_scale · v̂, b_enc_j = 0."""
    param = _param()
    dead = np.array([0, 0, 1, 0])
    directions = np.random.default_rng(4).standard_normal((D_SAE, D_IN))
    new, _ = _resample(side, param, dead, directions, simple=True, encoder_scale=0.3)
    v = directions[2] / np.linalg.norm(directions[2])
    assert np.abs(new["W_dec"][2] - v).max() <= UNIT
    assert np.abs(new["W_enc"][:, 2] - 0.3 * v).max() <= UNIT * 0.3 + gamma(1, 2.0**-53)
    assert new["b_enc"][2] == 0.0


def test_more_dead_latents_than_examples_draw_with_replacement_and_update_cleanly() -> None:
    """RES-5, RES-16: a batch of two examples, four dead latents: the draws repeat inputs, every
    latent is resampled, and two latents given the same input get the same direction."""
    param = _param()
    x = np.array([[1.0, 2.0, 2.0], [0.0, 3.0, 4.0]])
    rows = oracle.sample_examples(
        np.array([0.5, 0.5]), D_SAE, replacement=True, generator=np.random.default_rng(0)
    )
    chosen = x[rows]
    new, resampled = _resample("oracle", param, np.ones(D_SAE, dtype=np.int64), chosen)
    assert resampled.all()
    for a in range(D_SAE):
        for b in range(D_SAE):
            if rows[a] == rows[b]:
                assert np.array_equal(new["W_dec"][a], new["W_dec"][b])


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    ("dead", "scale", "message"),
    [
        (np.array([0, 2, 0, 0]), 0.2, "0/1 or boolean mask"),
        (np.array([0, 1, 0, 0]), 0.0, "encoder scale must be a finite number > 0"),
        (np.array([0, 1, 0, 0]), float("nan"), "encoder scale must be a finite number > 0"),
    ],
    ids=["mask-not-0-1", "scale-0", "scale-nan"],
)
def test_a_bad_mask_or_scale_raises_value_error(
    side: str, dead: np.ndarray, scale: float, message: str
) -> None:
    """RES-14."""
    with pytest.raises(ValueError, match=message):
        _resample(side, _param(), dead, np.ones((D_SAE, D_IN)), encoder_scale=scale)
