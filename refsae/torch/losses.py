"""The losses in PyTorch: reconstruction, sparsity and total loss (LOSS).

Every function works on CPU and CUDA in float64, float32, bfloat16 and float16, with or without
the instance axis, with no Python loop over batch or latents; each is the twin of the function of
the same name in `refsae.oracle.losses` and is proven against it by the rows of
`refsae.checking.rows.losses`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import (
    RECONSTRUCTION,
    SPARSITY,
    Conventions,
    ReconstructionConvention,
    SparsityConvention,
    check_choice,
    check_coefficient,
)
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
from refsae.torch.forward import forward

__all__ = ["reconstruction_loss", "sparsity_loss", "total_loss", "total_variance"]


def _batch_and_dim_sum(a: Tensor) -> Tensor:
    return a.sum(dim=(0, -1))


@typechecked
def total_variance(x: InputBatch) -> PerInstance:
    """Σ_{b,d} (x − mean_b x)² (LOSS-3)."""
    _validate.check(batch=x, x=x)
    return _batch_and_dim_sum((x - x.mean(dim=0, keepdim=True)) ** 2)


@typechecked
def reconstruction_loss(
    x: InputBatch,
    x_hat: InputBatch,
    *,
    reconstruction: ReconstructionConvention = "sum",
) -> PerInstance:
    """`sum` (LOSS-1), `mean` (LOSS-2) or `fvu` (LOSS-3) reconstruction loss."""
    check_choice("reconstruction", reconstruction, RECONSTRUCTION)
    _validate.check(batch=x, x=x, x_hat=x_hat)
    return _batch_and_dim_sum((x_hat - x) ** 2) / reconstruction_denominator(x, reconstruction)


def reconstruction_denominator(x: Tensor, reconstruction: str) -> Tensor | float:
    """D in the reconstruction loss Σ r² / D: B (sum, LOSS-1), B·d_in (mean, LOSS-2), the total
    variance per instance (fvu, LOSS-3, which is undefined where it is 0); g_xhat = (2/D) r (GRAD-2)."""
    batch, d_in = x.shape[0], x.shape[-1]
    if reconstruction == "sum":
        return float(batch)
    if reconstruction == "mean":
        return float(batch * d_in)
    variance = total_variance(x)
    if bool((variance == 0).any()):
        raise ValueError("fvu is undefined for a batch whose total variance is zero (e.g. batch of 1)")
    return variance


@typechecked
def sparsity_loss(
    f: LatentBatch,
    W_dec: DecoderWeights,
    *,
    sparsity: SparsityConvention = "l1",
) -> PerInstance:
    """`l1` (LOSS-4) or `l1_decoder_norm` (LOSS-5) sparsity penalty."""
    check_choice("sparsity", sparsity, SPARSITY)
    _validate.check(batch=f, batch_name="f", f=f, W_dec=W_dec)
    magnitude = f.abs()
    if sparsity == "l1_decoder_norm":
        magnitude = magnitude * torch.linalg.vector_norm(W_dec, dim=-1)
    return _batch_and_dim_sum(magnitude) / f.shape[0]


@typechecked
def total_loss(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    l1_coefficient: float,
    conventions: Conventions = Conventions(),
) -> Scalar:
    """Σ_instances [reconstruction + l1_coefficient · sparsity] (LOSS-6, LOSS-7)."""
    check_coefficient("l1_coefficient", l1_coefficient)
    c = conventions
    f, x_hat = forward(x, W_enc, b_enc, W_dec, b_dec, encode=c.encode, decoder=c.decoder, eps=c.eps)
    recon = reconstruction_loss(x, x_hat, reconstruction=c.reconstruction)
    return (recon + l1_coefficient * sparsity_loss(f, W_dec, sparsity=c.sparsity)).sum()
