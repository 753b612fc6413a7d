"""JumpReLU's newer sparsity penalties (JUMP-9..JUMP-13; specs/jumprelu.md), as SAELens trains them
(`jumprelu_sparsity_loss_mode="tanh"`, `pre_act_loss_coefficient`; after Anthropic's
[January 2025 update](https://transformer-circuits.pub/2025/january-update/index.html)).
With f = z · H(z − θ) (JUMP-1), s_j = ‖W_dec_j‖ (the raw rows) and c the tanh scale, per instance:

    tanh penalty:      P = λ (1/B) Σ_b Σ_j tanh(c f_bj s_j)                 in place of JUMP-2's λ · L0
    pre-activation:    Q = λ_p (1/B) Σ_b Σ_j d_j · relu(θ_j − z_bj) · s_j   d_j = 1 for a dead latent

P reaches θ through f's pseudo-derivative (JUMP-3) and z through f's true derivative H(z − θ);
Q is differentiated exactly (relu'(0) := 0; the cases keep z off θ, JUMP-8).

    ∂P/∂f_bj = (λ/B) c s_j sech²(c f_bj s_j)      ∂P/∂s_j = (λ/B) Σ_b c f_bj sech²(c f_bj s_j)
    ∂Q/∂z_bj = −(λ_p/B) d_j s_j 1[θ_j > z_bj]     ∂Q/∂θ_j = (λ_p/B) Σ_b d_j s_j 1[θ_j > z_bj]
    ∂Q/∂s_j  = (λ_p/B) Σ_b d_j relu(θ_j − z_bj)    and ∂s_j/∂W_dec_j = W_dec_j / s_j
"""

from __future__ import annotations

import math

import numpy as np
from jaxtyping import Shaped

from refsae._typecheck import typechecked
from refsae.conventions import Conventions, EncodeConvention, Ste, check_choice, check_coefficient
from refsae.oracle import _validate
from refsae.oracle._shapes import (
    DecoderWeights,
    EncoderWeights,
    InputBatch,
    InputVector,
    LatentVector,
    Scalar,
)
from refsae.oracle.auxk import check_dead
from refsae.oracle.forward import pre_activations
from refsae.oracle.gradients import encoder_backward, norm_backward
from refsae.oracle.jumprelu import (
    PARAMETRISATIONS,
    Parametrisation,
    add_ste_to_input,
    check_threshold,
    jumprelu_loss_gradients,
    jumprelu_total_loss,
)

__all__ = [
    "jumprelu_pre_act_penalty",
    "jumprelu_pre_act_penalty_gradients",
    "jumprelu_tanh_loss_gradients",
    "jumprelu_tanh_total_loss",
]

TANH_SCALE = 4.0
"""SAELens's default `jumprelu_tanh_scale`."""

DeadMask = Shaped[np.ndarray, "*inst d_sae"]


def check_tanh_scale(tanh_scale: float) -> None:
    """The tanh scale c is a finite number > 0 (JUMP-9)."""
    if isinstance(tanh_scale, bool) or not (
        isinstance(tanh_scale, int | float) and math.isfinite(tanh_scale) and tanh_scale > 0
    ):
        raise ValueError(f"tanh_scale must be a finite number > 0, got {tanh_scale!r}")


@typechecked
def jumprelu_tanh_total_loss(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    theta: LatentVector,
    *,
    l0_coefficient: float,
    bandwidth: float,
    tanh_scale: float = TANH_SCALE,
    conventions: Conventions = Conventions(),
) -> Scalar:
    """Σ_inst reconstruction + λ (1/B) Σ_b Σ_j tanh(c f_bj ‖W_dec_j‖) (JUMP-9): JUMP-2 with the tanh
    penalty, a smooth count of the active latents weighted by their decoder norms."""
    check_coefficient("l0_coefficient", l0_coefficient)
    check_threshold(theta, bandwidth)
    check_tanh_scale(tanh_scale)
    c = conventions
    reconstruction = jumprelu_total_loss(
        x, W_enc, b_enc, W_dec, b_dec, theta, l0_coefficient=0.0, bandwidth=bandwidth, conventions=c
    )
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    f = np.where(z > theta, z, 0.0)
    s = np.linalg.norm(W_dec, axis=-1)
    penalty = np.tanh(tanh_scale * f * s).sum(axis=(0, -1)) / x.shape[0]
    return np.asarray(reconstruction + l0_coefficient * penalty.sum())


