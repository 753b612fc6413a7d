"""JumpReLU transcoders and skip-transcoders (SAELens's `JumpReLUTranscoder`, `JumpReLUSkipTranscoder`;
the Gemma Scope 2 transcoders), TC-8..TC-10 (specs/transcoder.md): TC-1..TC-4's transcoder with
JUMP-1's latents, trained with JUMP-2's L0 penalty and JUMP-3..JUMP-5's pseudo-derivatives.

    z  = x W_enc + b_enc                      (TC-2: nothing subtracted from x)
    f  = z · 1[z > θ]                          (TC-8: JUMP-1, θ > 0)
    ŷ  = f Ŵ + b_dec + x W_skipᵀ               (TC-4)
    L  = R(y, ŷ) + λ (1/B) Σ_b ‖f_b‖₀          (TC-9: JUMP-2 with y as the target)

Gradients (TC-10): TC-6's with the mask 1[z > θ] and no L1 term; the threshold's JUMP-3 + JUMP-4 with
g_f = g_ŷ Ŵᵀ, stored as θ or log θ (JUMP-5); under `ste="also_input"` the straight-through terms reach z
through the untied encoder (JUMP-15).
"""

from __future__ import annotations

import numpy as np

from refsae._typecheck import typechecked
from refsae.conventions import (
    DEFAULT_EPS,
    DecoderConvention,
    ReconstructionConvention,
    Ste,
    check_choice,
    check_coefficient,
)
from refsae.oracle import _validate
from refsae.oracle._shapes import EncoderWeights, InputBatch, LatentBatch, LatentVector, Scalar
from refsae.oracle.forward import decoder_directions
from refsae.oracle.gradients import encoder_backward, reconstruction_scale
from refsae.oracle.jumprelu import (
    PARAMETRISATIONS,
    STES,
    Parametrisation,
    check_threshold,
    kernel,
)
from refsae.oracle.losses import reconstruction_loss
from refsae.oracle.transcoder import (
    SkipWeights,
    TargetBatch,
    TargetDecoderWeights,
    TargetVector,
    encoder_pre_activations,
    gradients_given_mask,
    transcoder_decode,
)

__all__ = [
    "jumprelu_transcoder_forward",
    "jumprelu_transcoder_loss_gradients",
    "jumprelu_transcoder_total_loss",
]


