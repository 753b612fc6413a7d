"""JumpReLU in PyTorch: two autograd Functions carry the straight-through pseudo-derivatives of the
threshold (JUMP-3, JUMP-4); everything else is plain autograd."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import Conventions, check_choice, check_coefficient
from refsae.oracle.jumprelu import PARAMETRISATIONS, Parametrisation, check_bandwidth
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


def _check_threshold(theta: Tensor, bandwidth: float | None = None) -> None:
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
    """f = z · 1[z > θ]; ∂f/∂z = 1[z > θ]; ∂f/∂θ := −(θ/ε) K((z − θ)/ε) (JUMP-3)."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, theta: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return z * (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        z, theta = ctx.saved_tensors
        grad_z = grad * (z > theta).to(grad.dtype)
        grad_theta = (grad * (-(theta / ctx.bandwidth)) * _kernel(z, theta, ctx.bandwidth)).sum(dim=0)
        return grad_z, grad_theta, None


class _Step(torch.autograd.Function):
    """H(z − θ) = 1[z > θ]; ∂H/∂z := 0; ∂H/∂θ := −(1/ε) K((z − θ)/ε) (JUMP-4)."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, theta: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        z, theta = ctx.saved_tensors
        grad_theta = (grad * (-1.0 / ctx.bandwidth) * _kernel(z, theta, ctx.bandwidth)).sum(dim=0)
        return torch.zeros_like(z), grad_theta, None


@typechecked
def jumprelu(z: LatentBatch, theta: LatentVector) -> LatentBatch:
    """f = z · 1[z > θ], strictly (JUMP-1)."""
    _validate.check(batch=z, batch_name="z", z=z, theta=theta)
    _check_threshold(theta)
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
    check_coefficient("l0_coefficient", l0_coefficient)
    _check_threshold(theta, bandwidth)
    c = conventions
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    f: Tensor = JumpReLUFunction.apply(z, theta, bandwidth)  # type: ignore[no-untyped-call]
    x_hat = decode(f, W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    step: Tensor = _Step.apply(z, theta, bandwidth)  # type: ignore[no-untyped-call]
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
) -> dict[str, Tensor]:
    """Autograd through `jumprelu_total_loss`; `threshold` is ∂L/∂θ, or ∂L/∂log θ = θ ∂L/∂θ (the chain
    rule of θ = exp(log θ)) when the stored parameter is log θ (JUMP-5)."""
    check_choice("parametrisation", parametrisation, PARAMETRISATIONS)
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec, "theta": theta}
    out = autograd_gradients(
        jumprelu_total_loss,
        x,
        params,
        l0_coefficient=l0_coefficient,
        bandwidth=bandwidth,
        conventions=conventions,
    )
    grad_theta = out.pop("theta")
    out["threshold"] = theta.detach() * grad_theta if parametrisation == "log_theta" else grad_theta
    return out
