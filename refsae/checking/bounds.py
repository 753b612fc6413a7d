"""Error bounds of the core SAE computations, which every family's bounds compose (TOL-4).

Each function mirrors an oracle function: it evaluates the same formula on magnitudes (|A||B| for
a product, |a| + |b| for a difference) and counts the rounding chain of the computation, step by
step, as refsae.torch performs it (one stored rounding per materialised tensor, one accumulation
rounding per term of a reduction). NumPy only.
"""

from __future__ import annotations

import numpy as np

from refsae.checking.tolerances import Bound, add, leaf, mul
from refsae.conventions import Conventions


def _xw(a: np.ndarray, W: np.ndarray) -> np.ndarray:
    """(batch, *inst, d_in) · (*inst, d_in, d_sae)."""
    out: np.ndarray = np.einsum("b...i,...ij->b...j", a, W)
    return out


def _fw(f: np.ndarray, W: np.ndarray) -> np.ndarray:
    """(batch, *inst, d_sae) · (*inst, d_sae, d_in)."""
    out: np.ndarray = np.einsum("b...j,...ji->b...i", f, W)
    return out


def sum_batch_dim(a: np.ndarray) -> np.ndarray:
    """Σ over the batch and the feature axis: one value per instance."""
    return np.asarray(a.sum(axis=(0, -1)))


def encoder_input(x: np.ndarray, b_dec: np.ndarray, encode: str) -> Bound:
    """u = x − b_dec (tied) or x (untied)."""
    if encode == "untied":
        return leaf(x)
    return add(np.abs(x) + np.abs(b_dec), leaf(x), leaf(b_dec), k_store=1)


def pre_activations(
    x: np.ndarray, W_enc: np.ndarray, b_enc: np.ndarray, b_dec: np.ndarray, encode: str
) -> Bound:
    """z = u W_enc + b_enc: a length-d_in product, stored, then the bias added and stored."""
    u = encoder_input(x, b_dec, encode)
    product = mul(_xw(u.magnitude, np.abs(W_enc)), u, leaf(W_enc), k_acc=x.shape[-1], k_store=1)
    return add(product.magnitude + np.abs(b_enc), product, leaf(b_enc), k_store=1)


def row_norms(W_dec: np.ndarray, keepdims: bool = False) -> Bound:
    """‖a_j‖₂ over the last axis (W_dec's rows, or tokens): d squares summed, a square root, stored (all
    terms >= 0: M = the value)."""
    n = np.linalg.norm(W_dec, axis=-1, keepdims=keepdims)
    return Bound(np.asarray(n), W_dec.shape[-1] + 1, 1)


def decoder_directions(W_dec: np.ndarray, decoder: str, eps: float) -> Bound:
    """Ŵ: exact for `constrained`; W / (n + eps) for `normalised` (n + eps stored, quotient stored)."""
    if decoder == "constrained":
        return leaf(W_dec)
    n = row_norms(W_dec, keepdims=True)
    denominator = n.then(n.magnitude + eps, k_store=1)
    return mul(np.abs(W_dec) / denominator.magnitude, leaf(W_dec), denominator, k_store=1)


def decode(f: Bound, W_dec: np.ndarray, b_dec: np.ndarray, decoder: str, eps: float) -> Bound:
    """x_hat = f Ŵ + b_dec: a length-d_sae product, stored, then the bias added and stored."""
    W_hat = decoder_directions(W_dec, decoder, eps)
    product = mul(_fw(f.magnitude, W_hat.magnitude), f, W_hat, k_acc=W_dec.shape[-2], k_store=1)
    return add(product.magnitude + np.abs(b_dec), product, leaf(b_dec), k_store=1)


