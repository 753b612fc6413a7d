"""Forward pass definitions: encode (ENC), decoder directions and decode (DEC).

Shapes follow `specs/notation.md`: x (batch, *inst, d_in), W_enc (*inst, d_in, d_sae),
b_enc (*inst, d_sae), W_dec (*inst, d_sae, d_in) whose rows are the dictionary vectors,
b_dec (*inst, d_in), f (batch, *inst, d_sae). `*inst` is empty or one instance axis.
"""

from __future__ import annotations

import numpy as np

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
from refsae.oracle import _validate
from refsae.oracle._shapes import (
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
    """Pre-activations z = (x - b_dec) W_enc + b_enc (`tied`, ENC-2) or x W_enc + b_enc (`untied`, ENC-3)."""
    check_choice("encode", encode, ENCODE)
    _validate.nonempty_batch(x)
    _validate.finite(x=x, W_enc=W_enc, b_enc=b_enc, b_dec=b_dec)
    u = x - b_dec if encode == "tied" else x
    z: np.ndarray = np.einsum("b...i,...ij->b...j", u, W_enc) + b_enc
    return z


@typechecked
def encode(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    b_dec: InputVector,
    *,
    encode: EncodeConvention = "tied",
) -> LatentBatch:
    """Latents f = ReLU(z) with z from `pre_activations` (ENC-1).

    >>> import numpy as np
    >>> x = np.array([[1.0, 2.0]]); W_enc = np.eye(2); b_enc = np.zeros(2); b_dec = np.array([1.5, 0.5])
    >>> encode(x, W_enc, b_enc, b_dec).tolist()
    [[0.0, 1.5]]
    >>> encode(x, W_enc, b_enc, b_dec, encode="untied").tolist()
    [[1.0, 2.0]]
    """
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=encode)
    f: np.ndarray = np.maximum(z, 0.0)
    return f


_encode = encode  # the keyword argument `encode` shadows the function inside `forward`


@typechecked
def decoder_directions(
    W_dec: DecoderWeights,
    *,
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> DecoderWeights:
    """Ŵ: W_dec itself (`constrained`, DEC-2) or each row divided by (‖row‖₂ + eps) (`normalised`, DEC-3).

    >>> import numpy as np
    >>> decoder_directions(np.array([[3.0, 4.0], [0.0, 0.0]]), decoder="normalised", eps=1.0).tolist()
    [[0.5, 0.6666666666666666], [0.0, 0.0]]
    """
    check_choice("decoder", decoder, DECODER)
    check_eps(eps)
    _validate.finite(W_dec=W_dec)
    if decoder == "constrained":
        return W_dec.copy()
    norms = np.linalg.norm(W_dec, axis=-1, keepdims=True)
    W_hat: np.ndarray = W_dec / (norms + eps)
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
    """Reconstruction x_hat = f Ŵ + b_dec (DEC-1).

    >>> import numpy as np
    >>> decode(np.array([[2.0, 0.0]]), np.array([[3.0, 4.0], [1.0, 0.0]]), np.zeros(2)).tolist()
    [[6.0, 8.0]]
    """
    _validate.nonempty_batch(f, "f")
    _validate.finite(f=f, b_dec=b_dec)
    W_hat = decoder_directions(W_dec, decoder=decoder, eps=eps)
    x_hat: np.ndarray = np.einsum("b...j,...ji->b...i", f, W_hat) + b_dec
    return x_hat


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
    """(f, x_hat): encode then decode with the same b_dec (FWD-1)."""
    f = _encode(x, W_enc, b_enc, b_dec, encode=encode)
    return f, decode(f, W_dec, b_dec, decoder=decoder, eps=eps)
