"""Weight folding beyond the table rows (FOLD-1..FOLD-7, EQ-15): the folded SAE computes what the
unfolded one did, latents and thresholds move as the clauses say, TopK is not foldable, and bad input.
The rows are proved against the oracle by `tests/test_torch_matches_oracle.py`; the checker's power on
them by the mutants of `refsae.conform.mutants.folding`."""

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
from tests.float64_agreement import agree

SIDES = ("oracle", "torch")


def _sae(data: st.DataObject, min_batch: int = 1) -> tuple[np.ndarray, ...]:
    shape = data.draw(rs.shapes(max_dim=16, min_batch=min_batch))
    p = data.draw(rs.sae_params(shape, "float64"))
    x = data.draw(rs.inputs(shape, "float64"))
    return x, p["W_enc"], p["b_enc"], p["W_dec"], p["b_dec"]


def _forward_magnitude(
    x: np.ndarray, W_enc: np.ndarray, b_enc: np.ndarray, W_dec: np.ndarray, b_dec: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """|f| and |x_hat| bounds from absolute values (TOL-4's magnitudes)."""
    u = np.abs(x) + np.abs(b_dec)
    z = np.einsum("b...i,...ij->b...j", u, np.abs(W_enc)) + np.abs(b_enc)
    return z, np.einsum("b...j,...ji->b...i", z, np.abs(W_dec)) + np.abs(b_dec)


@given(st.data(), st.sampled_from(("tied", "untied")))
def test_the_decoder_norm_fold_keeps_the_reconstruction_and_scales_each_latent_by_its_norm(
    data: st.DataObject, encode: str
) -> None:
    """FOLD-1, FOLD-3: ReLU and JumpReLU, tied or untied: x̂ unchanged, f_j times ‖W_dec_j‖, unit rows."""
    x, W_enc, b_enc, W_dec, b_dec = _sae(data)
    f, x_hat = oracle.forward(x, W_enc, b_enc, W_dec, b_dec, encode=encode)  # type: ignore[arg-type]
    W_enc2, b_enc2, W_dec2 = oracle.fold_W_dec_norm(W_enc, b_enc, W_dec)
    f2, x_hat2 = oracle.forward(x, W_enc2, b_enc2, W_dec2, b_dec, encode=encode)  # type: ignore[arg-type]
    norms = np.linalg.norm(W_dec, axis=-1)
    mf, mx = _forward_magnitude(x, W_enc2, b_enc2, W_dec2, b_dec)
    chain = 4 * (x.shape[-1] + W_dec.shape[-2]) + 16
    assert agree(f2, f * norms[None], mf, chain)
    assert agree(x_hat2, x_hat, mx, chain)
    assert agree(np.linalg.norm(W_dec2, axis=-1), np.ones_like(norms), np.ones_like(norms), x.shape[-1] + 4)
    theta = np.abs(b_enc) + 0.5
    theta2 = oracle.fold_W_dec_norm_threshold(W_dec, theta)
    mode: Any = encode
    z, z2 = (
        oracle.pre_activations(x, a, b, b_dec, encode=mode) for a, b in ((W_enc, b_enc), (W_enc2, b_enc2))
    )
    margin = np.abs(z - theta) > 1e-9 * (np.abs(z) + theta)  # away from the kink (JUMP-1)
    assert np.array_equal((z2 > theta2)[margin], (z > theta)[margin])


def test_a_topk_sae_is_not_foldable_unless_its_rows_are_unit() -> None:
    """FOLD-1: the fold reorders z_j · s_j, so TopK keeps another latent and the reconstruction changes."""
    x = np.array([[1.0, 0.0]])
    W_enc, b_enc = np.array([[2.0, 1.0], [0.0, 0.0]]), np.zeros(2)
    W_dec = np.array([[1.0, 0.0], [0.0, 4.0]])  # norms 1 and 4: z = (2, 1) becomes (2, 4)
    before = oracle.decode(
        oracle.topk(oracle.pre_activations(x, W_enc, b_enc, np.zeros(2)), k=1), W_dec, np.zeros(2)
    )
    W_enc2, b_enc2, W_dec2 = oracle.fold_W_dec_norm(W_enc, b_enc, W_dec)
    z2 = oracle.pre_activations(x, W_enc2, b_enc2, np.zeros(2))
    after = oracle.decode(oracle.topk(z2, k=1), W_dec2, np.zeros(2))
    assert before.tolist() == [[2.0, 0.0]] and after.tolist() == [[0.0, 4.0]]


@given(st.data(), st.sampled_from(("tied", "untied")), st.sampled_from((0.25, 0.3, 4.0)))
def test_both_input_scale_folds_compute_the_scaled_sae_on_raw_inputs(
    data: st.DataObject, encode: str, c: float
) -> None:
    """FOLD-4..FOLD-6: x̂'(x) = x̂(c·x) / c either way; latents f(c·x) (weights) or f(c·x) / c (biases);
    FOLD-7's thresholds; the pre-activations of the biases fold are z(c·x) / c, so TopK, BatchTopK
    and JumpReLU with θ / c select the same latents (FOLD-4: positive homogeneity)."""
    x, W_enc, b_enc, W_dec, b_dec = _sae(data)
    f_c, x_hat_c = oracle.forward(c * x, W_enc, b_enc, W_dec, b_dec, encode=encode)  # type: ignore[arg-type]
    chain = 4 * (x.shape[-1] + W_dec.shape[-2]) + 16
    for into, latent_factor in (("weights", 1.0), ("biases", 1.0 / c)):
        p = oracle.fold_input_scale(W_enc, b_enc, W_dec, b_dec, factor=c, fold_into=into)  # type: ignore[arg-type]
        f, x_hat = oracle.forward(x, *p, encode=encode)  # type: ignore[arg-type]
        mf, mx = _forward_magnitude(c * x, W_enc, b_enc, W_dec, b_dec)
        assert agree(f, f_c * latent_factor, mf * max(latent_factor, 1.0), chain), into
        assert agree(x_hat, x_hat_c / c, mx / c, chain), into
        theta = np.abs(b_enc) + 0.5
        theta2 = oracle.fold_input_scale_threshold(theta, factor=c, fold_into=into)  # type: ignore[arg-type]
        expected = theta * latent_factor  # θ / c in one rounding against θ · fl(1/c) in two
        assert agree(theta2, expected, expected, 2), into
    z_c = oracle.pre_activations(c * x, W_enc, b_enc, b_dec, encode=encode)  # type: ignore[arg-type]
    p = oracle.fold_input_scale(W_enc, b_enc, W_dec, b_dec, factor=c, fold_into="biases")
    z = oracle.pre_activations(x, p[0], p[1], p[3], encode=encode)  # type: ignore[arg-type]
    assert agree(z * c, z_c, _forward_magnitude(c * x, W_enc, b_enc, W_dec, b_dec)[0], chain)


def test_a_zero_row_is_left_as_it_is_and_saelens_clamp_shrinks_its_latent() -> None:
    """FOLD-2, EQ-15."""
    W_enc, b_enc, W_dec = np.ones((2, 2)), np.array([2.0, 3.0]), np.array([[0.0, 2.0], [0.0, 0.0]])
    folded = oracle.fold_W_dec_norm(W_enc, b_enc, W_dec)
    assert [a.tolist() for a in folded] == [[[2.0, 1.0], [2.0, 1.0]], [4.0, 3.0], [[0.0, 1.0], [0.0, 0.0]]]
    clamped = oracle.fold_W_dec_norm_clamped(W_enc, b_enc, W_dec)
    assert clamped[1].tolist() == [4.0, 3.0 * 1e-8] and clamped[2].tolist() == folded[2].tolist()
    assert oracle.fold_W_dec_norm_threshold(W_dec, np.array([0.5, 0.5])).tolist() == [1.0, 0.5]


@pytest.mark.parametrize("side", SIDES)
def test_the_folds_return_new_arrays_and_leave_their_inputs_unchanged(side: str) -> None:
    """FOLD-1, FOLD-4: functions, not in-place updates (SAELens and dictionary_learning fold in place)."""
    W_enc, b_enc, W_dec, b_dec = np.ones((2, 3)), np.ones(3), np.full((3, 2), 2.0), np.ones(2)
    arrays = [a.copy() for a in (W_enc, b_enc, W_dec, b_dec)]
    if side == "oracle":
        oracle.fold_W_dec_norm(W_enc, b_enc, W_dec)
        out: tuple[np.ndarray, ...] = oracle.fold_input_scale(
            W_enc, b_enc, W_dec, b_dec, factor=2.0, fold_into="biases"
        )
    else:
        tensors = [torch.from_numpy(a) for a in (W_enc, b_enc, W_dec, b_dec)]
        rt.fold_W_dec_norm(*tensors[:3])
        out = tuple(t.numpy() for t in rt.fold_input_scale(*tensors, factor=2.0, fold_into="biases"))
    for a, b in zip((W_enc, b_enc, W_dec, b_dec), arrays, strict=True):
        assert np.array_equal(a, b)
    out[0][0, 0] = 99.0  # a copy even where the fold leaves the array's values unchanged
    assert W_enc[0, 0] == 1.0


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("scale", [0.0, -1.0, float("inf"), float("nan"), True])
def test_a_factor_that_is_not_a_finite_positive_number_raises(side: str, scale: Any) -> None:
    """FOLD-4."""
    theta = np.ones(3)
    with pytest.raises(ValueError, match="factor must be a finite number > 0"):
        if side == "oracle":
            oracle.fold_input_scale_threshold(theta, factor=scale)
        else:
            rt.fold_input_scale_threshold(torch.from_numpy(theta), factor=scale)
