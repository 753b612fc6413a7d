"""Training transcoders (PERF-8, STEP-1, TC-1..TC-6): the `Transcoder` module, its step with the fused
and the autograd backward, and the fused entry point's refusals. The fused gradients themselves are
proved against the oracle as the fast paths of the two transcoder gradient rows
(`tests/test_torch_matches_oracle.py`, `refsae check --fast`); this checks what is around them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from jaxtyping import TypeCheckError

from refsae import oracle
from refsae import torch as rt
from refsae.torch.fast.transcoder import transcoder_fused_loss_and_gradients
from tests.float64_agreement import agree


def _xy(
    batch: int, d_in: int, d_out: int, n_inst: int | None, seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    inst = () if n_inst is None else (n_inst,)
    x = torch.randn(batch, *inst, d_in, dtype=torch.float64, generator=g)
    return x, torch.randn(batch, *inst, d_out, dtype=torch.float64, generator=g)


def _args(seed: int = 0, d_in: int = 5, d_out: int = 3, d_sae: int = 12) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x, y = _xy(10, d_in, d_out, None, seed)
    shapes = [(d_in, d_sae), (d_sae,), (d_sae, d_out), (d_out,), (d_out, d_in)]
    return [x, y, *(torch.randn(*s, dtype=torch.float64, generator=g) for s in shapes)]


@pytest.mark.parametrize("n_inst", [None, 2])
@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("k", [None, 3])
def test_the_fused_and_autograd_transcoder_steps_follow_one_trajectory(
    k: int | None, skip: bool, n_inst: int | None
) -> None:
    """PERF-8, STEP-1: `transcoder_train_step_` gives the same losses and parameters over several steps
    with the fused backward and with autograd (float64, ReLU and TopK, with and without the skip and
    instances). A wiring check (a wrong gradient or order is O(1) after four Adam steps; float64
    rounding differences stay ~1e-15), hence rtol 1e-9; both backwards are held to the oracle by the rows."""
    results = []
    for backward in ("fused", "autograd"):
        config = rt.TranscoderConfig(
            6, 4, 24, n_inst=n_inst, skip=skip, k=k, l1_coefficient=0.1, dtype=torch.float64
        )
        tc = rt.Transcoder(config, generator=torch.Generator().manual_seed(0))
        opt = torch.optim.Adam(tc.parameters(), lr=1e-2)
        x, y = _xy(32, 6, 4, n_inst)
        losses = [float(rt.transcoder_train_step_(tc, opt, x, y, backward=backward)) for _ in range(4)]
        results.append((losses, {n: p.detach().numpy().copy() for n, p in tc.named_parameters()}))
    (loss_a, params_a), (loss_b, params_b) = results
    assert ("W_skip" in params_a) == skip
    assert loss_a[-1] < loss_a[0]  # the steps train
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-12)
    for name in params_a:
        np.testing.assert_allclose(params_a[name], params_b[name], rtol=1e-9, atol=1e-12)
    norms = np.linalg.norm(params_a["W_dec"], axis=-1)
    assert agree(norms, np.ones_like(norms), np.ones_like(norms), 2 * (4 + 4))  # the constraint ran (CON-1)


@pytest.mark.parametrize("k", [None, 3])
def test_without_a_skip_the_fused_path_returns_no_skip_gradient_and_the_zero_skip_gradients(
    k: int | None,
) -> None:
    """PERF-8, TC-4: `W_skip=None` runs neither skip product and returns no `W_skip` gradient; the loss
    and the other gradients are those of W_skip = 0 exactly (adding x·0 changes no bit)."""
    x, y, W_enc, b_enc, W_dec, b_dec, W_skip = _args()
    loss_none, none = transcoder_fused_loss_and_gradients(
        x, y, W_enc, b_enc, W_dec, b_dec, None, k=k, l1_coefficient=0.1
    )
    loss_zero, zero = transcoder_fused_loss_and_gradients(
        x, y, W_enc, b_enc, W_dec, b_dec, torch.zeros_like(W_skip), k=k, l1_coefficient=0.1
    )
    assert set(none) == {"W_enc", "b_enc", "W_dec", "b_dec"} and "W_skip" in zero
    assert float(loss_none) == float(loss_zero)
    for name, grad in none.items():
        np.testing.assert_array_equal(grad.numpy(), zero[name].numpy())


def test_the_fused_transcoder_refuses_bad_inputs_with_a_message_naming_them() -> None:
    """PERF-8 keeps the rows' refusals (TC-1, NOT-3, NOT-5, LOSS-7, TOPK-1): a y of another batch, a
    transposed W_skip, a non-finite y, a negative λ, k above d_sae."""
    x, y, W_enc, b_enc, W_dec, b_dec, W_skip = _args()
    p = (W_enc, b_enc, W_dec, b_dec)
    with pytest.raises((TypeCheckError, ValueError), match="batch"):
        transcoder_fused_loss_and_gradients(x, y[:-1], *p, W_skip)
    with pytest.raises(TypeCheckError, match="W_skip"):
        transcoder_fused_loss_and_gradients(x, y, *p, W_skip.T.contiguous())
    bad = y.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="y contains NaN"):
        transcoder_fused_loss_and_gradients(x, bad, *p, W_skip)
    with pytest.raises(ValueError, match="l1_coefficient"):
        transcoder_fused_loss_and_gradients(x, y, *p, W_skip, l1_coefficient=-1.0)
    with pytest.raises(ValueError, match="k must be an integer"):
        transcoder_fused_loss_and_gradients(x, y, *p, W_skip, k=13)


@pytest.mark.parametrize(
    "change", [{"d_out": 0}, {"k": 25}, {"reconstruction": "median"}, {"n_inst": 0}, {"l1_coefficient": -1.0}]
)
def test_a_transcoder_config_refuses_bad_sizes_and_conventions(change: dict[str, object]) -> None:
    """A `TranscoderConfig` checks its sizes, k (TOPK-1), λ (LOSS-7) and conventions when made."""
    with pytest.raises(ValueError, match=next(iter(change))):
        rt.TranscoderConfig(**{"d_in": 4, "d_out": 3, "d_sae": 24, **change})  # type: ignore[arg-type]


def test_the_topk_transcoder_module_computes_the_oracle_forward() -> None:
    """TC-2..TC-4: `Transcoder(k=…).forward` is TOPK-3's latents of x W_enc + b_enc decoded with the skip
    term, the oracle's within TOL-1 (float64, the encoder's and the decode's summation orders)."""
    tc = rt.Transcoder(
        rt.TranscoderConfig(5, 3, 12, k=3, dtype=torch.float64), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        tc.W_skip.copy_(torch.randn(3, 5, dtype=torch.float64))  # type: ignore[union-attr]
        tc.b_enc.copy_(torch.randn(12, dtype=torch.float64))
    x, _ = _xy(10, 5, 3, None)
    f, y_hat = (t.detach().numpy() for t in tc(x))
    p = {n: t.detach().numpy() for n, t in tc.named_parameters()}
    z = x.numpy() @ p["W_enc"] + p["b_enc"]
    np.testing.assert_array_equal(f > 0, oracle.topk(z, k=3) > 0)  # random z: no tie at the k-th value
    expected = oracle.transcoder_decode(f, x.numpy(), p["W_dec"], p["b_dec"], p["W_skip"])
    magnitude = (
        np.abs(f) @ np.abs(p["W_dec"]) + np.abs(p["b_dec"]) + np.abs(x.numpy()) @ np.abs(p["W_skip"]).T
    )
    assert agree(y_hat, expected, magnitude, 2 * (12 + 5 + 3))
    z_magnitude = np.abs(x.numpy()) @ np.abs(p["W_enc"]) + np.abs(p["b_enc"])
    assert agree(f, oracle.topk(z, k=3), z_magnitude, 5 + 2)
