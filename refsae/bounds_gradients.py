"""Error bounds of the loss gradients (GRAD) and of the constraint operations (CON, PAR), TOL-4.

The gradient chain follows the backward pass that autograd runs through refsae.torch: every
intermediate of `refsae.oracle.gradients` is a stored tensor with its own magnitude. The ReLU mask
is the oracle's: the gradient strategies keep every pre-activation a margin away from 0 larger
than its own allowed error, so the mask cannot differ (GRAD-3, TOL-6).
"""

from __future__ import annotations

import numpy as np

from refsae import bounds as b
from refsae.conventions import Conventions
from refsae.tolerances import Bound, add, leaf, mul


def _reconstruction_scale(x: np.ndarray, reconstruction: str) -> Bound:
    """c of g_xhat = c · r: 2/B or 2/(B·d_in) (one rounding), or 2/V (V's chain, relative)."""
    batch, d_in = x.shape[0], x.shape[-1]
    if reconstruction == "sum":
        return Bound(np.asarray(2.0 / batch), 0, 1)
    if reconstruction == "mean":
        return Bound(np.asarray(2.0 / (batch * d_in)), 0, 1)
    variance = b.total_variance(x)
    V = np.asarray(((x - x.mean(axis=0, keepdims=True)) ** 2).sum(axis=(0, -1)))
    # |Δ(2/V)| <= 2|ΔV|/V² <= γ · (2/V)(M_V/V): the magnitude 2·M_V/V² carries V's chain.
    return variance.then((2.0 * variance.magnitude / V**2)[..., None], k_store=1)


def loss_gradients(
    x: np.ndarray,
    W_enc: np.ndarray,
    b_enc: np.ndarray,
    W_dec: np.ndarray,
    b_dec: np.ndarray,
    l1_coefficient: float,
    c: Conventions,
    active: np.ndarray | None = None,
) -> dict[str, Bound]:
    """Bounds of ∂L/∂W_enc, ∂L/∂b_enc, ∂L/∂W_dec, ∂L/∂b_dec, and of the latents' gradient `g_f`
    (reconstruction and l1 parts, before the mask). `active` overrides ReLU's mask z > 0 (TopK's
    selection, JumpReLU's z > θ)."""
    batch, d_in, d_sae = x.shape[0], x.shape[-1], W_dec.shape[-2]
    z = b.pre_activations(x, W_enc, b_enc, b_dec, c.encode)
    if active is None:
        z_value = np.einsum("b...i,...ij->b...j", x - b_dec if c.encode == "tied" else x, W_enc) + b_enc
        active = z_value > 0
    f = Bound(np.where(active, z.magnitude, 0.0), z.k_acc, z.k_store)
    W_hat = b.decoder_directions(W_dec, c.decoder, c.eps)
    x_hat = b.decode(f, W_dec, b_dec, c.decoder, c.eps)
    r = add(x_hat.magnitude + np.abs(x), x_hat, leaf(x), k_store=1)
    # autograd: grad of the mean/sum (scale), times 2, times r: three stored products.
    g_xhat = mul(
        _reconstruction_scale(x, c.reconstruction).magnitude * r.magnitude,
        _reconstruction_scale(x, c.reconstruction),
        r,
        k_store=3,
    )
    g_f_recon = mul(
        np.einsum("b...i,...ji->b...j", g_xhat.magnitude, W_hat.magnitude),
        g_xhat,
        W_hat,
        k_acc=d_in,
        k_store=1,
    )
    # sparsity: λ · sign(f) / B (· n_j): sign exact, λ and 1/B rounded, n_j with its chain.
    dS_df = Bound(np.where(active, l1_coefficient / batch, 0.0), 1, 3)
    norms = b.row_norms(W_dec)
    if c.sparsity == "l1_decoder_norm":
        dS_df = mul(dS_df.magnitude * norms.magnitude, dS_df, norms, k_store=1)
    g_f = add(g_f_recon.magnitude + dS_df.magnitude, g_f_recon, dS_df, k_store=1)
    g_z = Bound(np.where(active, g_f.magnitude, 0.0), g_f.k_acc, g_f.k_store)

    u = b.encoder_input(x, b_dec, c.encode)
    grad_b_enc = add(g_z.magnitude.sum(axis=0), g_z, k_acc=batch, k_store=1)
    grad_W_enc = mul(
        np.einsum("b...i,b...j->...ij", u.magnitude, g_z.magnitude), u, g_z, k_acc=batch, k_store=1
    )
    G_hat = mul(
        np.einsum("b...j,b...i->...ji", f.magnitude, g_xhat.magnitude), f, g_xhat, k_acc=batch, k_store=1
    )

    grad_b_dec = add(g_xhat.magnitude.sum(axis=0), g_xhat, k_acc=batch, k_store=1)
    if c.encode == "tied":
        # autograd: g_u = g_z W_encᵀ (length d_sae), summed over the batch, subtracted.
        g_u = mul(
            np.einsum("b...j,...ij->b...i", g_z.magnitude, np.abs(W_enc)),
            g_z,
            leaf(W_enc),
            k_acc=d_sae,
            k_store=1,
        )
        through_encoder = add(g_u.magnitude.sum(axis=0), g_u, k_acc=batch, k_store=1)
        grad_b_dec = add(
            grad_b_dec.magnitude + through_encoder.magnitude, grad_b_dec, through_encoder, k_store=1
        )

    grad_W_dec = G_hat if c.decoder == "constrained" else normalisation_backward(W_dec, G_hat, c.eps)
    if c.sparsity == "l1_decoder_norm":
        grad_W_dec = decoder_norm_penalty(W_dec, f, l1_coefficient, grad_W_dec)
    return {"W_enc": grad_W_enc, "b_enc": grad_b_enc, "W_dec": grad_W_dec, "b_dec": grad_b_dec, "g_f": g_f}


