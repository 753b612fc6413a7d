"""Error bounds of the Gated SAE rows (GATE, TOL-4), step by step as refsae.torch computes them.

The strategies keep every π_gate and π_mag more than twice its allowed error away from 0 (GATE-8),
so the gate, the magnitude ReLU and the auxiliary ReLU take the oracle's masks; each latent then
carries the bound of its pre-activation where active and is exactly 0 elsewhere. `exp(r_mag)` is
faithfully rounded (error below one unit in the last place, 2u): two roundings.
"""

from __future__ import annotations

import numpy as np

from refsae import bounds as b
from refsae import bounds_gradients as bg
from refsae.conventions import Conventions, EncodeConvention
from refsae.oracle.forward import decode
from refsae.oracle.gated_activation import gated_encode, gated_pre_activations
from refsae.tolerances import Bound, add, leaf, mul

Params = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""W_enc, b_gate, r_mag, b_mag, W_dec, b_dec."""


def _einsum(spec: str, *operands: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.einsum(spec, *operands)
    return out


def pre_activations(
    x: np.ndarray,
    W_enc: np.ndarray,
    b_gate: np.ndarray,
    r_mag: np.ndarray,
    b_mag: np.ndarray,
    b_dec: np.ndarray,
    encode: str,
) -> tuple[Bound, Bound, Bound, Bound]:
    """(π_gate, π_mag, u W, exp(r_mag)): the shared length-d_in product u W stored once; π_gate adds
    b_gate; π_mag multiplies by the stored exp(r_mag), then adds b_mag."""
    u = b.encoder_input(x, b_dec, encode)
    uW = mul(
        _einsum("b...i,...ij->b...j", u.magnitude, np.abs(W_enc)),
        u,
        leaf(W_enc),
        k_acc=x.shape[-1],
        k_store=1,
    )
    e = Bound(np.exp(r_mag), 0, 2)
    pi_gate = add(uW.magnitude + np.abs(b_gate), uW, leaf(b_gate), k_store=1)
    scaled = mul(e.magnitude * uW.magnitude, e, uW, k_store=1)
    pi_mag = add(scaled.magnitude + np.abs(b_mag), scaled, leaf(b_mag), k_store=1)
    return pi_gate, pi_mag, uW, e


def _latents(
    x: np.ndarray, params: Params, c: Conventions
) -> tuple[Bound, Bound, Bound, Bound, np.ndarray, np.ndarray]:
    """Bounds of f and a = ReLU(π_gate) with the oracle's masks, of u W and exp(r_mag); the masks
    of f (gate and magnitude) and of a (gate), from the oracle's values (bounds may be floored, TOL-7)."""
    W_enc, b_gate, r_mag, b_mag, _, b_dec = params
    pi_gate, pi_mag, uW, e = pre_activations(x, W_enc, b_gate, r_mag, b_mag, b_dec, c.encode)
    gate_value, mag_value = gated_pre_activations(x, W_enc, b_gate, r_mag, b_mag, b_dec, encode=c.encode)
    gate = gate_value > 0
    f = Bound(np.where(gate & (mag_value > 0), pi_mag.magnitude, 0.0), pi_mag.k_acc, pi_mag.k_store)
    a = Bound(np.where(gate, pi_gate.magnitude, 0.0), pi_gate.k_acc, pi_gate.k_store)
    return f, a, uW, e, gate & (mag_value > 0), gate


def encode(
    x: np.ndarray,
    W_enc: np.ndarray,
    b_gate: np.ndarray,
    r_mag: np.ndarray,
    b_mag: np.ndarray,
    b_dec: np.ndarray,
    encode: EncodeConvention,
) -> dict[str, Bound | None]:
    """f carries π_mag's bound where the gate is open (ReLU is 1-Lipschitz); π_gate its own."""
    pi_gate, pi_mag, _, _ = pre_activations(x, W_enc, b_gate, r_mag, b_mag, b_dec, encode)
    gate, _ = gated_pre_activations(x, W_enc, b_gate, r_mag, b_mag, b_dec, encode=encode)
    f = Bound(np.where(gate > 0, pi_mag.magnitude, 0.0), pi_mag.k_acc, pi_mag.k_store)
    return {"f": f, "pi_gate": pi_gate}


