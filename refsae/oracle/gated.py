"""Gated SAE (Rajamanoharan et al. 2024, *Improving Dictionary Learning with Gated Sparse
Autoencoders*), GATE-1..GATE-8.

The encoder has a gate path, which decides which latents are active, and a magnitude path, which
says how large they are; the two share the encoder matrix W (`W_enc`), rescaled per latent on the
magnitude path:

    u        = x − b_dec (tied) or x (untied)                       (ENC-2 / ENC-3)
    π_gate   = u W + b_gate
    π_mag    = u (W ⊙ exp(r_mag)) + b_mag  =  exp(r_mag) ⊙ (u W) + b_mag
    f        = 1[π_gate > 0] ⊙ ReLU(π_mag)
    x_hat    = f Ŵ + b_dec                                            (DEC-1)
    a        = ReLU(π_gate)
    x_aux    = a sg(Ŵ) + sg(b_dec)            sg: stop-gradient ("detached", GATE-4)
    L        = Σ_inst [ R(x, x_hat) + λ · S(a, W_dec) + R(x, x_aux) ]

R is the reconstruction convention (LOSS-1..LOSS-3) and S the sparsity convention (LOSS-4, LOSS-5).
The Heaviside step 1[π_gate > 0] passes no gradient: the gate is trained by the sparsity and the
auxiliary terms only (GATE-5).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from refsae._typecheck import typechecked
from refsae.conventions import OPERATION_AXES, Conventions, EncodeConvention, check_choice, check_coefficient
from refsae.oracle import _validate
from refsae.oracle._shapes import (
    DecoderWeights,
    EncoderWeights,
    InputBatch,
    InputVector,
    LatentBatch,
    LatentVector,
    Scalar,
)
from refsae.oracle.forward import decode, decoder_directions
from refsae.oracle.gradients import normalisation_backward, reconstruction_scale
from refsae.oracle.losses import reconstruction_loss, sparsity_loss

__all__ = ["gated_encode", "gated_loss_gradients", "gated_pre_activations", "gated_total_loss"]

AuxDecoder = Literal["detached", "attached"]
AUX_DECODER: tuple[str, ...] = OPERATION_AXES["aux_decoder"]


def _encoder_input(x: np.ndarray, b_dec: np.ndarray, encode: str) -> np.ndarray:
    check_choice("encode", encode, ("tied", "untied"))
    _validate.nonempty_batch(x)
    return x - b_dec if encode == "tied" else x


@typechecked
def gated_pre_activations(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_gate: LatentVector,
    r_mag: LatentVector,
    b_mag: LatentVector,
    b_dec: InputVector,
    *,
    encode: EncodeConvention = "tied",
) -> tuple[LatentBatch, LatentBatch]:
    """(π_gate, π_mag): one encoder matrix, rescaled per latent by exp(r_mag) on the magnitude path
    (GATE-1)."""
    _validate.finite(x=x, W_enc=W_enc, b_gate=b_gate, r_mag=r_mag, b_mag=b_mag, b_dec=b_dec)
    uW = np.einsum("b...i,...ij->b...j", _encoder_input(x, b_dec, encode), W_enc)
    return uW + b_gate, np.exp(r_mag) * uW + b_mag


@typechecked
def gated_encode(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_gate: LatentVector,
    r_mag: LatentVector,
    b_mag: LatentVector,
    b_dec: InputVector,
    *,
    encode: EncodeConvention = "tied",
) -> tuple[LatentBatch, LatentBatch]:
    """(f, π_gate) with f = 1[π_gate > 0] · ReLU(π_mag), the gate strict (GATE-2).

    >>> import numpy as np
    >>> x, W = np.array([[1.0, 2.0]]), np.eye(2)            # u W = (1, 2), untied
    >>> f, pi_gate = gated_encode(x, W, np.array([-1.5, 0.0]), np.log([3.0, 0.5]), np.zeros(2),
    ...                           np.zeros(2), encode="untied")
    >>> f.tolist(), pi_gate.tolist()                        # latent 0 gated off; 1: 0.5 · 2
    ([[0.0, 1.0]], [[-0.5, 2.0]])
    """
    pi_gate, pi_mag = gated_pre_activations(x, W_enc, b_gate, r_mag, b_mag, b_dec, encode=encode)
    return np.where(pi_gate > 0, np.maximum(pi_mag, 0.0), 0.0), pi_gate


def _forward(
    x: np.ndarray,
    params: tuple[np.ndarray, ...],
    c: Conventions,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """π_gate, π_mag, f, a = ReLU(π_gate), and Ŵ."""
    W_enc, b_gate, r_mag, b_mag, W_dec, b_dec = params
    pi_gate, pi_mag = gated_pre_activations(x, W_enc, b_gate, r_mag, b_mag, b_dec, encode=c.encode)
    f = np.where(pi_gate > 0, np.maximum(pi_mag, 0.0), 0.0)
    return (
        pi_gate,
        pi_mag,
        f,
        np.maximum(pi_gate, 0.0),
        decoder_directions(W_dec, decoder=c.decoder, eps=c.eps),
    )


@typechecked
def gated_total_loss(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_gate: LatentVector,
    r_mag: LatentVector,
    b_mag: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    l1_coefficient: float,
    conventions: Conventions = Conventions(),
    aux_decoder: AuxDecoder = "detached",
) -> Scalar:
    """Σ_inst [R(x, x_hat) + λ · S(ReLU(π_gate)) + R(x, x_aux)] (GATE-3). The auxiliary
    reconstruction's value does not depend on `aux_decoder`, only its gradients do (GATE-4)."""
    check_coefficient("l1_coefficient", l1_coefficient)
    check_choice("aux_decoder", aux_decoder, AUX_DECODER)
    c = conventions
    _, _, f, a, _ = _forward(x, (W_enc, b_gate, r_mag, b_mag, W_dec, b_dec), c)
    x_hat = decode(f, W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    x_aux = decode(a, W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    per_instance = (
        reconstruction_loss(x, x_hat, reconstruction=c.reconstruction)
        + l1_coefficient * sparsity_loss(a, W_dec, sparsity=c.sparsity)
        + reconstruction_loss(x, x_aux, reconstruction=c.reconstruction)
    )
    return np.asarray(per_instance.sum())


@typechecked
def gated_loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_gate: LatentVector,
    r_mag: LatentVector,
    b_mag: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    l1_coefficient: float,
    conventions: Conventions = Conventions(),
    aux_decoder: AuxDecoder = "detached",
) -> dict[str, np.ndarray]:
    """Analytic gradients of `gated_total_loss` (GATE-5, GATE-6), derived by hand:

    g_xhat  = c (x_hat − x)        g_xaux = c (x_aux − x)      c of GRAD-2
    g_mag   = (g_xhat Ŵᵀ) ⊙ 1[π_gate > 0] ⊙ 1[π_mag > 0]
    g_gate  = (g_xaux Ŵᵀ + λ ∂S/∂a) ⊙ 1[π_gate > 0]             (the step passes nothing)
    g_uW    = g_gate + exp(r_mag) ⊙ g_mag
    ∂b_gate = Σ_b g_gate      ∂b_mag = Σ_b g_mag      ∂r_mag = Σ_b g_mag ⊙ exp(r_mag) ⊙ (u W)
    ∂W_enc  = uᵀ g_uW
    ∂Ŵ      = fᵀ g_xhat [+ aᵀ g_xaux, attached]       → ∂W_dec by GRAD-5, + GRAD-6's term on a
    ∂b_dec  = Σ_b g_xhat [+ Σ_b g_xaux, attached] − [tied] (Σ_b g_uW) Wᵀ
    """
    check_coefficient("l1_coefficient", l1_coefficient)
    check_choice("aux_decoder", aux_decoder, AUX_DECODER)
    c = conventions
    batch = x.shape[0]
    pi_gate, pi_mag, f, a, W_hat = _forward(x, (W_enc, b_gate, r_mag, b_mag, W_dec, b_dec), c)
    scale = reconstruction_scale(x, c.reconstruction)
    g_xhat = scale * (np.einsum("b...j,...ji->b...i", f, W_hat) + b_dec - x)
    g_xaux = scale * (np.einsum("b...j,...ji->b...i", a, W_hat) + b_dec - x)
    gate = pi_gate > 0
    g_mag = np.where(gate & (pi_mag > 0), np.einsum("b...i,...ji->b...j", g_xhat, W_hat), 0.0)
    norms = np.linalg.norm(W_dec, axis=-1)
    dS_da = np.sign(a) / batch * (norms if c.sparsity == "l1_decoder_norm" else 1.0)
    g_gate = np.where(gate, np.einsum("b...i,...ji->b...j", g_xaux, W_hat) + l1_coefficient * dS_da, 0.0)
    e = np.exp(r_mag)
    g_uW = g_gate + e * g_mag
    u = x - b_dec if c.encode == "tied" else x
    uW = np.einsum("b...i,...ij->b...j", u, W_enc)

    G_hat = np.einsum("b...j,b...i->...ji", f, g_xhat)
    grad_b_dec = g_xhat.sum(axis=0)
    if aux_decoder == "attached":
        G_hat = G_hat + np.einsum("b...j,b...i->...ji", a, g_xaux)
        grad_b_dec = grad_b_dec + g_xaux.sum(axis=0)
    if c.encode == "tied":
        grad_b_dec = grad_b_dec - np.einsum("...j,...ij->...i", g_uW.sum(axis=0), W_enc)
    grad_W_dec = G_hat if c.decoder == "constrained" else normalisation_backward(W_dec, G_hat, c.eps)
    if c.sparsity == "l1_decoder_norm":
        unit = np.where(norms[..., None] > 0, W_dec / np.where(norms > 0, norms, 1.0)[..., None], 0.0)
        grad_W_dec = grad_W_dec + (l1_coefficient / batch) * a.sum(axis=0)[..., None] * unit
    return {
        "W_enc": np.einsum("b...i,b...j->...ij", u, g_uW),
        "b_gate": g_gate.sum(axis=0),
        "r_mag": (g_mag * e * uW).sum(axis=0),
        "b_mag": g_mag.sum(axis=0),
        "W_dec": grad_W_dec,
        "b_dec": grad_b_dec,
    }
