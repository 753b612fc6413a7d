"""BatchTopK in PyTorch (BTOPK-1..BTOPK-7): one `torch.topk` over the flattened batch per instance."""

from __future__ import annotations

import torch
from jaxtyping import Bool
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import Conventions, check_coefficient
from refsae.oracle.batchtopk import ThresholdUpdate, check_batch_k, check_update_options
from refsae.torch import _validate
from refsae.torch._shapes import (
    DecoderWeights,
    EncoderWeights,
    InputBatch,
    InputVector,
    LatentBatch,
    LatentVector,
    PerInstance,
    Scalar,
)
from refsae.torch.forward import decode, pre_activations
from refsae.torch.gradients import autograd_gradients
from refsae.torch.losses import reconstruction_loss, sparsity_loss

__all__ = [
    "batchtopk",
    "batchtopk_inference",
    "batchtopk_loss_gradients",
    "batchtopk_min_positive",
    "batchtopk_total_loss",
    "batchtopk_update_threshold",
]


def selected(z: Tensor, k: int) -> Tensor:
    """Mask of the k·B largest entries of z over (batch, latents), per instance (BTOPK-1)."""
    batch, d_sae = z.shape[0], z.shape[-1]
    flat = z.movedim(0, -2).reshape(*z.shape[1:-1], batch * d_sae)
    indices = torch.topk(flat, k * batch, dim=-1).indices
    chosen = torch.zeros_like(flat, dtype=torch.bool).scatter(-1, indices, True)
    return chosen.reshape(*z.shape[1:-1], batch, d_sae).movedim(-2, 0)


@typechecked
def batchtopk(z: LatentBatch, *, k: int) -> LatentBatch:
    """Training latents (BTOPK-1); ties across the k·B-th value broken by torch (BTOPK-2)."""
    check_batch_k(k, z.shape[-1])
    _validate.check(batch=z, batch_name="z", z=z)
    return torch.where(selected(z, k), torch.relu(z), torch.zeros_like(z))


@typechecked
def batchtopk_min_positive(f: LatentBatch) -> tuple[PerInstance, Bool[Tensor, "*inst"]]:
    """(m, has): the smallest positive latent per instance, 0 where there is none (BTOPK-4)."""
    _validate.check(batch=f, batch_name="f", f=f)
    positive = f > 0
    has = positive.any(dim=0).any(dim=-1)
    smallest = torch.where(positive, f, torch.full_like(f, float("inf"))).amin(dim=(0, -1))
    return torch.where(has, smallest, torch.zeros_like(smallest)), has


@typechecked
def batchtopk_update_threshold(
    threshold: PerInstance,
    f: LatentBatch,
    *,
    n_batches: int,
    update: ThresholdUpdate = "mean",
    beta: float = 0.99,
) -> PerInstance:
    """The threshold estimate after one more batch (BTOPK-4, BTOPK-5)."""
    check_update_options(n_batches, update, beta)
    _validate.check(threshold=threshold, f=f)
    m, has = batchtopk_min_positive(f)
    new = (
        threshold + (m - threshold) / (n_batches + 1)
        if update == "mean"
        else beta * threshold + (1 - beta) * m
    )
    return torch.where(has, new, threshold)


@typechecked
def batchtopk_inference(z: LatentBatch, threshold: PerInstance) -> LatentBatch:
    """z · 1[z > max(θ, 0)] with one θ per instance (BTOPK-6)."""
    _validate.check(batch=z, batch_name="z", z=z, threshold=threshold)
    theta = threshold.clamp(min=0)[..., None]
    return torch.where(z > theta, z, torch.zeros_like(z))


@typechecked
def batchtopk_total_loss(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    k: int,
    l1_coefficient: float = 0.0,
    conventions: Conventions = Conventions(),
) -> Scalar:
    """LOSS-6 with BatchTopK training latents (BTOPK-3)."""
    check_coefficient("l1_coefficient", l1_coefficient)
    c = conventions
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    check_batch_k(k, z.shape[-1])
    f = torch.where(selected(z.detach(), k), torch.relu(z), torch.zeros_like(z))
    x_hat = decode(f, W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    penalty = sparsity_loss(f, W_dec, sparsity=c.sparsity)
    loss: Tensor = (
        reconstruction_loss(x, x_hat, reconstruction=c.reconstruction) + l1_coefficient * penalty
    ).sum()
    return loss


@typechecked
def batchtopk_loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    k: int,
    l1_coefficient: float = 0.0,
    conventions: Conventions = Conventions(),
) -> dict[str, Tensor]:
    """Autograd gradients of `batchtopk_total_loss` (BTOPK-3)."""
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    return autograd_gradients(
        batchtopk_total_loss, x, params, k=k, l1_coefficient=l1_coefficient, conventions=conventions
    )