def total_loss(x: np.ndarray, params: Params, l1_coefficient: float, c: Conventions) -> Bound:
    """R(x, x_hat) + λ·S(a) + R(x, x_aux) per instance (two stored sums), summed over instances."""
    W_enc, b_gate, r_mag, b_mag, W_dec, b_dec = params
    f, a, _, _, _, _ = _latents(x, params, c)
    f_value, pi_gate = gated_encode(x, W_enc, b_gate, r_mag, b_mag, b_dec, encode=c.encode)
    x_hat_value = decode(f_value, W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    x_aux_value = decode(np.maximum(pi_gate, 0.0), W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    R = b.reconstruction_loss(x, b.decode(f, W_dec, b_dec, c.decoder, c.eps), x_hat_value, c.reconstruction)
    aux = b.reconstruction_loss(x, b.decode(a, W_dec, b_dec, c.decoder, c.eps), x_aux_value, c.reconstruction)
    S = b.sparsity_loss(a, W_dec, c.sparsity)
    penalty = S.then(l1_coefficient * S.magnitude, k_acc=1, k_store=1)
    per_instance = add(R.magnitude + penalty.magnitude + aux.magnitude, R, penalty, aux, k_store=2)
    n_inst = int(per_instance.magnitude.size)
    return add(np.asarray(per_instance.magnitude.sum()), per_instance, k_acc=n_inst, k_store=1)


def _output_gradient(
    x: np.ndarray, latents: Bound, W_dec: np.ndarray, b_dec: np.ndarray, c: Conventions
) -> Bound:
    """g = c · (latents Ŵ + b_dec − x), as autograd forms it: three stored products (bg's chain)."""
    out = b.decode(latents, W_dec, b_dec, c.decoder, c.eps)
    r = add(out.magnitude + np.abs(x), out, leaf(x), k_store=1)
    scale = bg._reconstruction_scale(x, c.reconstruction)
    return mul(scale.magnitude * r.magnitude, scale, r, k_store=3)


def loss_gradients(
    x: np.ndarray, params: Params, l1_coefficient: float, c: Conventions, aux_decoder: str
) -> dict[str, Bound]:
    """Bounds of the six gradients of `gated_total_loss` (GATE-6), the oracle's derivation step by step."""
    W_enc, W_dec, b_dec = params[0], params[4], params[5]
    batch, d_in, d_sae = x.shape[0], x.shape[-1], W_dec.shape[-2]
    f, a, uW, e, mag_mask, gate = _latents(x, params, c)
    W_hat = b.decoder_directions(W_dec, c.decoder, c.eps)

    def through_decoder(g: Bound) -> Bound:  # g Ŵᵀ: a length-d_in product, stored
        return mul(
            _einsum("b...i,...ji->b...j", g.magnitude, W_hat.magnitude), g, W_hat, k_acc=d_in, k_store=1
        )

    g_xhat, g_xaux = _output_gradient(x, f, W_dec, b_dec, c), _output_gradient(x, a, W_dec, b_dec, c)
    g_f = through_decoder(g_xhat)
    g_mag = Bound(np.where(mag_mask, g_f.magnitude, 0.0), g_f.k_acc, g_f.k_store)
    dS = Bound(np.where(gate, l1_coefficient / batch, 0.0), 1, 3)
    if c.sparsity == "l1_decoder_norm":
        norms = b.row_norms(W_dec)
        dS = mul(dS.magnitude * norms.magnitude, dS, norms, k_store=1)
    g_a = through_decoder(g_xaux)
    g_a = add(g_a.magnitude + dS.magnitude, g_a, dS, k_store=1)
    g_gate = Bound(np.where(gate, g_a.magnitude, 0.0), g_a.k_acc, g_a.k_store)
    # autograd: the product u W gets e ⊙ g_mag (stored) and g_gate, accumulated (stored)
    g_mag_e = mul(g_mag.magnitude * e.magnitude, g_mag, e, k_store=1)
    g_uW = add(g_gate.magnitude + g_mag_e.magnitude, g_gate, g_mag_e, k_store=1)

    u = b.encoder_input(x, b_dec, c.encode)
    out: dict[str, Bound] = {
        "W_enc": mul(
            _einsum("b...i,b...j->...ij", u.magnitude, g_uW.magnitude), u, g_uW, k_acc=batch, k_store=1
        ),
        "b_gate": add(g_gate.magnitude.sum(axis=0), g_gate, k_acc=batch, k_store=1),
        "b_mag": add(g_mag.magnitude.sum(axis=0), g_mag, k_acc=batch, k_store=1),
        # ∂e = Σ_b g_mag ⊙ u W (product and batch sum stored), then exp's backward multiplies by e
        "r_mag": mul(
            (g_mag.magnitude * uW.magnitude).sum(axis=0) * e.magnitude, g_mag, uW, e, k_acc=batch, k_store=3
        ),
    }
    G_hat = mul(
        _einsum("b...j,b...i->...ji", f.magnitude, g_xhat.magnitude), f, g_xhat, k_acc=batch, k_store=1
    )
    bias_terms = [add(g_xhat.magnitude.sum(axis=0), g_xhat, k_acc=batch, k_store=1)]
    if aux_decoder == "attached":
        G_aux = mul(
            _einsum("b...j,b...i->...ji", a.magnitude, g_xaux.magnitude), a, g_xaux, k_acc=batch, k_store=1
        )
        G_hat = add(G_hat.magnitude + G_aux.magnitude, G_hat, G_aux, k_store=1)
        bias_terms.append(add(g_xaux.magnitude.sum(axis=0), g_xaux, k_acc=batch, k_store=1))
    if c.encode == "tied":
        g_u = mul(
            _einsum("b...j,...ij->b...i", g_uW.magnitude, np.abs(W_enc)),
            g_uW,
            leaf(W_enc),
            k_acc=d_sae,
            k_store=1,
        )
        bias_terms.append(add(g_u.magnitude.sum(axis=0), g_u, k_acc=batch, k_store=1))
    # autograd accumulates the contributions into b_dec.grad: one stored sum per extra term
    out["b_dec"] = add(
        np.sum([t.magnitude for t in bias_terms], axis=0), *bias_terms, k_store=len(bias_terms) - 1
    )
    grad_W_dec = G_hat if c.decoder == "constrained" else bg.normalisation_backward(W_dec, G_hat, c.eps)
    if c.sparsity == "l1_decoder_norm":
        grad_W_dec = bg.decoder_norm_penalty(W_dec, a, l1_coefficient, grad_W_dec)
    out["W_dec"] = grad_W_dec
    return out


def case_encode(
    arrays: dict[str, np.ndarray], encode_convention: EncodeConvention
) -> dict[str, Bound | None]:
    """`encode` of a row's case (named arrays)."""
    a = arrays
    return encode(a["x"], a["W_enc"], a["b_gate"], a["r_mag"], a["b_mag"], a["b_dec"], encode_convention)
