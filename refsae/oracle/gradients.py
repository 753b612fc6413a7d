"""Analytic gradients of the total loss (GRAD), derived by hand: no autodiff.

With u = x - b_dec (tied) or x (untied), z = u W_enc + b_enc, f = ReLU(z), Ŵ the decoder
directions, x_hat = f Ŵ + b_dec and r = x_hat - x, per instance:

    g_xhat = c · r                     c = 2/B (sum), 2/(B·d_in) (mean), 2/V (fvu)      (GRAD-2)
    g_f    = g_xhat Ŵᵀ + λ ∂S/∂f        ∂S/∂f_j = sign(f_j)/B (l1), sign(f_j)‖W_dec_j‖/B (l1_decoder_norm)
    g_z    = g_f ⊙ 1[z > 0]            ReLU'(0) := 0                                    (GRAD-3)
    ∂L/∂b_enc = Σ_b g_z
    ∂L/∂W_enc = uᵀ g_z
    ∂L/∂Ŵ     = fᵀ g_xhat
    ∂L/∂b_dec = Σ_b g_xhat − [tied] (Σ_b g_z) W_encᵀ                                     (GRAD-4)
    ∂L/∂W_dec = ∂L/∂Ŵ (constrained), or through Ŵ_j = W_j/(n_j + eps):                  (GRAD-5)
                Ĝ_j/(n_j + eps) − W_j (W_j·Ĝ_j) / (n_j (n_j + eps)²),  Ĝ_j/eps where n_j = 0
              + λ/B Σ_b |f_bj| W_j / n_j for l1_decoder_norm (0 where n_j = 0)            (GRAD-6)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refsae._typecheck import typechecked
from refsae.conventions import Conventions, check_coefficient
from refsae.oracle._shapes import DecoderWeights, EncoderWeights, InputBatch, InputVector, LatentVector
from refsae.oracle.forward import decoder_directions, pre_activations
from refsae.oracle.losses import total_variance

__all__ = ["Gradients", "loss_gradients"]


@dataclass(frozen=True)
class Gradients:
    """∂L/∂θ for the four parameters, each with its parameter's shape (GRAD-1)."""

    W_enc: np.ndarray
    b_enc: np.ndarray
    W_dec: np.ndarray
    b_dec: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec, "b_dec": self.b_dec}


def reconstruction_scale(x: np.ndarray, reconstruction: str) -> np.ndarray:
    """c in g_xhat = c · r, broadcastable against (batch, *inst, d_in)."""
    batch, d_in = x.shape[0], x.shape[-1]
    if reconstruction == "sum":
        return np.asarray(2.0 / batch)
    if reconstruction == "mean":
        return np.asarray(2.0 / (batch * d_in))
    variance = total_variance(x)
    if np.any(variance == 0.0):
        raise ValueError("fvu is undefined for a batch whose total variance is zero (e.g. batch of 1)")
    return np.asarray(2.0 / variance)[..., None]


def encoder_backward(
    x: np.ndarray, W_enc: np.ndarray, b_dec: np.ndarray, g_z: np.ndarray, encode: str
) -> dict[str, np.ndarray]:
    """A gradient g_z = ∂L/∂z pulled back to W_enc (uᵀ g_z), b_enc (Σ_b g_z) and, tied, b_dec
    (−(Σ_b g_z) W_encᵀ; zeros untied): GRAD-4's chain for a term that reaches z other than through f."""
    u = x - b_dec if encode == "tied" else x
    grad_b_enc = g_z.sum(axis=0)
    grad_b_dec = np.zeros(x.shape[1:])
    if encode == "tied":
        grad_b_dec = -np.einsum("...j,...ij->...i", grad_b_enc, W_enc)
    return {"W_enc": np.einsum("b...i,b...j->...ij", u, g_z), "b_enc": grad_b_enc, "b_dec": grad_b_dec}


