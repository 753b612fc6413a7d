"""Mutants of the transcoder rows (specs/transcoder.md TC-2..TC-10)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from refsae import torch as rt
from refsae.conform.mutants.record import Mutant
from refsae.torch.gradients import autograd_gradients
from refsae.torch.jumprelu import StepFunction


def _centred_input(x: Tensor, b_dec: Tensor) -> Tensor:
    """x − b_dec where the widths agree (the SAE's tied encode), else x − mean(b_dec)."""
    return x - (b_dec if b_dec.shape[-1] == x.shape[-1] else b_dec.mean(dim=-1, keepdim=True))


def forward_subtracts_b_dec(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, W_skip: Tensor, **options: Any
) -> tuple[Tensor, Tensor]:
    """The encoder reads x − b_dec, the bug SAELens #516 and sparsify #49 fixed."""
    f = torch.relu(torch.einsum("b...i,...ij->b...j", _centred_input(x, b_dec), W_enc) + b_enc)
    return f, rt.transcoder_decode(f, x, W_dec, b_dec, W_skip, **options)


def skip_not_trained(*arrays: Tensor, **options: Any) -> dict[str, Tensor]:
    """W_skip used in the forward pass but detached: it never learns."""
    x, y, W_enc, b_enc, W_dec, b_dec, W_skip = arrays
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}

    def loss(x_: Tensor, **p: Tensor) -> Tensor:
        parts = (p["W_enc"], p["b_enc"], p["W_dec"], p["b_dec"], W_skip.detach())
        total: Tensor = rt.transcoder_total_loss(x_, y, *parts, **options)
        return total

    return {**autograd_gradients(loss, x, params), "W_skip": torch.zeros_like(W_skip)}


def topk_gradient_without_relu_mask(*arrays: Tensor, **options: Any) -> dict[str, Tensor]:
    """TopK's selected latents pass gradient to the encoder even where z <= 0 (their value was clamped
    to 0): the mask `selected` instead of `selected ∧ z > 0` (TOPK-5)."""
    x, y, W_enc, b_enc, W_dec, b_dec, W_skip = arrays
    k = options["k"]
    rest = {n: v for n, v in options.items() if n != "k"}
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec, "W_skip": W_skip}

    def loss(x_: Tensor, **p: Tensor) -> Tensor:
        z = torch.einsum("b...i,...ij->b...j", x_, p["W_enc"]) + p["b_enc"]
        values, indices = torch.topk(z, k, dim=-1)
        straight = values + (values.clamp_min(0) - values).detach()  # forward: ReLU; backward: identity
        f = torch.zeros_like(z).scatter(-1, indices, straight)
        y_hat = rt.transcoder_decode(
            f, x_, p["W_dec"], p["b_dec"], p["W_skip"], decoder=rest["decoder"], eps=rest["eps"]
        )
        R = rt.reconstruction_loss(y, y_hat, reconstruction=rest["reconstruction"])
        S = rt.sparsity_loss(f, p["W_dec"], sparsity=rest["sparsity"])
        total: Tensor = (R + rest["l1_coefficient"] * S).sum()
        return total

    return autograd_gradients(loss, x, params)


def jumprelu_forward_without_skip(
    x: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    W_dec: Tensor,
    b_dec: Tensor,
    W_skip: Tensor,
    theta: Tensor,
    **options: Any,
) -> tuple[Tensor, Tensor]:
    """A JumpReLU skip-transcoder whose forward pass leaves out the skip path x W_skipᵀ (TC-4)."""
    return rt.jumprelu_transcoder_forward(
        x, W_enc, b_enc, W_dec, b_dec, torch.zeros_like(W_skip), theta, **options
    )


class _ThresholdAtZ(torch.autograd.Function):
    """z · 1[z > θ] whose pseudo-derivative keeps z where JUMP-3 puts θ: −(z/ε) K in θ (and +(z/ε) K in
    z too under `also_input`, JUMP-15)."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, theta: Tensor, bandwidth: float, also_input: bool) -> Tensor:
        ctx.save_for_backward(z, theta)
        ctx.bandwidth, ctx.also_input = bandwidth, also_input
        return z * (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:
        z, theta = ctx.saved_tensors
        ste = grad * (z / ctx.bandwidth) * ((z - theta).abs() < ctx.bandwidth / 2).to(z.dtype)
        grad_z = grad * (z > theta).to(grad.dtype)
        return (grad_z + ste if ctx.also_input else grad_z), -ste.sum(dim=0), None, None


def jumprelu_threshold_estimator_at_z(*arrays: Tensor, **options: Any) -> dict[str, Tensor]:
    """The threshold's pseudo-derivative through f with z in place of θ: the other estimator JUMP-3 names,
    which differs on every example inside the window; every option honoured as the row's."""
    x, y, W_enc, b_enc, W_dec, b_dec, W_skip, theta = arrays
    lam, bandwidth = options["l0_coefficient"], options["bandwidth"]
    also_input = options.get("ste", "threshold_only") == "also_input"
    params = {
        "W_enc": W_enc,
        "b_enc": b_enc,
        "W_dec": W_dec,
        "b_dec": b_dec,
        "W_skip": W_skip,
        "theta": theta,
    }

    def loss(x_: Tensor, **p: Tensor) -> Tensor:
        z = torch.einsum("b...i,...ij->b...j", x_, p["W_enc"]) + p["b_enc"]
        f: Tensor = _ThresholdAtZ.apply(z, p["theta"], bandwidth, also_input)  # type: ignore[no-untyped-call]
        y_hat = rt.transcoder_decode(
            f, x_, p["W_dec"], p["b_dec"], p["W_skip"], decoder=options["decoder"], eps=options["eps"]
        )
        R = rt.reconstruction_loss(y, y_hat, reconstruction=options["reconstruction"])
        step: Tensor = StepFunction.apply(z, p["theta"], bandwidth, also_input)  # type: ignore[no-untyped-call]
        total: Tensor = (R + lam * step.sum(dim=(0, -1)) / x_.shape[0]).sum()
        return total

    out = autograd_gradients(loss, x, params)
    grad_theta = out.pop("theta")
    log_theta = options.get("parametrisation", "theta") == "log_theta"
    out["threshold"] = theta * grad_theta if log_theta else grad_theta
    return out


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "transcoder_forward_subtracts_b_dec",
        "transcoder_forward",
        "TC-2",
        "the encoder reads x − b_dec (SAELens #516, sparsify #49)",
        forward_subtracts_b_dec,
    ),
    Mutant(
        "transcoder_skip_not_trained",
        "transcoder_loss_gradients",
        "TC-6",
        "W_skip detached: its gradient is 0",
        skip_not_trained,
        output="W_skip",
    ),
    Mutant(
        "topk_transcoder_gradient_without_relu_mask",
        "topk_transcoder_loss_gradients",
        "TC-6",
        "selected latents with z <= 0 pass gradient to the encoder (sparsify's fused encoder)",
        topk_gradient_without_relu_mask,
        max_examples=300,
    ),
    Mutant(
        "jumprelu_transcoder_forward_without_skip",
        "jumprelu_transcoder_forward",
        "TC-4",
        "the JumpReLU skip-transcoder's ŷ leaves out x W_skipᵀ",
        jumprelu_forward_without_skip,
        output="y_hat",
    ),
    Mutant(
        "jumprelu_transcoder_threshold_estimator_at_z",
        "jumprelu_transcoder_loss_gradients",
        "TC-10",
        "the threshold's pseudo-derivative through f is −(z/ε) K instead of JUMP-3's −(θ/ε) K",
        jumprelu_threshold_estimator_at_z,
        output="threshold",
    ),
)
