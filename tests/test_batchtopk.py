"""BatchTopK beyond the table rows (BTOPK-1..BTOPK-7): the shared budget, the threshold estimate over
many batches, the all-zero batch, inference as JumpReLU, bad input. The checker's power on the rows:
the registry's mutants (`refsae.conform.mutants`), run by `tests/test_checker_power.py`."""

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


@given(st.data())
def test_the_batch_keeps_at_most_k_times_b_latents_and_clamping_order_does_not_matter(
    data: st.DataObject,
) -> None:
    """BTOPK-1: per instance at most k·B non-zero latents; clamping before or after selecting agree;
    with one example BatchTopK is TopK."""
    shape = data.draw(rs.shapes(max_dim=16))
    z = data.draw(rs.arrays((shape.batch, *shape.inst, shape.d_sae), "float64"))
    k = data.draw(st.integers(1, shape.d_sae))
    f = oracle.batchtopk(z, k=k)
    assert (np.count_nonzero(f, axis=(0, -1)) <= k * shape.batch).all()
    assert np.array_equal(oracle.batchtopk(np.maximum(z, 0.0), k=k), f)
    assert np.array_equal(oracle.batchtopk(z[:1], k=k), oracle.topk(z[:1], k=k))


def test_one_example_may_take_the_budget_of_another() -> None:
    """BTOPK-1: with k = 1 and B = 2, example 0 keeps two latents and example 1 none, where TopK would
    keep one each."""
    z = np.array([[4.0, 3.0, 0.0], [1.0, 0.5, 0.0]])
    assert np.count_nonzero(oracle.batchtopk(z, k=1), axis=-1).tolist() == [2, 0]
    assert np.count_nonzero(oracle.topk(z, k=1), axis=-1).tolist() == [1, 1]


@pytest.mark.parametrize("side", ["oracle", "torch"])
def test_the_mean_estimate_is_the_average_of_the_batch_minima_and_skips_empty_batches(side: str) -> None:
    """BTOPK-4, BTOPK-5: five batches, the third all zero: the estimate after them is the mean of the
    four minima that exist; the empty batch leaves it unchanged and is not counted."""
    rng = np.random.default_rng(0)
    batches = [np.maximum(rng.standard_normal((8, 6)), 0.0) for _ in range(5)]
    batches[2] = np.zeros((8, 6))
    minima = [float(b[b > 0].min()) for i, b in enumerate(batches) if i != 2]
    theta, n = np.array(0.0), 0  # the first batch then sets θ = m exactly
    for f in batches:
        if side == "oracle":
            theta = oracle.batchtopk_update_threshold(theta, f, n_batches=n)
        else:
            theta = rt.batchtopk_update_threshold(
                torch.from_numpy(theta), torch.from_numpy(f), n_batches=n
            ).numpy()
        n += int(bool((f > 0).any()))
    # each of the 3 later updates rounds 3 times, each error at most u · max(minima)
    assert n == 4 and abs(float(theta) - float(np.mean(minima))) <= 9 * 2.0**-53 * max(minima)


def test_the_ema_estimate_weights_the_newest_minimum_by_one_minus_beta() -> None:
    """BTOPK-5."""
    f = np.array([[0.0, 2.0], [0.5, 0.0]])
    assert float(
        oracle.batchtopk_update_threshold(np.array(1.0), f, n_batches=7, update="ema", beta=0.75)
    ) == (0.75 * 1.0 + 0.25 * 0.5)


@given(st.data())
def test_inference_is_jumprelu_with_the_shared_threshold(data: st.DataObject) -> None:
    """BTOPK-6: for θ > 0, z · 1[z > θ] equals JumpReLU with every θ_j = θ; θ <= 0 gives ReLU."""
    shape = data.draw(rs.shapes(max_dim=16))
    z = data.draw(rs.arrays((shape.batch, *shape.inst, shape.d_sae), "float64"))
    theta = np.full(shape.inst, data.draw(st.floats(1e-3, 2.0)))
    same = oracle.jumprelu(z, np.broadcast_to(theta[..., None], (*shape.inst, shape.d_sae)).copy())
    assert np.array_equal(oracle.batchtopk_inference(z, theta), same)
    assert np.array_equal(oracle.batchtopk_inference(z, np.negative(theta)), np.maximum(z, 0.0))


@pytest.mark.parametrize("side", ["oracle", "torch"])
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_batches": -1}, "n_batches must be an integer >= 0"),
        ({"n_batches": 1, "update": "ema", "beta": 1.0}, "beta must be a finite number in"),
        ({"n_batches": 1, "update": "median"}, "median"),
    ],
    ids=["negative-count", "beta-1", "unknown-update"],
)
def test_bad_update_options_raise_value_error(side: str, options: dict[str, Any], message: str) -> None:
    """BTOPK-7."""
    f, theta = np.ones((2, 3)), np.array(0.5)
    # an unknown name fails the `Literal` annotation first (beartype's TypeError) with checks on
    with pytest.raises((ValueError, TypeError), match=message):
        if side == "oracle":
            oracle.batchtopk_update_threshold(theta, f, **options)
        else:
            rt.batchtopk_update_threshold(torch.from_numpy(theta), torch.from_numpy(f), **options)