def total_variance(x: np.ndarray) -> Bound:
    """V = Σ (x − mean_b x)²: the mean (B terms), the centring, the square, the B·d_in-term sum."""
    batch = x.shape[0]
    mean = add(np.abs(x).mean(axis=0, keepdims=True), leaf(x), k_acc=batch + 1, k_store=1)
    centred = add(np.abs(x) + mean.magnitude, leaf(x), mean, k_store=1)
    square = mul(centred.magnitude**2, centred, centred, k_store=1)
    return add(sum_batch_dim(square.magnitude), square, k_acc=batch * x.shape[-1], k_store=1)


def reconstruction_loss(x: np.ndarray, x_hat: Bound, x_hat_value: np.ndarray, reconstruction: str) -> Bound:
    """r = x_hat − x, r², a B·d_in-term sum, then the convention's division."""
    batch, d_in = x.shape[0], x.shape[-1]
    r = add(x_hat.magnitude + np.abs(x), x_hat, leaf(x), k_store=1)
    square = mul(r.magnitude**2, r, r, k_store=1)
    numerator = add(sum_batch_dim(square.magnitude), square, k_acc=batch * d_in, k_store=1)
    if reconstruction == "sum":
        return numerator.then(numerator.magnitude / batch, k_store=1)
    if reconstruction == "mean":
        return numerator.then(numerator.magnitude / (batch * d_in), k_store=1)
    # fvu = N / V, first order: |ΔN|/V + |N|·|ΔV|/V² (the centred variance V has its own chain).
    variance = total_variance(x)
    V = sum_batch_dim((x - x.mean(axis=0, keepdims=True)) ** 2)
    N = sum_batch_dim((x_hat_value - x) ** 2)
    magnitude = numerator.magnitude / V + N * variance.magnitude / V**2
    return add(magnitude, numerator, variance, k_store=1)


def sparsity_loss(f: Bound, W_dec: np.ndarray, sparsity: str) -> Bound:
    """Σ |f| (· ‖W_dec_j‖) over B·d_sae terms, divided by B."""
    batch, d_sae = f.magnitude.shape[0], W_dec.shape[-2]
    terms = f
    if sparsity == "l1_decoder_norm":
        n = row_norms(W_dec)
        terms = mul(f.magnitude * n.magnitude, f, n, k_store=1)
    total = add(sum_batch_dim(terms.magnitude), terms, k_acc=batch * d_sae, k_store=1)
    return total.then(total.magnitude / batch, k_store=1)


def forward(
    x: np.ndarray, W_enc: np.ndarray, b_enc: np.ndarray, W_dec: np.ndarray, b_dec: np.ndarray, c: Conventions
) -> tuple[Bound, Bound]:
    """(f, x_hat): ReLU is 1-Lipschitz and exact, so f carries z's bound."""
    f = pre_activations(x, W_enc, b_enc, b_dec, c.encode)
    return f, decode(f, W_dec, b_dec, c.decoder, c.eps)


def total_loss(
    x: np.ndarray,
    W_enc: np.ndarray,
    b_enc: np.ndarray,
    W_dec: np.ndarray,
    b_dec: np.ndarray,
    x_hat_value: np.ndarray,
    l1_coefficient: float,
    c: Conventions,
) -> Bound:
    """R + λ·S per instance (λ rounded once to the accumulation dtype), then summed over instances."""
    f, x_hat = forward(x, W_enc, b_enc, W_dec, b_dec, c)
    R = reconstruction_loss(x, x_hat, x_hat_value, c.reconstruction)
    S = sparsity_loss(f, W_dec, c.sparsity)
    penalty = S.then(l1_coefficient * S.magnitude, k_acc=1, k_store=1)
    return instance_sum(R, penalty)


def instance_sum(R: Bound, penalty: Bound) -> Bound:
    """R + penalty per instance (one stored sum), then the sum over instances (LOSS-6)."""
    per_instance = add(R.magnitude + penalty.magnitude, R, penalty, k_store=1)
    n_inst = int(per_instance.magnitude.size)
    return add(np.asarray(per_instance.magnitude.sum()), per_instance, k_acc=n_inst, k_store=1)


