"""Matryoshka SAEs in PyTorch (MAT-1..MAT-8; specs/matryoshka.md): each level's reconstruction from
its prefix of the latents, the level-weighted loss, and the Matryoshka BatchTopK loss with one
BatchTopK selection over every latent. The gradients are autograd's; `refsae.torch.fast.matryoshka`
is the hand-written backward that decodes each group of latents once (PERF-7)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import DEFAULT_EPS, Conventions, DecoderConvention, ReconstructionConvention
from refsae.oracle.batchtopk import check_batch_k
from refsae.oracle.matryoshka import Levels, check_widths, level_weights
from refsae.torch import _validate
from refsae.torch._shapes import (
    DecoderWeights,
    EncoderWeights,
    InputBatch,
    InputVector,
    LatentBatch,
    LatentVector,
    LevelReconstructions,
    Scalar,
)
from refsae.torch.batchtopk import selected
from refsae.torch.forward import decoder_directions, pre_activations
from refsae.torch.gradients import autograd_gradients
from refsae.torch.losses import reconstruction_loss

__all__ = [
    "matryoshka_batchtopk_loss_gradients",
    "matryoshka_batchtopk_total_loss",
    "matryoshka_decode",
    "matryoshka_reconstruction_loss",
]


@typechecked
def matryoshka_decode(
    f: LatentBatch,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    widths: Sequence[int],
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> LevelReconstructions:
    """x̂_i = f_{:m_i} Ŵ_{:m_i} + b_dec per level, stacked on a leading axis (MAT-2)."""
    w = check_widths(widths, f.shape[-1])
    _validate.check(batch=f, batch_name="f", f=f, W_dec=W_dec, b_dec=b_dec)
    W_hat = decoder_directions(W_dec, decoder=decoder, eps=eps)
    return torch.stack([torch.einsum("b...j,...ji->b...i", f[..., :m], W_hat[..., :m, :]) + b_dec for m in w])


@typechecked
def matryoshka_reconstruction_loss(
    x: InputBatch,
    f: LatentBatch,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    widths: Sequence[int],
    levels: Levels = "summed",
    reconstruction: ReconstructionConvention = "sum",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> Scalar:
    """Σ_inst Σ_i w_i R(x, x̂_i) for given latents (MAT-3, MAT-5, MAT-6)."""
    _validate.check(batch=x, x=x, f=f)
    x_hats = matryoshka_decode(f, W_dec, b_dec, widths=widths, decoder=decoder, eps=eps)
    weights = level_weights(x_hats.shape[0], levels)
    per_instance = [
        w * reconstruction_loss(x, x_hat, reconstruction=reconstruction)
        for w, x_hat in zip(weights, x_hats, strict=True)
    ]
    loss: Tensor = torch.stack(per_instance).sum(dim=0).sum()
    return loss


@typechecked
def matryoshka_batchtopk_total_loss(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    k: int,
    widths: Sequence[int],
    levels: Levels = "summed",
    conventions: Conventions = Conventions(),
) -> Scalar:
    """MAT-3's loss of BatchTopK latents selected once over all latents (MAT-4); differentiable."""
    c = conventions
    check_widths(widths, W_enc.shape[-1])
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    check_batch_k(k, z.shape[-1])
    f = torch.where(selected(z.detach(), k), torch.relu(z), torch.zeros_like(z))
    return matryoshka_reconstruction_loss(
        x,
        f,
        W_dec,
        b_dec,
        widths=widths,
        levels=levels,
        reconstruction=c.reconstruction,
        decoder=c.decoder,
        eps=c.eps,
    )


@typechecked
def matryoshka_batchtopk_loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    k: int,
    widths: Sequence[int],
    levels: Levels = "summed",
    conventions: Conventions = Conventions(),
) -> dict[str, Tensor]:
    """Autograd gradients of `matryoshka_batchtopk_total_loss` (MAT-7)."""
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    return autograd_gradients(
        matryoshka_batchtopk_total_loss, x, params, k=k, widths=widths, levels=levels, conventions=conventions
    )
