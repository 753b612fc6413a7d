"""Transcoders and skip-transcoders in PyTorch (TC-1..TC-7; specs/transcoder.md): the decode with the
skip connection, the ReLU and TopK losses with y as the target, and their autograd gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import (
    DEFAULT_EPS,
    DecoderConvention,
    ReconstructionConvention,
    SparsityConvention,
    check_coefficient,
)
from refsae.oracle.topk import check_k
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
from refsae.torch.forward import decoder_directions
from refsae.torch.gradients import autograd_gradients
from refsae.torch.losses import reconstruction_loss, sparsity_loss
from refsae.torch.topk import topk

__all__ = [
    "topk_transcoder_loss_gradients",
    "topk_transcoder_total_loss",
    "transcoder_decode",
    "transcoder_forward",
    "transcoder_loss_gradients",
    "transcoder_total_loss",
]


def same_batch(a: Tensor, a_name: str, b: Tensor, b_name: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{a_name} has batch {a.shape[0]} and {b_name} has batch {b.shape[0]}: one each")


@typechecked
def transcoder_decode(
    f: LatentBatch,
    x: InputBatch,
    W_dec: TargetDecoderWeights,
    b_dec: TargetVector,
    W_skip: SkipWeights,
    *,
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> TargetBatch:
    """ŷ = f Ŵ + b_dec + x W_skipᵀ (TC-4)."""
    _validate.check(batch=f, batch_name="f", f=f, x=x, W_dec=W_dec, b_dec=b_dec, W_skip=W_skip)
    same_batch(x, "x", f, "f")
    W_hat = decoder_directions(W_dec, decoder=decoder, eps=eps)
    return (
        torch.einsum("b...j,...jo->b...o", f, W_hat) + b_dec + torch.einsum("b...i,...oi->b...o", x, W_skip)
    )


def encoder_pre_activations(x: Tensor, W_enc: Tensor, b_enc: Tensor) -> Tensor:
    _validate.check(batch=x, x=x, W_enc=W_enc, b_enc=b_enc)
    return torch.einsum("b...i,...ij->b...j", x, W_enc) + b_enc


@typechecked
def transcoder_forward(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: TargetDecoderWeights,
    b_dec: TargetVector,
    W_skip: SkipWeights,
    *,
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> tuple[LatentBatch, TargetBatch]:
    """(f, ŷ) of a ReLU transcoder (TC-2..TC-4)."""
    f = torch.relu(encoder_pre_activations(x, W_enc, b_enc))
    return f, transcoder_decode(f, x, W_dec, b_dec, W_skip, decoder=decoder, eps=eps)


def _loss(
    x: Tensor,
    y: Tensor,
    f: Tensor,
    W_dec: Tensor,
    b_dec: Tensor,
    W_skip: Tensor,
    lam: float,
    reconstruction: ReconstructionConvention,
    sparsity: SparsityConvention,
    decoder: DecoderConvention,
    eps: float,
) -> Tensor:
    _validate.check(y=y, W_dec=W_dec)
    same_batch(y, "y", x, "x")
    y_hat = transcoder_decode(f, x, W_dec, b_dec, W_skip, decoder=decoder, eps=eps)
    per_instance = reconstruction_loss(y, y_hat, reconstruction=reconstruction)
    loss: Tensor = (per_instance + lam * sparsity_loss(f, W_dec, sparsity=sparsity)).sum()
    return loss


@typechecked
def transcoder_total_loss(
    x: InputBatch,
    y: TargetBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: TargetDecoderWeights,
    b_dec: TargetVector,
    W_skip: SkipWeights,
    *,
    l1_coefficient: float = 0.0,
    reconstruction: ReconstructionConvention = "sum",
    sparsity: SparsityConvention = "l1",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> Scalar:
    """R(y, ŷ) + λ S(f), f = ReLU(x W_enc + b_enc) (TC-3, TC-5); differentiable."""
    check_coefficient("l1_coefficient", l1_coefficient)
    f = torch.relu(encoder_pre_activations(x, W_enc, b_enc))
    return _loss(x, y, f, W_dec, b_dec, W_skip, l1_coefficient, reconstruction, sparsity, decoder, eps)


@typechecked
def topk_transcoder_total_loss(
    x: InputBatch,
    y: TargetBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: TargetDecoderWeights,
    b_dec: TargetVector,
    W_skip: SkipWeights,
    *,
    k: int,
    l1_coefficient: float = 0.0,
    reconstruction: ReconstructionConvention = "sum",
    sparsity: SparsityConvention = "l1",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> Scalar:
    """`transcoder_total_loss` with TopK latents (TOPK-3, TC-3); differentiable."""
    check_coefficient("l1_coefficient", l1_coefficient)
    check_k(k, W_enc.shape[-1])
    f = topk(encoder_pre_activations(x, W_enc, b_enc), k=k)
    return _loss(x, y, f, W_dec, b_dec, W_skip, l1_coefficient, reconstruction, sparsity, decoder, eps)


_PARAMETERS = ("W_enc", "b_enc", "W_dec", "b_dec", "W_skip")


def _gradients(
    loss_fn: Callable[..., Tensor], x: Tensor, y: Tensor, params: tuple[Tensor, ...], options: dict[str, Any]
) -> dict[str, Tensor]:
    """Autograd gradients of `loss_fn(x, y, *params, **options)` with respect to the five parameters."""

    def loss(x_: Tensor, **p: Tensor) -> Tensor:
        return loss_fn(x_, y, *(p[name] for name in _PARAMETERS), **options)

    return autograd_gradients(loss, x, dict(zip(_PARAMETERS, params, strict=True)))


@typechecked
def transcoder_loss_gradients(
    x: InputBatch,
    y: TargetBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: TargetDecoderWeights,
    b_dec: TargetVector,
    W_skip: SkipWeights,
    *,
    l1_coefficient: float = 0.0,
    reconstruction: ReconstructionConvention = "sum",
    sparsity: SparsityConvention = "l1",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> dict[str, Tensor]:
    """Autograd gradients of `transcoder_total_loss` (TC-6)."""
    options: dict[str, Any] = {"l1_coefficient": l1_coefficient, "reconstruction": reconstruction}
    options |= {"sparsity": sparsity, "decoder": decoder, "eps": eps}
    return _gradients(transcoder_total_loss, x, y, (W_enc, b_enc, W_dec, b_dec, W_skip), options)


@typechecked
def topk_transcoder_loss_gradients(
    x: InputBatch,
    y: TargetBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: TargetDecoderWeights,
    b_dec: TargetVector,
    W_skip: SkipWeights,
    *,
    k: int,
    l1_coefficient: float = 0.0,
    reconstruction: ReconstructionConvention = "sum",
    sparsity: SparsityConvention = "l1",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> dict[str, Tensor]:
    """Autograd gradients of `topk_transcoder_total_loss` (TC-6)."""
    options: dict[str, Any] = {"k": k, "l1_coefficient": l1_coefficient, "reconstruction": reconstruction}
    options |= {"sparsity": sparsity, "decoder": decoder, "eps": eps}
    return _gradients(topk_transcoder_total_loss, x, y, (W_enc, b_enc, W_dec, b_dec, W_skip), options)
