"""Transcoders beyond the table rows (TC-1..TC-6): a transcoder with d_out = d_in and the identity skip
is an SAE of the untied encoder only through its definitions, W_skip's layout, the batch rule, and a
mutant-free check that the input is never centred. The rows are proved against the oracle by
`tests/test_torch_matches_oracle.py`; the checker's power on them by the mutants of
`refsae.conform.mutants.transcoder`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from jaxtyping import TypeCheckError

from refsae import oracle
from refsae import torch as rt
from refsae.conventions import Conventions
from tests.float64_agreement import agree


def _case(seed: int, d_in: int = 4, d_out: int = 3, d_sae: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((10, d_in)),
        "y": rng.standard_normal((10, d_out)),
        "W_enc": rng.standard_normal((d_in, d_sae)),
        "b_enc": 0.1 * rng.standard_normal(d_sae),
        "W_dec": rng.standard_normal((d_sae, d_out)),
        "b_dec": rng.standard_normal(d_out),
        "W_skip": rng.standard_normal((d_out, d_in)),
    }


def test_a_transcoder_of_its_own_input_without_skip_is_the_untied_sae() -> None:
    """TC-2, TC-5, TC-6: with y = x and W_skip = 0, the transcoder's loss and gradients are LOSS-6's and
    GRAD's under the untied encoder, exactly (the same operations), for every convention."""
    a = _case(0, d_in=4, d_out=4)
    a["y"], a["W_skip"] = a["x"], np.zeros((4, 4))
    for reconstruction in ("sum", "mean", "fvu"):
        for sparsity in ("l1", "l1_decoder_norm"):
            options: dict[str, Any] = {
                "l1_coefficient": 0.3, "reconstruction": reconstruction, "sparsity": sparsity,
            }  # fmt: skip
            c = Conventions(encode="untied", reconstruction=reconstruction, sparsity=sparsity)
            sae = (a["x"], a["W_enc"], a["b_enc"], a["W_dec"], a["b_dec"])
            loss = oracle.transcoder_total_loss(*a.values(), **options)
            plain = oracle.total_loss(*sae, l1_coefficient=0.3, conventions=c)
            assert agree(loss, plain, np.abs(plain), 4 * a["x"].size)
            grads = oracle.transcoder_loss_gradients(*a.values(), **options)
            expected = oracle.loss_gradients(*sae, l1_coefficient=0.3, conventions=c).as_dict()
            for name, g in expected.items():
                assert agree(grads[name], g, np.abs(g) + np.abs(g).max(), 4 * a["x"].size), name


def test_the_skip_connection_adds_x_times_W_skip_transposed() -> None:
    """TC-1, TC-4: W_skip is (d_out, d_in); ŷ changes by exactly x W_skipᵀ, and its gradient is gᵀ x."""
    a = _case(1)
    f = np.maximum(a["x"] @ a["W_enc"] + a["b_enc"], 0.0)
    with_skip = oracle.transcoder_decode(f, a["x"], a["W_dec"], a["b_dec"], a["W_skip"])
    without = oracle.transcoder_decode(f, a["x"], a["W_dec"], a["b_dec"], np.zeros_like(a["W_skip"]))
    d_sae, d_in = f.shape[-1], a["x"].shape[-1]
    skip = np.abs(a["x"]) @ np.abs(a["W_skip"]).T
    magnitude = np.abs(f) @ np.abs(a["W_dec"]) + np.abs(a["b_dec"]) + skip  # TOL-4's M of ŷ
    chain = 2 * (d_sae + d_in + 3)  # two decodes, each a d_sae- and a d_in-term product and two sums
    assert agree(with_skip - without, a["x"] @ a["W_skip"].T, magnitude, chain)
    grads = oracle.transcoder_loss_gradients(*a.values())
    g = 2 / a["x"].shape[0] * (with_skip - a["y"])  # LOSS-1's gradient of ŷ
    g_magnitude = 2 / a["x"].shape[0] * (magnitude + np.abs(a["y"]))
    assert agree(grads["W_skip"], g.T @ a["x"], g_magnitude.T @ np.abs(a["x"]), chain + a["x"].shape[0] + 3)


@pytest.mark.parametrize("side", ["oracle", "torch"])
def test_x_and_y_with_different_batches_raise_an_error_naming_the_batch(side: str) -> None:
    """TC-1: one target per input; the annotations bind `batch` across x and y (jaxtyping's
    TypeCheckError, NOT-3), the value check does with the runtime checks off (ValueError)."""
    a = _case(2)
    a["y"] = a["y"][:-1]
    args = list(a.values()) if side == "oracle" else [torch.from_numpy(v) for v in a.values()]
    fn = oracle.transcoder_total_loss if side == "oracle" else rt.transcoder_total_loss
    with pytest.raises((TypeCheckError, ValueError), match="batch"):
        fn(*args)


def test_the_encoder_reads_x_itself_whatever_b_dec_is() -> None:
    """TC-2: the latents do not depend on b_dec (nothing is subtracted from x)."""
    a = _case(3)
    f1, _ = oracle.transcoder_forward(a["x"], a["W_enc"], a["b_enc"], a["W_dec"], a["b_dec"], a["W_skip"])
    f2, _ = oracle.transcoder_forward(a["x"], a["W_enc"], a["b_enc"], a["W_dec"], 5 + a["b_dec"], a["W_skip"])
    np.testing.assert_array_equal(f1, f2)
    expected = np.maximum(a["x"] @ a["W_enc"] + a["b_enc"], 0.0)
    magnitude = np.abs(a["x"]) @ np.abs(a["W_enc"]) + np.abs(a["b_enc"])
    assert agree(f1, expected, magnitude, a["x"].shape[-1] + 2)  # two summation orders of x W_enc
