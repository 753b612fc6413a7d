"""JumpReLU transcoders in PyTorch (TC-8..TC-10; specs/transcoder.md): TC-4's transcoder with JUMP-1's
latents, the L0 loss with y as the target, and autograd through the JumpReLU Functions' straight-through
pseudo-derivatives (JUMP-3, JUMP-4)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import (
    DEFAULT_EPS,
    DecoderConvention,
    ReconstructionConvention,
    Ste,
    check_choice,
    check_coefficient,
)
from refsae.oracle.jumprelu import PARAMETRISATIONS, STES, Parametrisation
from refsae.torch import _validate
from refsae.torch._shapes import (
    EncoderWeights,
    InputBatch,
    LatentBatch,
    LatentVector,
    Scalar,
    SkipWeights,
    TargetBatch,
    TargetDecoderWeights,
    TargetVector,
)
from refsae.torch.gradients import autograd_gradients
from refsae.torch.jumprelu import JumpReLUFunction, StepFunction, check_threshold
from refsae.torch.losses import reconstruction_loss
from refsae.torch.transcoder import encoder_pre_activations, same_batch, transcoder_decode

__all__ = [
    "jumprelu_transcoder_forward",
    "jumprelu_transcoder_loss_gradients",
    "jumprelu_transcoder_total_loss",
]


@typechecked
def jumprelu_transcoder_forward(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: TargetDecoderWeights,
    b_dec: TargetVector,
    W_skip: SkipWeights,
    theta: LatentVector,
    *,
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> tuple[LatentBatch, TargetBatch]:
    """(f, ŷ): f = z · 1[z > θ], z = x W_enc + b_enc (TC-8), ŷ = f Ŵ + b_dec + x W_skipᵀ (TC-4)."""
    check_threshold(theta)
    z = encoder_pre_activations(x, W_enc, b_enc)
    f = torch.where(z > theta, z, torch.zeros_like(z))
    return f, transcoder_decode(f, x, W_dec, b_dec, W_skip, decoder=decoder, eps=eps)


def _loss(
    x: Tensor,
    y: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    W_dec: Tensor,
    b_dec: Tensor,
    W_skip: Tensor,
    theta: Tensor,
    *,
    l0_coefficient: float,
    bandwidth: float,
    reconstruction: ReconstructionConvention,
    decoder: DecoderConvention,
    eps: float,
    also_input: bool,
) -> Tensor:
    """TC-9's loss, differentiable through JUMP-3's and JUMP-4's Functions (reaching z too when
    `also_input`, JUMP-15); the value does not depend on `also_input`."""
    check_coefficient("l0_coefficient", l0_coefficient)
    check_threshold(theta, bandwidth)
    _validate.check(y=y, W_dec=W_dec)
    same_batch(y, "y", x, "x")
    z = encoder_pre_activations(x, W_enc, b_enc)
    f: Tensor = JumpReLUFunction.apply(z, theta, bandwidth, also_input)  # type: ignore[no-untyped-call]
    y_hat = transcoder_decode(f, x, W_dec, b_dec, W_skip, decoder=decoder, eps=eps)
    step: Tensor = StepFunction.apply(z, theta, bandwidth, also_input)  # type: ignore[no-untyped-call]
    l0 = step.sum(dim=(0, -1)) / x.shape[0]
    loss: Tensor = (reconstruction_loss(y, y_hat, reconstruction=reconstruction) + l0_coefficient * l0).sum()
    return loss


@typechecked
def jumprelu_transcoder_total_loss(
    x: InputBatch,
    y: TargetBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: TargetDecoderWeights,
    b_dec: TargetVector,
    W_skip: SkipWeights,
    theta: LatentVector,
    *,
    l0_coefficient: float,
    bandwidth: float,
    reconstruction: ReconstructionConvention = "sum",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> Scalar:
    """Σ_inst R(y, ŷ) + λ · (1/B) Σ_b ‖f_b‖₀ (TC-9), differentiable with the pseudo-derivatives."""
    return _loss(
        x, y, W_enc, b_enc, W_dec, b_dec, W_skip, theta,
        l0_coefficient=l0_coefficient, bandwidth=bandwidth, reconstruction=reconstruction,
        decoder=decoder, eps=eps, also_input=False,
    )  # fmt: skip


@typechecked
def jumprelu_transcoder_loss_gradients(
    x: InputBatch,
    y: TargetBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: TargetDecoderWeights,
    b_dec: TargetVector,
    W_skip: SkipWeights,
    theta: LatentVector,
    *,
    l0_coefficient: float,
    bandwidth: float,
    reconstruction: ReconstructionConvention = "sum",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
    parametrisation: Parametrisation = "theta",
    ste: Ste = "threshold_only",
) -> dict[str, Tensor]:
    """Autograd gradients of `jumprelu_transcoder_total_loss` (TC-10); `threshold` is ∂L/∂θ, or
    ∂L/∂log θ = θ ∂L/∂θ under `parametrisation="log_theta"` (JUMP-5)."""
    check_choice("parametrisation", parametrisation, PARAMETRISATIONS)
    check_choice("ste", ste, STES)
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec, "W_skip": W_skip}
    options: dict[str, Any] = {"l0_coefficient": l0_coefficient, "bandwidth": bandwidth}
    options |= {"reconstruction": reconstruction, "decoder": decoder, "eps": eps}

    def loss(x_: Tensor, **p: Tensor) -> Tensor:
        parts = (p["W_enc"], p["b_enc"], p["W_dec"], p["b_dec"], p["W_skip"], p["theta"])
        return _loss(x_, y, *parts, **options, also_input=ste == "also_input")

    out = autograd_gradients(loss, x, {**params, "theta": theta})
    grad_theta = out.pop("theta")
    out["threshold"] = theta.detach() * grad_theta if parametrisation == "log_theta" else grad_theta
    return out