def normalisation_backward(W_dec: np.ndarray, G_hat: Bound, eps: float) -> Bound:
    """∂L/∂W_dec from Ĝ = ∂L/∂Ŵ through Ŵ_j = W_j / (n_j + eps) (GRAD-5):
    G/ne − W·(W·G)/(n·ne²): quotients by ne (twice) and n, products, one difference."""
    n = b.row_norms(W_dec, keepdims=True)
    ne = n.magnitude + eps
    radial = mul(
        np.sum(np.abs(W_dec) * G_hat.magnitude, axis=-1, keepdims=True),
        G_hat,
        leaf(W_dec),
        k_acc=W_dec.shape[-1],
        k_store=1,
    )
    safe_n = np.where(n.magnitude > 0, n.magnitude, np.inf)
    direct = mul(G_hat.magnitude / ne, G_hat, n, k_store=2)
    correction = mul(np.abs(W_dec) * radial.magnitude / (safe_n * ne**2), radial, n, n, n, k_store=4)
    return add(direct.magnitude + correction.magnitude, direct, correction, k_store=1)


def decoder_norm_penalty(W_dec: np.ndarray, f: Bound, l1_coefficient: float, grad_W_dec: Bound) -> Bound:
    """`grad_W_dec` plus l1_decoder_norm's term λ/B Σ_b |f_bj| W_j/‖W_j‖ (GRAD-6)."""
    batch = f.magnitude.shape[0]
    norms = b.row_norms(W_dec)
    safe = np.where(norms.magnitude > 0, norms.magnitude, np.inf)[..., None]
    f_sum = add(f.magnitude.sum(axis=0), f, k_acc=batch, k_store=1)
    extra = mul(
        (l1_coefficient / batch) * f_sum.magnitude[..., None] * np.abs(W_dec) / safe,
        f_sum,
        norms,
        k_acc=1,
        k_store=4,
    )
    return add(grad_W_dec.magnitude + extra.magnitude, grad_W_dec, extra, k_store=1)


def renormalise_rows(W_dec: np.ndarray) -> Bound:
    """W_j / ‖W_j‖: one quotient by a norm (zero rows: exactly 0)."""
    n = b.row_norms(W_dec, keepdims=True)
    safe = np.where(n.magnitude > 0, n.magnitude, np.inf)
    return mul(np.abs(W_dec) / safe, leaf(W_dec), n, k_store=1)


def remove_parallel_component(W_dec: np.ndarray, grad_W_dec: np.ndarray) -> Bound:
    """g − (g·w / ‖w‖²) w: two length-d_in sums, a quotient, a product, a difference."""
    d_in = W_dec.shape[-1]
    sq = Bound(np.sum(W_dec**2, axis=-1, keepdims=True), d_in, 1)
    dot = Bound(np.sum(np.abs(W_dec * grad_W_dec), axis=-1, keepdims=True), d_in, 1)
    safe = np.where(sq.magnitude > 0, sq.magnitude, np.inf)
    coeff = mul(dot.magnitude / safe, dot, sq, k_store=1)
    along = mul(coeff.magnitude * np.abs(W_dec), coeff, leaf(W_dec), k_store=1)
    return add(np.abs(grad_W_dec) + along.magnitude, along, leaf(grad_W_dec), k_store=1)