@typechecked
def jumprelu_tanh_loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    theta: LatentVector,
    *,
    l0_coefficient: float,
    bandwidth: float,
    tanh_scale: float = TANH_SCALE,
    conventions: Conventions = Conventions(),
    parametrisation: Parametrisation = "theta",
    ste: Ste = "threshold_only",
) -> dict[str, np.ndarray]:
    """Gradients of `jumprelu_tanh_total_loss` (JUMP-10): JUMP-6's at λ = 0 plus the penalty's, whose
    ∂P/∂f reaches z through H(z − θ) (and +(θ/ε) K under `ste="also_input"`, JUMP-15), θ through
    −(θ/ε) K (JUMP-3), and W_dec also through s_j."""
    check_coefficient("l0_coefficient", l0_coefficient)
    check_tanh_scale(tanh_scale)
    check_choice("parametrisation", parametrisation, PARAMETRISATIONS)
    c = conventions
    grads = jumprelu_loss_gradients(
        x, W_enc, b_enc, W_dec, b_dec, theta, l0_coefficient=0.0, bandwidth=bandwidth, conventions=c, ste=ste
    )
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    active = z > theta
    f = np.where(active, z, 0.0)
    s = np.linalg.norm(W_dec, axis=-1)
    e = np.exp(-2.0 * np.abs(tanh_scale * f * s))
    sech2 = 4.0 * e / (1.0 + e) ** 2  # 1 / cosh², without overflow
    scale = l0_coefficient / x.shape[0]
    g_f = scale * tanh_scale * s * sech2
    for k, v in encoder_backward(x, W_enc, b_dec, np.where(active, g_f, 0.0), c.encode).items():
        grads[k] = grads[k] + v
    grads["W_dec"] = grads["W_dec"] + norm_backward(W_dec, (scale * tanh_scale * f * sech2).sum(axis=0))
    K = np.abs(z - theta) < bandwidth / 2
    add_ste_to_input(grads, x, W_enc, b_dec, g_f * (theta / bandwidth) * K, c.encode, ste)
    grad_theta = grads["threshold"] + (g_f * (-theta / bandwidth) * K).sum(axis=0)
    grads["threshold"] = theta * grad_theta if parametrisation == "log_theta" else grad_theta
    return grads


@typechecked
def jumprelu_pre_act_penalty(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    theta: LatentVector,
    dead: DeadMask,
    *,
    pre_act_coefficient: float,
    encode: EncodeConvention = "tied",
) -> Scalar:
    """Σ_inst λ_p (1/B) Σ_b Σ_j d_j relu(θ_j − z_bj) ‖W_dec_j‖ (JUMP-11): pushes a dead latent's
    pre-activations up towards its threshold, in proportion to its decoder norm; 0 when no latent is
    dead."""
    check_coefficient("pre_act_coefficient", pre_act_coefficient)
    check_threshold(theta)
    dead = check_dead(dead)
    _validate.finite(x=x, W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=b_dec)
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=encode)
    s = np.linalg.norm(W_dec, axis=-1)
    terms = dead * np.maximum(theta - z, 0.0) * s
    return np.asarray(pre_act_coefficient * terms.sum(axis=(0, -1)).sum() / x.shape[0])


@typechecked
def jumprelu_pre_act_penalty_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    theta: LatentVector,
    dead: DeadMask,
    *,
    pre_act_coefficient: float,
    encode: EncodeConvention = "tied",
    parametrisation: Parametrisation = "theta",
) -> dict[str, np.ndarray]:
    """Gradients of `jumprelu_pre_act_penalty` (JUMP-12), exact (no straight-through estimate):
    W_enc, b_enc, b_dec through z, W_dec through ‖W_dec_j‖, and `threshold` (∂/∂θ, or θ ∂/∂θ under
    log θ, JUMP-5)."""
    check_coefficient("pre_act_coefficient", pre_act_coefficient)
    check_threshold(theta)
    dead = check_dead(dead)
    check_choice("parametrisation", parametrisation, PARAMETRISATIONS)
    _validate.finite(x=x, W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=b_dec)
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=encode)
    s = np.linalg.norm(W_dec, axis=-1)
    scale = pre_act_coefficient / x.shape[0]
    below = (theta > z) & dead
    grads = encoder_backward(x, W_enc, b_dec, np.where(below, -scale * s, 0.0), encode)
    grads["W_dec"] = norm_backward(W_dec, scale * (dead * np.maximum(theta - z, 0.0)).sum(axis=0))
    grad_theta = np.where(below, scale * s, 0.0).sum(axis=0)
    grads["threshold"] = theta * grad_theta if parametrisation == "log_theta" else grad_theta
    return grads
