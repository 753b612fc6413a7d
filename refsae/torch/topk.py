"""TopK in PyTorch with a sparse decode (TOPK-1..TOPK-7).

The encoder is dense (every pre-activation is needed to choose the k largest), but nothing after
it is: `topk_encode_sparse` returns (values, indices) of shape (batch, *inst, k), and
`decode_sparse` gathers only the k selected dictionary rows per example. Neither it nor its backward
creates a (batch, d_sae) tensor: the gradient of W_dec is a scatter-add of (batch, k, d_in) rows into
a tensor of W_dec's own size (TOPK-4). The dense `topk` exists for comparison with the oracle.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from refsae._typecheck import CHECKS_ENABLED, typechecked
from refsae.conventions import (
    DECODER,
    DEFAULT_EPS,
    RECONSTRUCTION,
    SPARSITY,
    Conventions,
    DecoderConvention,
    EncodeConvention,
    check_choice,
    check_coefficient,
    check_eps,
)
from refsae.oracle.topk import check_k
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
from refsae.torch.forward import pre_activations
from refsae.torch.gradients import autograd_gradients
from refsae.torch.losses import reconstruction_loss

__all__ = [
    "decode_sparse",
    "topk",
    "topk_encode",
    "topk_encode_sparse",
    "topk_loss_gradients",
    "topk_select",
    "topk_total_loss",
]


@typechecked
def topk_select(
    z: LatentBatch, *, k: int
) -> tuple[Float[Tensor, "batch *inst k"], Int[Tensor, "batch *inst k"]]:
    """The k largest pre-activations per example and their indices, by `torch.topk` (TOPK-1); ties at
    the k-th value are broken however torch breaks them, a valid selection (TOPK-2)."""
    check_k(k, z.shape[-1])
    _validate.check(batch=z, batch_name="z", z=z)
    values, indices = torch.topk(z, k, dim=-1, largest=True, sorted=True)
    return values, indices


@typechecked
def topk(z: LatentBatch, *, k: int) -> LatentBatch:
    """Dense TopK latents (TOPK-3), for comparison with the oracle."""
    values, indices = topk_select(z, k=k)
    return torch.zeros_like(z).scatter(-1, indices, torch.relu(values))


@typechecked
def topk_encode(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    b_dec: InputVector,
    *,
    k: int,
    encode: EncodeConvention = "tied",
) -> LatentBatch:
    """Dense TopK latents of the pre-activations (TOPK-3), the twin of `refsae.oracle.topk_encode`."""
    return topk(pre_activations(x, W_enc, b_enc, b_dec, encode=encode), k=k)


@typechecked
def topk_encode_sparse(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    b_dec: InputVector,
    *,
    k: int,
    encode: EncodeConvention = "tied",
) -> tuple[Float[Tensor, "batch *inst k"], Int[Tensor, "batch *inst k"]]:
    """(max(values, 0), indices) of the k largest pre-activations (TOPK-3)."""
    values, indices = topk_select(pre_activations(x, W_enc, b_enc, b_dec, encode=encode), k=k)
    return torch.relu(values), indices


def _gather_rows(W: Tensor, indices: Tensor) -> Tensor:
    """Rows W[..., indices, :] per example: (batch, *inst, k, d_in), instance by instance."""
    if W.dim() == 2:
        return W[indices]
    instance = torch.arange(W.shape[0], device=W.device)[None, :, None]
    return W[instance, indices]


@typechecked
def decode_sparse(
    values: Float[Tensor, "batch *inst k"],
    indices: Int[Tensor, "batch *inst k"],
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> InputBatch:
    """x_hat = Σ_i values_bi Ŵ_{indices_bi} + b_dec from the k gathered rows (TOPK-4); under
    `normalised` only the gathered rows are normalised (DEC-3)."""
    check_choice("decoder", decoder, DECODER)
    check_eps(eps)
    _validate.check(batch=values, batch_name="values", values=values, W_dec=W_dec, b_dec=b_dec)
    d_sae = W_dec.shape[-2]
    if CHECKS_ENABLED and indices.numel() and bool((indices < 0).any() | (indices >= d_sae).any()):
        raise ValueError(f"indices must lie in 0 … d_sae − 1 = {d_sae - 1}")
    rows = _gather_rows(W_dec, indices)
    if decoder == "normalised":
        rows = rows / (torch.linalg.vector_norm(rows, dim=-1, keepdim=True) + eps)
    x_hat: Tensor = torch.einsum("b...k,b...kd->b...d", values, rows) + b_dec
    return x_hat


@typechecked
def topk_total_loss(
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
    """Σ_instances reconstruction + λ · sparsity through the sparse path (TOPK-6)."""
    check_coefficient("l1_coefficient", l1_coefficient)
    c = conventions
    check_choice("reconstruction", c.reconstruction, RECONSTRUCTION)
    check_choice("sparsity", c.sparsity, SPARSITY)
    values, indices = topk_encode_sparse(x, W_enc, b_enc, b_dec, k=k, encode=c.encode)
    x_hat = decode_sparse(values, indices, W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    magnitude = values.abs()
    if c.sparsity == "l1_decoder_norm":
        norms = torch.linalg.vector_norm(W_dec, dim=-1)
        magnitude = magnitude * _gather_rows(norms[..., None], indices)[..., 0]
    penalty = magnitude.sum(dim=(0, -1)) / x.shape[0]
    return (reconstruction_loss(x, x_hat, reconstruction=c.reconstruction) + l1_coefficient * penalty).sum()


@typechecked
def topk_loss_gradients(
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
    """Autograd gradients of `topk_total_loss` keyed W_enc, b_enc, W_dec, b_dec (TOPK-5)."""
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    return autograd_gradients(
        topk_total_loss, x, params, k=k, l1_coefficient=l1_coefficient, conventions=conventions
    )