def reconstruction_scale(x: np.ndarray, reconstruction: str) -> Bound:
    """c of g_xhat = c · r: 2/B or 2/(B·d_in) (one rounding), or 2/V (V's chain, relative)."""
    batch, d_in = x.shape[0], x.shape[-1]
    if reconstruction == "sum":
        return Bound(np.asarray(2.0 / batch), 0, 1)
    if reconstruction == "mean":
        return Bound(np.asarray(2.0 / (batch * d_in)), 0, 1)
    variance = total_variance(x)
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
    z = pre_activations(x, W_enc, b_enc, b_dec, c.encode)
    if active is None:
        z_value = np.einsum("b...i,...ij->b...j", x - b_dec if c.encode == "tied" else x, W_enc) + b_enc
        active = z_value > 0
    f = Bound(np.where(active, z.magnitude, 0.0), z.k_acc, z.k_store)
    W_hat = decoder_directions(W_dec, c.decoder, c.eps)
    x_hat = decode(f, W_dec, b_dec, c.decoder, c.eps)
    r = add(x_hat.magnitude + np.abs(x), x_hat, leaf(x), k_store=1)
    # autograd: grad of the mean/sum (scale), times 2, times r: three stored products.
    g_xhat = mul(
        reconstruction_scale(x, c.reconstruction).magnitude * r.magnitude,
        reconstruction_scale(x, c.reconstruction),
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
    norms = row_norms(W_dec)
    if c.sparsity == "l1_decoder_norm":
        dS_df = mul(dS_df.magnitude * norms.magnitude, dS_df, norms, k_store=1)
    g_f = add(g_f_recon.magnitude + dS_df.magnitude, g_f_recon, dS_df, k_store=1)
    g_z = Bound(np.where(active, g_f.magnitude, 0.0), g_f.k_acc, g_f.k_store)

    u = encoder_input(x, b_dec, c.encode)
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


def encoder_backward(
    x: np.ndarray, W_enc: np.ndarray, b_dec: np.ndarray, g_z: Bound, encode: str
) -> dict[str, Bound]:
    """Bounds of a gradient g_z pulled back to W_enc (uᵀ g_z), b_enc (Σ_b g_z) and, tied, b_dec
    (Σ_b g_z W_encᵀ; exact zeros untied), as `loss_gradients` computes them."""
    batch, d_sae = x.shape[0], W_enc.shape[-1]
    u = encoder_input(x, b_dec, encode)
    out = {
        "W_enc": mul(
            np.einsum("b...i,b...j->...ij", u.magnitude, g_z.magnitude), u, g_z, k_acc=batch, k_store=1
        ),
        "b_enc": add(g_z.magnitude.sum(axis=0), g_z, k_acc=batch, k_store=1),
        "b_dec": Bound(np.zeros(x.shape[1:]), 0, 0),
    }
    if encode == "tied":
        g_u = mul(
            np.einsum("b...j,...ij->b...i", g_z.magnitude, np.abs(W_enc)),
            g_z,
            leaf(W_enc),
            k_acc=d_sae,
            k_store=1,
        )
        out["b_dec"] = add(g_u.magnitude.sum(axis=0), g_u, k_acc=batch, k_store=1)
    return out


def plus(base: dict[str, Bound], extra: dict[str, Bound]) -> dict[str, Bound]:
    """`base` with each of `extra`'s terms added (one stored sum each)."""
    out = dict(base)
    for k, e in extra.items():
        out[k] = add(out[k].magnitude + e.magnitude, out[k], e, k_store=1)
    return out


def normalisation_backward(W_dec: np.ndarray, G_hat: Bound, eps: float) -> Bound:
    """∂L/∂W_dec from Ĝ = ∂L/∂Ŵ through Ŵ_j = W_j / (n_j + eps) (GRAD-5):
    G/ne − W·(W·G)/(n·ne²): quotients by ne (twice) and n, products, one difference."""
    n = row_norms(W_dec, keepdims=True)
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
    norms = row_norms(W_dec)
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
