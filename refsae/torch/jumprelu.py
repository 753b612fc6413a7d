"""JumpReLU in PyTorch: two autograd Functions carry the straight-through pseudo-derivatives of the
threshold (JUMP-3, JUMP-4); everything else is plain autograd."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import Conventions, Ste, check_choice, check_coefficient
from refsae.oracle.jumprelu import PARAMETRISATIONS, STES, Parametrisation, check_bandwidth
from refsae.torch import _validate
from refsae.torch._shapes import (
    DecoderWeights,
    EncoderWeights,
    InputBatch,
    InputVector,
    LatentBatch,
    LatentVector,
    Scalar,
)
from refsae.torch.forward import decode, pre_activations
from refsae.torch.gradients import autograd_gradients
from refsae.torch.losses import reconstruction_loss

__all__ = ["jumprelu", "jumprelu_loss_gradients", "jumprelu_total_loss"]


def check_threshold(theta: Tensor, bandwidth: float | None = None) -> None:
    """θ finite and > 0, one dtype and device; the bandwidth finite and > 0 (JUMP-7)."""
    _validate.check(theta=theta)
    if not bool((theta > 0).all()):
        raise ValueError("theta must be > 0 (a JumpReLU threshold is positive)")
    if bandwidth is not None:
        check_bandwidth(bandwidth)


def _kernel(z: Tensor, theta: Tensor, bandwidth: float) -> Tensor:
    """1[|z − θ| < ε/2] in z's dtype (JUMP-4)."""
    return ((z - theta).abs() < bandwidth / 2).to(z.dtype)


class JumpReLUFunction(torch.autograd.Function):  # public for refsae.torch.jumprelu_penalties
    """f = z · 1[z > θ]; ∂f/∂z = 1[z > θ] (plus (θ/ε) K under `also_input`, JUMP-15);
    ∂f/∂θ := −(θ/ε) K((z − θ)/ε) (JUMP-3)."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, theta: Tensor, bandwidth: float, also_input: bool = False) -> Tensor:
        ctx.save_for_backward(z, theta)
        ctx.bandwidth, ctx.also_input = bandwidth, also_input
        return z * (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:
        z, theta = ctx.saved_tensors
        grad_z = grad * (z > theta).to(grad.dtype)
        ste = grad * (theta / ctx.bandwidth) * _kernel(z, theta, ctx.bandwidth)
        if ctx.also_input:
            grad_z = grad_z + ste
        return grad_z, (-ste).sum(dim=0), None, None


class StepFunction(torch.autograd.Function):  # public for refsae.torch.jumprelu_transcoder
    """H(z − θ) = 1[z > θ]; ∂H/∂z := 0 (or (1/ε) K under `also_input`, JUMP-15);
    ∂H/∂θ := −(1/ε) K((z − θ)/ε) (JUMP-4)."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, theta: Tensor, bandwidth: float, also_input: bool = False) -> Tensor:
        ctx.save_for_backward(z, theta)
        ctx.bandwidth, ctx.also_input = bandwidth, also_input
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:
        z, theta = ctx.saved_tensors
        ste = grad * (1.0 / ctx.bandwidth) * _kernel(z, theta, ctx.bandwidth)
        grad_z = ste if ctx.also_input else torch.zeros_like(z)
        return grad_z, (-ste).sum(dim=0), None, None


@typechecked
def jumprelu(z: LatentBatch, theta: LatentVector) -> LatentBatch:
    """f = z · 1[z > θ], strictly (JUMP-1)."""
    _validate.check(batch=z, batch_name="z", z=z, theta=theta)
    check_threshold(theta)
    return torch.where(z > theta, z, torch.zeros_like(z))


@typechecked
def jumprelu_total_loss(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    theta: LatentVector,
    *,
    l0_coefficient: float,
    bandwidth: float,
    conventions: Conventions = Conventions(),
) -> Scalar:
    """Σ_inst reconstruction + λ · L0 (JUMP-2), differentiable with the pseudo-derivatives."""
    return loss_with_estimator(
        x, W_enc, b_enc, W_dec, b_dec, theta, l0_coefficient, bandwidth, conventions, also_input=False
    )


def loss_with_estimator(
    x: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    W_dec: Tensor,
    b_dec: Tensor,
    theta: Tensor,
    l0_coefficient: float,
    bandwidth: float,
    conventions: Conventions,
    also_input: bool,
) -> Tensor:
    """`jumprelu_total_loss` whose autograd Functions pass the straight-through terms to z too when
    `also_input` (JUMP-15); the value is the same."""
    check_coefficient("l0_coefficient", l0_coefficient)
    check_threshold(theta, bandwidth)
    c = conventions
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    f: Tensor = JumpReLUFunction.apply(z, theta, bandwidth, also_input)  # type: ignore[no-untyped-call]
    x_hat = decode(f, W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    step: Tensor = StepFunction.apply(z, theta, bandwidth, also_input)  # type: ignore[no-untyped-call]
    l0 = step.sum(dim=(0, -1)) / x.shape[0]
    loss: Tensor = (
        reconstruction_loss(x, x_hat, reconstruction=c.reconstruction) + l0_coefficient * l0
    ).sum()
    return loss


@typechecked
def jumprelu_loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    theta: LatentVector,
    *,
    l0_coefficient: float,
    bandwidth: float,
    conventions: Conventions = Conventions(),
    parametrisation: Parametrisation = "theta",
    ste: Ste = "threshold_only",
) -> dict[str, Tensor]:
    """Autograd through `jumprelu_total_loss` (the straight-through terms reaching z as well under
    `ste="also_input"`, JUMP-15); `threshold` is ∂L/∂θ, or ∂L/∂log θ = θ ∂L/∂θ (the chain rule of
    θ = exp(log θ)) when the stored parameter is log θ (JUMP-5)."""
    check_choice("parametrisation", parametrisation, PARAMETRISATIONS)
    check_choice("ste", ste, STES)
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec, "theta": theta}

    def loss(x: Tensor, **p: Tensor) -> Tensor:
        return loss_with_estimator(
            x,
            **p,
            l0_coefficient=l0_coefficient,
            bandwidth=bandwidth,
            conventions=conventions,
            also_input=ste == "also_input",
        )

    out = autograd_gradients(loss, x, params)
    grad_theta = out.pop("theta")
    out["threshold"] = theta.detach() * grad_theta if parametrisation == "log_theta" else grad_theta
    return out
