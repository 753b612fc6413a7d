"""Transcoders and skip-transcoders (Dunefsky, Chlenski & Nanda 2024, *Transcoders Find Interpretable LLM
Feature Circuits*; Paulo, Shabalin & Belrose 2025, *Transcoders Beat Sparse Autoencoders for
Interpretability*), TC-1..TC-7 (specs/transcoder.md).

A transcoder reads x (batch, d_in) and reconstructs another vector y (batch, d_out), an MLP's output
from its input. With Ŵ the decoder directions (DEC-2, DEC-3) and W_skip (d_out, d_in) the optional
linear skip connection (zeros: a plain transcoder):

    z     = x W_enc + b_enc                    (TC-2: b_dec is y's bias; nothing is subtracted from x)
    f     = ReLU(z)  or  TopK(z)               (TC-3)
    ŷ     = f Ŵ + b_dec + x W_skipᵀ            (TC-4)
    L     = R(y, ŷ) + λ S(f, W_dec)           (TC-5: LOSS-1..LOSS-5 with y as the target)

and its gradients (TC-6), GRAD-1..GRAD-6 with y as the target, the untied encoder, and the skip's
∂L/∂W_skip = g_ŷᵀ x.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float64

from refsae._typecheck import typechecked
from refsae.conventions import (
    DEFAULT_EPS,
    DecoderConvention,
    ReconstructionConvention,
    SparsityConvention,
    check_coefficient,
)
from refsae.oracle import _validate
from refsae.oracle._shapes import EncoderWeights, InputBatch, LatentBatch, LatentVector, Scalar
from refsae.oracle.forward import decoder_directions
from refsae.oracle.gradients import (
    encoder_backward,
    norm_backward,
    normalisation_backward,
    reconstruction_scale,
)
from refsae.oracle.losses import reconstruction_loss, sparsity_loss
from refsae.oracle.topk import check_k, topk

__all__ = [
    "topk_transcoder_loss_gradients",
    "topk_transcoder_total_loss",
    "transcoder_decode",
    "transcoder_forward",
    "transcoder_loss_gradients",
    "transcoder_total_loss",
]

TargetBatch = Float64[np.ndarray, "batch *inst d_out"]
TargetDecoderWeights = Float64[np.ndarray, "*inst d_sae d_out"]
TargetVector = Float64[np.ndarray, "*inst d_out"]
SkipWeights = Float64[np.ndarray, "*inst d_out d_in"]


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
    """ŷ = f Ŵ + b_dec + x W_skipᵀ (TC-4): the latents' decode plus the skip connection of the input.

    >>> import numpy as np
    >>> f, x = np.array([[2.0, 0.0]]), np.array([[1.0, 3.0, 5.0]])
    >>> W_dec, W_skip = np.array([[1.0], [7.0]]), np.array([[0.0, 1.0, 0.0]])   # d_out 1, d_in 3
    >>> transcoder_decode(f, x, W_dec, np.zeros(1), W_skip).tolist()             # 2·1 + 3
    [[5.0]]
    """
    _validate.nonempty_batch(f, "f")
    _validate.finite(f=f, x=x, b_dec=b_dec, W_skip=W_skip)
    if x.shape[0] != f.shape[0]:
        raise ValueError(f"x has batch {x.shape[0]} and f has batch {f.shape[0]}: one example each")
    W_hat = decoder_directions(W_dec, decoder=decoder, eps=eps)
    y_hat: np.ndarray = (
        np.einsum("b...j,...jo->b...o", f, W_hat) + b_dec + np.einsum("b...i,...oi->b...o", x, W_skip)
    )
    return y_hat


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
    """(f, ŷ) of a ReLU transcoder: f = ReLU(x W_enc + b_enc) with nothing subtracted from x (TC-2,
    TC-3), ŷ = f Ŵ + b_dec + x W_skipᵀ (TC-4).

    >>> import numpy as np
    >>> x, W_enc, b_enc = np.array([[1.0, 2.0]]), np.array([[1.0], [1.0]]), np.array([-1.0])   # z = 2
    >>> W_dec, b_dec, W_skip = np.array([[1.0, 0.0, 2.0]]), np.ones(3), np.zeros((3, 2))       # d_out 3
    >>> [a.tolist() for a in transcoder_forward(x, W_enc, b_enc, W_dec, b_dec, W_skip)]
    [[[2.0]], [[3.0, 1.0, 5.0]]]
    """
    f = np.maximum(encoder_pre_activations(x, W_enc, b_enc), 0.0)
    return f, transcoder_decode(f, x, W_dec, b_dec, W_skip, decoder=decoder, eps=eps)


def encoder_pre_activations(x: np.ndarray, W_enc: np.ndarray, b_enc: np.ndarray) -> np.ndarray:
    """z = x W_enc + b_enc, nothing subtracted from x (TC-2); x non-empty, the three finite."""
    _validate.nonempty_batch(x)
    _validate.finite(x=x, W_enc=W_enc, b_enc=b_enc)
    z: np.ndarray = np.einsum("b...i,...ij->b...j", x, W_enc) + b_enc
    return z


def _loss(
    x: np.ndarray,
    y: np.ndarray,
    f: np.ndarray,
    W_dec: np.ndarray,
    b_dec: np.ndarray,
    W_skip: np.ndarray,
    lam: float,
    reconstruction: str,
    sparsity: str,
    decoder: str,
    eps: float,
) -> np.ndarray:
    _validate.finite(y=y)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y has batch {y.shape[0]} and x has batch {x.shape[0]}: one target per input")
    y_hat = transcoder_decode(f, x, W_dec, b_dec, W_skip, decoder=decoder, eps=eps)  # type: ignore[arg-type]
    per_instance = reconstruction_loss(y, y_hat, reconstruction=reconstruction)  # type: ignore[arg-type]
    per_instance = per_instance + lam * sparsity_loss(f, W_dec, sparsity=sparsity)  # type: ignore[arg-type]
    return np.asarray(per_instance.sum())


def gradients_given_mask(
    x: np.ndarray,
    y: np.ndarray,
    W_enc: np.ndarray,
    W_dec: np.ndarray,
    b_dec: np.ndarray,
    W_skip: np.ndarray,
    z: np.ndarray,
    active: np.ndarray,
    lam: float,
    reconstruction: str,
    sparsity: str,
    decoder: str,
    eps: float,
) -> dict[str, np.ndarray]:
    """TC-6: GRAD-2..GRAD-6 with y as the target, the untied encoder (u = x) and the skip's gradient."""
    batch = x.shape[0]
    f = np.where(active, z, 0.0)
    W_hat = decoder_directions(W_dec, decoder=decoder, eps=eps)  # type: ignore[arg-type]
    y_hat = np.einsum("b...j,...jo->b...o", f, W_hat) + b_dec + np.einsum("b...i,...oi->b...o", x, W_skip)
    g = reconstruction_scale(y, reconstruction) * (y_hat - y)
    norms = np.linalg.norm(W_dec, axis=-1)
    dS_df = np.sign(f) / batch * (norms[None] if sparsity == "l1_decoder_norm" else 1.0)
    g_z = np.where(active, np.einsum("b...o,...jo->b...j", g, W_hat) + lam * dS_df, 0.0)
    encoder = encoder_backward(x, W_enc, np.zeros(x.shape[1:]), g_z, "untied")
    G_hat = np.einsum("b...j,b...o->...jo", f, g)
    grad_W_dec = G_hat if decoder == "constrained" else normalisation_backward(W_dec, G_hat, eps)
    if sparsity == "l1_decoder_norm":
        grad_W_dec = grad_W_dec + norm_backward(W_dec, (lam / batch) * np.abs(f).sum(axis=0))
    return {
        "W_enc": encoder["W_enc"],
        "b_enc": encoder["b_enc"],
        "W_dec": grad_W_dec,
        "b_dec": g.sum(axis=0),
        "W_skip": np.einsum("b...o,b...i->...oi", g, x),
    }


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
    """R(y, ŷ) + λ S(f) with ReLU latents f = ReLU(x W_enc + b_enc), summed over instances (TC-3, TC-5)."""
    check_coefficient("l1_coefficient", l1_coefficient)
    f = np.maximum(encoder_pre_activations(x, W_enc, b_enc), 0.0)
    return _loss(x, y, f, W_dec, b_dec, W_skip, l1_coefficient, reconstruction, sparsity, decoder, eps)


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
) -> dict[str, np.ndarray]:
    """∂L/∂(W_enc, b_enc, W_dec, b_dec, W_skip) of `transcoder_total_loss` (TC-6)."""
    check_coefficient("l1_coefficient", l1_coefficient)
    z = encoder_pre_activations(x, W_enc, b_enc)
    transcoder_total_loss(  # the loss's own checks (shapes, finiteness, batches)
        x, y, W_enc, b_enc, W_dec, b_dec, W_skip, reconstruction=reconstruction, decoder=decoder, eps=eps
    )
    return gradients_given_mask(
        x, y, W_enc, W_dec, b_dec, W_skip, z, z > 0.0, l1_coefficient, reconstruction, sparsity, decoder, eps
    )


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
    """`transcoder_total_loss` with TopK latents (TOPK-3) in place of ReLU's (TC-3)."""
    check_coefficient("l1_coefficient", l1_coefficient)
    check_k(k, W_enc.shape[-1])
    f = topk(encoder_pre_activations(x, W_enc, b_enc), k=k)
    return _loss(x, y, f, W_dec, b_dec, W_skip, l1_coefficient, reconstruction, sparsity, decoder, eps)


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
) -> dict[str, np.ndarray]:
    """Gradients of `topk_transcoder_total_loss` (TC-6): the mask is `selected ∧ z > 0` (TOPK-5)."""
    check_coefficient("l1_coefficient", l1_coefficient)
    check_k(k, W_enc.shape[-1])
    z = encoder_pre_activations(x, W_enc, b_enc)
    topk_transcoder_total_loss(
        x, y, W_enc, b_enc, W_dec, b_dec, W_skip, k=k, reconstruction=reconstruction, decoder=decoder, eps=eps
    )
    active = topk(z, k=k) > 0.0
    return gradients_given_mask(
        x, y, W_enc, W_dec, b_dec, W_skip, z, active, l1_coefficient, reconstruction, sparsity, decoder, eps
    )