@typechecked
def jumprelu_transcoder_forward(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: TargetDecoderWeights,
    b_dec: TargetVector,
    W_skip: SkipWeights,
    theta: LatentVector,
    *,
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> tuple[LatentBatch, TargetBatch]:
    """(f, ŷ) of a JumpReLU transcoder: f = z · 1[z > θ] with z = x W_enc + b_enc (TC-2, TC-8),
    ŷ = f Ŵ + b_dec + x W_skipᵀ (TC-4).

    >>> import numpy as np
    >>> x, W_enc, b_enc = np.array([[1.0, 2.0]]), np.array([[1.0, 0.5], [1.0, 0.0]]), np.zeros(2)
    >>> W_dec, b_dec, W_skip = np.array([[1.0], [4.0]]), np.zeros(1), np.zeros((1, 2))   # d_out 1
    >>> theta = np.array([1.0, 1.0])                                                     # z = 3, 0.5
    >>> f, y_hat = jumprelu_transcoder_forward(x, W_enc, b_enc, W_dec, b_dec, W_skip, theta)
    >>> f.tolist(), y_hat.tolist()                                                 # 0.5 is under its θ
    ([[3.0, 0.0]], [[3.0]])
    """
    check_threshold(theta)
    z = encoder_pre_activations(x, W_enc, b_enc)
    f = np.where(z > theta, z, 0.0)
    return f, transcoder_decode(f, x, W_dec, b_dec, W_skip, decoder=decoder, eps=eps)


def _checked(
    x: np.ndarray,
    y: np.ndarray,
    W_enc: np.ndarray,
    b_enc: np.ndarray,
    theta: np.ndarray,
    l0_coefficient: float,
    bandwidth: float,
) -> np.ndarray:
    """z, after JUMP-7's and TC-1's input rules."""
    check_coefficient("l0_coefficient", l0_coefficient)
    check_threshold(theta, bandwidth)
    _validate.finite(y=y)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y has batch {y.shape[0]} and x has batch {x.shape[0]}: one target per input")
    return encoder_pre_activations(x, W_enc, b_enc)


@typechecked
def jumprelu_transcoder_total_loss(
    x: InputBatch,
    y: TargetBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: TargetDecoderWeights,
    b_dec: TargetVector,
    W_skip: SkipWeights,
    theta: LatentVector,
    *,
    l0_coefficient: float,
    bandwidth: float,
    reconstruction: ReconstructionConvention = "sum",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> Scalar:
    """Σ_inst R(y, ŷ) + λ · (1/B) Σ_b ‖f_b‖₀ (TC-9). `bandwidth` only shapes the pseudo-gradients; it is
    checked here too, so a bad one fails early.

    >>> import numpy as np
    >>> x, y = np.array([[1.0, 2.0]]), np.array([[3.0]])
    >>> W_enc, b_enc = np.array([[1.0, 0.5], [1.0, 0.0]]), np.zeros(2)                # z = 3, 0.5
    >>> W_dec, b_dec, W_skip = np.array([[1.0], [4.0]]), np.zeros(1), np.zeros((1, 2))
    >>> float(jumprelu_transcoder_total_loss(x, y, W_enc, b_enc, W_dec, b_dec, W_skip, np.ones(2),
    ...                                      l0_coefficient=0.5, bandwidth=0.25))    # ŷ = y; one active
    0.5
    """
    z = _checked(x, y, W_enc, b_enc, theta, l0_coefficient, bandwidth)
    active = z > theta
    y_hat = transcoder_decode(np.where(active, z, 0.0), x, W_dec, b_dec, W_skip, decoder=decoder, eps=eps)
    l0 = active.sum(axis=(0, -1)) / x.shape[0]
    per_instance = reconstruction_loss(y, y_hat, reconstruction=reconstruction) + l0_coefficient * l0
    return np.asarray(per_instance.sum())


@typechecked
def jumprelu_transcoder_loss_gradients(
    x: InputBatch,
    y: TargetBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: TargetDecoderWeights,
    b_dec: TargetVector,
    W_skip: SkipWeights,
    theta: LatentVector,
    *,
    l0_coefficient: float,
    bandwidth: float,
    reconstruction: ReconstructionConvention = "sum",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
    parametrisation: Parametrisation = "theta",
    ste: Ste = "threshold_only",
) -> dict[str, np.ndarray]:
    """∂L/∂(W_enc, b_enc, W_dec, b_dec, W_skip) of `jumprelu_transcoder_total_loss` (TC-6 with the mask
    1[z > θ]) and `threshold`, the pseudo-gradient of the stored θ or log θ (TC-10)."""
    check_choice("parametrisation", parametrisation, PARAMETRISATIONS)
    check_choice("ste", ste, STES)
    jumprelu_transcoder_total_loss(  # the loss's own checks (shapes, finiteness, batches)
        x, y, W_enc, b_enc, W_dec, b_dec, W_skip, theta,
        l0_coefficient=l0_coefficient, bandwidth=bandwidth, reconstruction=reconstruction,
        decoder=decoder, eps=eps,
    )  # fmt: skip
    z = _checked(x, y, W_enc, b_enc, theta, l0_coefficient, bandwidth)
    active = z > theta
    grads = gradients_given_mask(
        x, y, W_enc, W_dec, b_dec, W_skip, z, active, 0.0, reconstruction, "l1", decoder, eps
    )
    W_hat = decoder_directions(W_dec, decoder=decoder, eps=eps)
    y_hat = transcoder_decode(np.where(active, z, 0.0), x, W_dec, b_dec, W_skip, decoder=decoder, eps=eps)
    g_f = np.einsum("b...o,...jo->b...j", reconstruction_scale(y, reconstruction) * (y_hat - y), W_hat)
    K = kernel(z, theta, bandwidth)
    through_f = g_f * (theta / bandwidth) * K  # JUMP-3, with the sign of z
    through_l0 = l0_coefficient / x.shape[0] * K / bandwidth  # JUMP-4, with the sign of z
    grad_theta = -(through_f + through_l0).sum(axis=0)
    if ste == "also_input":  # JUMP-15 through the untied encoder: W_enc and b_enc only
        ste_grads = encoder_backward(x, W_enc, np.zeros(x.shape[1:]), through_f + through_l0, "untied")
        grads["W_enc"] = grads["W_enc"] + ste_grads["W_enc"]
        grads["b_enc"] = grads["b_enc"] + ste_grads["b_enc"]
    grads["threshold"] = theta * grad_theta if parametrisation == "log_theta" else grad_theta
    return grads
