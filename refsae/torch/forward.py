"""The forward pass in PyTorch: pre-activations, encode, decoder directions, decode (ENC, DEC, FWD).

Every function works on CPU and CUDA in float64, float32, bfloat16 and float16, with or without
the instance axis, with no Python loop over batch or latents; each is the twin of the function of
the same name in `refsae.oracle.forward` and is proven against it by the rows of
`refsae.checking.rows.forward`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import (
    DECODER,
    DEFAULT_EPS,
    ENCODE,
    DecoderConvention,
    EncodeConvention,
    check_choice,
    check_eps,
)
from refsae.torch import _validate
from refsae.torch._shapes import (
    DecoderWeights,
    EncoderWeights,
    InputBatch,
    InputVector,
    LatentBatch,
    LatentVector,
)

__all__ = ["decode", "decoder_directions", "encode", "forward", "pre_activations"]


@typechecked
def pre_activations(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    b_dec: InputVector,
    *,
    encode: EncodeConvention = "tied",
) -> LatentBatch:
    """z = (x − b_dec) W_enc + b_enc (tied, ENC-2) or x W_enc + b_enc (untied, ENC-3)."""
    check_choice("encode", encode, ENCODE)
    _validate.check(batch=x, x=x, W_enc=W_enc, b_enc=b_enc, b_dec=b_dec)
    u = x - b_dec if encode == "tied" else x
    return torch.einsum("b...i,...ij->b...j", u, W_enc) + b_enc


@typechecked
def encode(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    b_dec: InputVector,
    *,
    encode: EncodeConvention = "tied",
) -> LatentBatch:
    """f = ReLU(z) (ENC-1)."""
    f: Tensor = torch.relu(pre_activations(x, W_enc, b_enc, b_dec, encode=encode))
    return f


_encode = encode  # the keyword argument `encode` shadows the function inside `forward`


@typechecked
def decoder_directions(
    W_dec: DecoderWeights,
    *,
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> DecoderWeights:
    """Ŵ = W_dec (constrained, DEC-2) or W_dec_j / (‖W_dec_j‖ + eps) (normalised, DEC-3)."""
    check_choice("decoder", decoder, DECODER)
    check_eps(eps)
    _validate.check(W_dec=W_dec)
    if decoder == "constrained":
        return W_dec
    W_hat: Tensor = W_dec / (torch.linalg.vector_norm(W_dec, dim=-1, keepdim=True) + eps)
    return W_hat


@typechecked
def decode(
    f: LatentBatch,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> InputBatch:
    """x_hat = f Ŵ + b_dec (DEC-1)."""
    _validate.check(batch=f, batch_name="f", f=f, W_dec=W_dec, b_dec=b_dec)
    W_hat = decoder_directions(W_dec, decoder=decoder, eps=eps)
    return torch.einsum("b...j,...ji->b...i", f, W_hat) + b_dec


@typechecked
def forward(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    encode: EncodeConvention = "tied",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> tuple[LatentBatch, InputBatch]:
    """(f, x_hat) (FWD-1)."""
    f = _encode(x, W_enc, b_enc, b_dec, encode=encode)
    return f, decode(f, W_dec, b_dec, decoder=decoder, eps=eps)
