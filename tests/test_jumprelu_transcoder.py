"""JumpReLU transcoders beyond the table rows (TC-8..TC-10): one that reconstructs its own input with no
skip is the untied JumpReLU SAE, for every convention, parametrisation and straight-through rule; the
skip connection's gradient and the straight-through terms leave b_dec alone; bad thresholds, bandwidths,
coefficients and shapes are refused on both sides. The rows are proved against the oracle by
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
from refsae.conventions import Conventions, Ste
from refsae.oracle.jumprelu import Parametrisation
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
        "theta": 0.5 + rng.random(d_sae),
    }


@pytest.mark.parametrize("parametrisation", ["theta", "log_theta"])
@pytest.mark.parametrize("ste", ["threshold_only", "also_input"])
def test_a_jumprelu_transcoder_of_its_own_input_without_skip_is_the_untied_jumprelu_sae(
    parametrisation: Parametrisation, ste: Ste
) -> None:
    """TC-8..TC-10: with y = x and W_skip = 0 the loss and every gradient, the threshold's included, are
    JUMP-2..JUMP-6's (and JUMP-15's) under the untied encoder, for every reconstruction and decoder
    convention. The bandwidth is wide enough that most latents have examples in their window."""
    a = _case(0, d_in=4, d_out=4)
    a["y"], a["W_skip"] = a["x"], np.zeros((4, 4))
    z = a["x"] @ a["W_enc"] + a["b_enc"]
    assert 0 < (np.abs(z - a["theta"]) < 1.0).mean() < 1  # the window holds some examples, not all
    for reconstruction in ("sum", "mean", "fvu"):
        for decoder in ("constrained", "normalised"):
            options: dict[str, Any] = {
                "l0_coefficient": 0.3, "bandwidth": 2.0, "reconstruction": reconstruction, "decoder": decoder,
            }  # fmt: skip
            c = Conventions(encode="untied", reconstruction=reconstruction, decoder=decoder)
            sae = (a["x"], a["W_enc"], a["b_enc"], a["W_dec"], a["b_dec"], a["theta"])
            loss = oracle.jumprelu_transcoder_total_loss(*a.values(), **options)
            plain = oracle.jumprelu_total_loss(*sae, l0_coefficient=0.3, bandwidth=2.0, conventions=c)
            assert agree(loss, plain, np.abs(plain), 4 * a["x"].size)
            grads = oracle.jumprelu_transcoder_loss_gradients(
                *a.values(), **options, parametrisation=parametrisation, ste=ste
            )
            expected = oracle.jumprelu_loss_gradients(
                *sae,
                l0_coefficient=0.3,
                bandwidth=2.0,
                conventions=c,
                parametrisation=parametrisation,
                ste=ste,
            )
            assert set(grads) == set(expected) | {"W_skip"}
            for name, g in expected.items():
                assert agree(grads[name], g, np.abs(g) + np.abs(g).max(), 4 * a["x"].size), name
            assert np.any(expected["threshold"] != 0)


def test_the_straight_through_terms_reach_the_encoder_but_not_b_dec_or_W_skip() -> None:
    """TC-10, JUMP-15: `ste="also_input"` changes only W_enc and b_enc (the untied encoder), by the
    pull-back of the terms at z; b_dec (y's bias), W_dec, W_skip and the threshold are as under
    `threshold_only`. Checked on both sides, with d_out ≠ d_in."""
    a = _case(1, d_in=5, d_out=3)
    options: dict[str, Any] = {"l0_coefficient": 0.7, "bandwidth": 2.0}
    for side in (oracle, rt):
        args = list(a.values()) if side is oracle else [torch.from_numpy(v) for v in a.values()]
        only = side.jumprelu_transcoder_loss_gradients(*args, **options, ste="threshold_only")
        also = side.jumprelu_transcoder_loss_gradients(*args, **options, ste="also_input")
        for name in ("W_dec", "b_dec", "W_skip", "threshold"):
            np.testing.assert_array_equal(np.asarray(only[name]), np.asarray(also[name]), err_msg=name)
        assert not np.allclose(np.asarray(only["b_enc"]), np.asarray(also["b_enc"]))
    # the difference is the pull-back of (θ/ε) K g_f + λ/(Bε) K at z, computed here from the definitions
    x, theta, B = a["x"], a["theta"], a["x"].shape[0]
    z = x @ a["W_enc"] + a["b_enc"]
    K = (np.abs(z - theta) < 1.0).astype(float)
    y_hat = np.where(z > theta, z, 0.0) @ a["W_dec"] + a["b_dec"] + x @ a["W_skip"].T
    g_f = (2 / B * (y_hat - a["y"])) @ a["W_dec"].T  # LOSS-1 (sum convention), constrained decoder
    at_z = theta / 2.0 * K * g_f + 0.7 / (B * 2.0) * K
    only = oracle.jumprelu_transcoder_loss_gradients(*a.values(), **options, ste="threshold_only")
    also = oracle.jumprelu_transcoder_loss_gradients(*a.values(), **options, ste="also_input")
    term = np.abs(theta) / 2.0 * K * np.abs(g_f) + 0.7 / (B * 2.0) * K
    for name, expected, magnitude in (  # TOL-4's magnitude: the terms, and the two gradients subtracted
        ("b_enc", at_z.sum(axis=0), term.sum(axis=0)),
        ("W_enc", x.T @ at_z, np.abs(x).T @ term),
    ):
        magnitude = magnitude + np.abs(only[name]) + np.abs(also[name])
        assert agree(also[name] - only[name], expected, magnitude, 4 * x.size), name
    assert np.any(at_z != 0)


@pytest.mark.parametrize("side", ["oracle", "torch"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"theta": np.zeros(6)}, "theta must be > 0"),
        ({"theta": np.full(6, np.nan)}, "theta"),
        ({"bandwidth": 0.0}, "bandwidth"),
        ({"bandwidth": float("inf")}, "bandwidth"),
        ({"l0_coefficient": -1.0}, "l0_coefficient"),
        ({"theta": np.ones(5)}, "d_sae"),
        ({"y": np.ones((9, 3))}, "batch"),
    ],
)
def test_bad_inputs_are_refused_with_a_message_naming_them(
    side: str, change: dict[str, Any], message: str
) -> None:
    """TC-8, TC-9, JUMP-7, TC-1: θ ≤ 0 or not finite, a bandwidth ≤ 0 or infinite, λ < 0, a θ of the wrong
    width (jaxtyping names d_sae, NOT-3) and a target of another batch are refused by the loss, its
    gradients and (θ) the forward pass, on both sides."""
    a = _case(2)
    options: dict[str, Any] = {"l0_coefficient": 0.1, "bandwidth": 1.0}
    for k, v in change.items():
        (options if k in options else a)[k] = v
    lib = oracle if side == "oracle" else rt
    convert = (lambda v: v) if side == "oracle" else torch.from_numpy
    args = [convert(v) for v in a.values()]
    for fn in (lib.jumprelu_transcoder_total_loss, lib.jumprelu_transcoder_loss_gradients):
        with pytest.raises((TypeCheckError, ValueError), match=message):
            fn(*args, **options)
    if "theta" in change:
        forward_args = [args[0], *args[2:]]
        with pytest.raises((TypeCheckError, ValueError), match=message):
            lib.jumprelu_transcoder_forward(*forward_args)