def norm_backward(W_dec: np.ndarray, g_s: np.ndarray) -> np.ndarray:
    """∂/∂W_dec of a term whose gradient on s_j = ‖W_dec_j‖ is g_s_j: g_s_j W_dec_j / s_j, 0 on a zero
    row (GRAD-6's l1_decoder_norm term, JUMP-10, JUMP-12)."""
    s = np.linalg.norm(W_dec, axis=-1, keepdims=True)
    return np.asarray(np.where(s > 0, W_dec / np.where(s > 0, s, 1.0), 0.0) * g_s[..., None])


def normalisation_backward(W_dec: np.ndarray, G_hat: np.ndarray, eps: float) -> np.ndarray:
    """Pull Ĝ = ∂L/∂Ŵ back through Ŵ_j = W_j / (‖W_j‖ + eps) (GRAD-5)."""
    n = np.linalg.norm(W_dec, axis=-1, keepdims=True)
    radial = np.sum(W_dec * G_hat, axis=-1, keepdims=True)
    safe_n = np.where(n > 0, n, 1.0)
    correction = np.where(n > 0, W_dec * radial / (safe_n * (n + eps) ** 2), 0.0)
    result: np.ndarray = G_hat / (n + eps) - correction
    return result


@typechecked
def loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    l1_coefficient: float,
    conventions: Conventions = Conventions(),
) -> Gradients:
    """Gradients of `total_loss` with respect to W_enc, b_enc, W_dec, b_dec (GRAD-1..GRAD-6)."""
    check_coefficient("l1_coefficient", l1_coefficient)
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=conventions.encode)
    return gradients_given_mask(x, W_enc, b_enc, W_dec, b_dec, z, z > 0.0, l1_coefficient, conventions)


def gradients_given_mask(
    x: np.ndarray,
    W_enc: np.ndarray,
    b_enc: np.ndarray,
    W_dec: np.ndarray,
    b_dec: np.ndarray,
    z: np.ndarray,
    active: np.ndarray,
    l1_coefficient: float,
    c: Conventions,
) -> Gradients:
    """The gradients for latents f = z ⊙ active, whatever selects `active`: ReLU's `z > 0` (GRAD-3),
    or TopK's `selected ∧ z > 0` (TOPK-5). The derivation above, with 1[z > 0] replaced by `active`."""
    batch = x.shape[0]
    f = np.where(active, z, 0.0)
    W_hat = decoder_directions(W_dec, decoder=c.decoder, eps=c.eps)
    x_hat = np.einsum("b...j,...ji->b...i", f, W_hat) + b_dec
    g_xhat = reconstruction_scale(x, c.reconstruction) * (x_hat - x)

    dS_df = np.sign(f) / batch
    norms = np.linalg.norm(W_dec, axis=-1)
    if c.sparsity == "l1_decoder_norm":
        dS_df = dS_df * norms
    g_f = np.einsum("b...i,...ji->b...j", g_xhat, W_hat) + l1_coefficient * dS_df
    g_z = np.where(active, g_f, 0.0)

    u = x - b_dec if c.encode == "tied" else x
    grad_b_enc = g_z.sum(axis=0)
    grad_W_enc = np.einsum("b...i,b...j->...ij", u, g_z)
    G_hat = np.einsum("b...j,b...i->...ji", f, g_xhat)
    grad_b_dec = g_xhat.sum(axis=0)
    if c.encode == "tied":
        grad_b_dec = grad_b_dec - np.einsum("...j,...ij->...i", grad_b_enc, W_enc)
    grad_W_dec = G_hat if c.decoder == "constrained" else normalisation_backward(W_dec, G_hat, c.eps)
    if c.sparsity == "l1_decoder_norm":
        grad_W_dec = grad_W_dec + norm_backward(W_dec, (l1_coefficient / batch) * np.abs(f).sum(axis=0))
    return Gradients(W_enc=grad_W_enc, b_enc=grad_b_enc, W_dec=grad_W_dec, b_dec=grad_b_dec)
