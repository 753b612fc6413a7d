"""The Gated SAE (gated.md): case strategies, error bounds and rows of `gated_encode` and the Gated
loss and gradients.

Case strategies of the Gated SAE rows (GATE-8): margins at both kinks built in, never loosened.

A full SAE case supplies x, W_enc, W_dec, b_dec (and its b_enc becomes b_gate); r_mag is drawn in
[−2, 2] (so exp(r_mag) ∈ [0.14, 7.4]) and b_mag at a drawn scale. Then b_gate and b_mag are moved
(STR-7's `kink_margin_b_enc`, applied to each path) so that every π_gate and every π_mag is more
than twice its allowed error away from 0: rounding can flip neither the gate nor either ReLU, in
any dtype. The loss and gradient rows draw every convention, λ and `aux_decoder`.

Error bounds of the Gated SAE rows (GATE, TOL-4), step by step as refsae.torch computes them.

The strategies keep every π_gate and π_mag more than twice its allowed error away from 0 (GATE-8),
so the gate, the magnitude ReLU and the auxiliary ReLU take the oracle's masks; each latent then
carries the bound of its pre-activation where active and is exactly 0 elsewhere. `exp(r_mag)` is
faithfully rounded (error below one unit in the last place, 2u): two roundings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking import bounds
from refsae.checking import strategies as rs
from refsae.checking.cases import conventions_of, finish, sae_case, shrink_to_range, variance_is_certain
from refsae.checking.operation import Bounds, Operation, Outputs
from refsae.checking.rows.losses import LOSS_EXAMPLE
from refsae.checking.tolerances import Bound, add, allowed_error, leaf, magnitude_floor, mul
from refsae.conventions import Conventions, EncodeConvention
from refsae.oracle.forward import decode
from refsae.oracle.gated import AUX_DECODER, gated_encode, gated_pre_activations

PARAMS = ("W_enc", "b_gate", "r_mag", "b_mag", "W_dec", "b_dec")


ENCODE_ARRAYS = ("x", "W_enc", "b_gate", "r_mag", "b_mag", "b_dec")


def gated_params(a: dict[str, np.ndarray]) -> GatedParams:
    return (a["W_enc"], a["b_gate"], a["r_mag"], a["b_mag"], a["W_dec"], a["b_dec"])


def _away_from_zero(a: dict[str, np.ndarray], c: Conventions, dtype: str) -> dict[str, np.ndarray]:
    """Move b_gate, then b_mag, off their kinks by 4× a generous allowed error (STR-7), then keep the
    case only if every |π| exceeds twice its own allowed error."""
    pre = (a["x"], a["W_enc"], a["b_gate"], a["r_mag"], a["b_mag"], a["b_dec"], c.encode)
    pi_gate, pi_mag, _, _ = gated_pre_activations_bound(*pre)
    u = a["x"] - a["b_dec"] if c.encode == "tied" else a["x"]
    uW = np.einsum("b...i,...ij->b...j", u, a["W_enc"])
    for bias, path, z0 in (("b_gate", pi_gate, uW), ("b_mag", pi_mag, np.exp(a["r_mag"]) * uW)):
        headroom = np.abs(z0) + np.abs(a[bias]) + path.magnitude
        margin = 4 * allowed_error(Bound(headroom, path.k_acc, path.k_store), dtype)
        a[bias] = rs.kink_margin_b_enc(z0, a[bias], margin, dtype)
    with magnitude_floor(dtype):  # subnormal π rounds absolutely (TOL-7)
        pi_bounds = gated_pre_activations_bound(
            a["x"], a["W_enc"], a["b_gate"], a["r_mag"], a["b_mag"], a["b_dec"], c.encode
        )
    values = oracle.gated_pre_activations(
        a["x"], a["W_enc"], a["b_gate"], a["r_mag"], a["b_mag"], a["b_dec"], encode=c.encode
    )
    for value, bound in zip(values, pi_bounds[:2], strict=True):
        assume(bool(np.all(np.abs(value) > 2 * allowed_error(bound, dtype))))
    return a


@st.composite
def gated_base(draw: st.DrawFn, dtype: str) -> tuple[dict[str, np.ndarray], Conventions]:
    c: Conventions = draw(rs.conventions())
    shape, base = draw(sae_case(dtype, min_batch=2 if c.reconstruction == "fvu" else 1))
    latent_shape = (*shape.inst, shape.d_sae)
    r_mag = rs.round_to(np.clip(draw(rs.arrays(latent_shape, dtype, 0.5)), -2.0, 2.0), dtype)
    b_mag = draw(rs.arrays(latent_shape, dtype, draw(rs.scales(dtype))))
    a = {
        "x": base["x"],
        "W_enc": base["W_enc"],
        "b_gate": base["b_enc"],
        "r_mag": r_mag,
        "b_mag": b_mag,
        "W_dec": base["W_dec"],
        "b_dec": base["b_dec"],
    }
    a = _in_range(a, c, dtype)
    if c.reconstruction == "fvu":
        assume(variance_is_certain(a["x"], dtype))
    return _away_from_zero(a, c, dtype), c


def _in_range(a: dict[str, np.ndarray], c: Conventions, dtype: str) -> dict[str, np.ndarray]:
    """STR-4's repair (`shrink_to_range`) on Σ (|x̂| + |x|)² of both reconstructions (f's and the gate's
    auxiliary one): x, b_gate, b_mag and b_dec, which both pre-activations, both latents and both residuals
    are linear in (π = u W_enc + b, with u = x or x − b_dec; ReLU and the gate's step are homogeneous)."""
    f, a_gate, _, _, _, _ = gated_latents_bound(a["x"], gated_params(a), c)
    numerator = np.maximum.reduce(
        [
            (
                (bounds.decode(latents, a["W_dec"], a["b_dec"], c.decoder, c.eps).magnitude + np.abs(a["x"]))
                ** 2
            ).sum(axis=(0, -1))
            for latents in (f, a_gate)
        ]
    )
    return shrink_to_range(a, numerator, ("x", "b_gate", "b_mag", "b_dec"), dtype)


@st.composite
def gated_encode_cases(draw: st.DrawFn, dtype: str) -> Case:
    a, c = draw(gated_base(dtype))
    arrays = {k: a[k] for k in ENCODE_ARRAYS}
    b = gated_encode_bounds(Case(arrays, {"encode": c.encode}, dtype), {})
    return finish(
        Case(arrays, {"encode": c.encode}, dtype), [bound.magnitude for bound in b.values() if bound]
    )


@st.composite
def gated_loss_cases(draw: st.DrawFn, dtype: str) -> Case:
    a, c = draw(gated_base(dtype))
    lam: float = draw(rs.l1_coefficients())
    options: dict[str, Any] = {
        "l1_coefficient": lam,
        "conventions": c,
        "aux_decoder": draw(rs.convention("aux_decoder", AUX_DECODER)),
    }
    f, a_gate, _, _, _, _ = gated_latents_bound(a["x"], gated_params(a), c)
    magnitudes = [f.magnitude, a_gate.magnitude]
    for latents in (f, a_gate):
        x_out = bounds.decode(latents, a["W_dec"], a["b_dec"], c.decoder, c.eps)
        magnitudes += [x_out.magnitude, ((x_out.magnitude + np.abs(a["x"])) ** 2).sum(axis=(0, -1))]
    grads = gated_loss_gradients_bound(a["x"], gated_params(a), lam, c, options["aux_decoder"])
    magnitudes += [g.magnitude for g in grads.values()]
    if c.decoder == "normalised":  # the norm's backward quotient (STR-4)
        ne = np.linalg.norm(a["W_dec"], axis=-1) + c.eps
        magnitudes.append((np.abs(a["W_dec"]) * grads["W_dec"].magnitude).sum(axis=-1) / ne)
    return finish(Case(a, options, dtype), magnitudes)


GatedParams = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""W_enc, b_gate, r_mag, b_mag, W_dec, b_dec."""


def _einsum(spec: str, *operands: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.einsum(spec, *operands)
    return out


def gated_pre_activations_bound(
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
    u = bounds.encoder_input(x, b_dec, encode)
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


def gated_latents_bound(
    x: np.ndarray, params: GatedParams, c: Conventions
) -> tuple[Bound, Bound, Bound, Bound, np.ndarray, np.ndarray]:
    """Bounds of f and a = ReLU(π_gate) with the oracle's masks, of u W and exp(r_mag); the masks
    of f (gate and magnitude) and of a (gate), from the oracle's values (bounds may be floored, TOL-7)."""
    W_enc, b_gate, r_mag, b_mag, _, b_dec = params
    pi_gate, pi_mag, uW, e = gated_pre_activations_bound(x, W_enc, b_gate, r_mag, b_mag, b_dec, c.encode)
    gate_value, mag_value = gated_pre_activations(x, W_enc, b_gate, r_mag, b_mag, b_dec, encode=c.encode)
    gate = gate_value > 0
    f = Bound(np.where(gate & (mag_value > 0), pi_mag.magnitude, 0.0), pi_mag.k_acc, pi_mag.k_store)
    a = Bound(np.where(gate, pi_gate.magnitude, 0.0), pi_gate.k_acc, pi_gate.k_store)
    return f, a, uW, e, gate & (mag_value > 0), gate


def gated_encode_bound(
    x: np.ndarray,
    W_enc: np.ndarray,
    b_gate: np.ndarray,
    r_mag: np.ndarray,
    b_mag: np.ndarray,
    b_dec: np.ndarray,
    encode: EncodeConvention,
) -> dict[str, Bound | None]:
    """f carries π_mag's bound where the gate is open (ReLU is 1-Lipschitz); π_gate its own."""
    pi_gate, pi_mag, _, _ = gated_pre_activations_bound(x, W_enc, b_gate, r_mag, b_mag, b_dec, encode)
    gate, _ = gated_pre_activations(x, W_enc, b_gate, r_mag, b_mag, b_dec, encode=encode)
    f = Bound(np.where(gate > 0, pi_mag.magnitude, 0.0), pi_mag.k_acc, pi_mag.k_store)
    return {"f": f, "pi_gate": pi_gate}


def gated_total_loss_bound(
    x: np.ndarray, params: GatedParams, l1_coefficient: float, c: Conventions
) -> Bound:
    """R(x, x_hat) + λ·S(a) + R(x, x_aux) per instance (two stored sums), summed over instances."""
    W_enc, b_gate, r_mag, b_mag, W_dec, b_dec = params
    f, a, _, _, _, _ = gated_latents_bound(x, params, c)
    f_value, pi_gate = gated_encode(x, W_enc, b_gate, r_mag, b_mag, b_dec, encode=c.encode)
    x_hat_value = decode(f_value, W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    x_aux_value = decode(np.maximum(pi_gate, 0.0), W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    R = bounds.reconstruction_loss(
        x, bounds.decode(f, W_dec, b_dec, c.decoder, c.eps), x_hat_value, c.reconstruction
    )
    aux = bounds.reconstruction_loss(
        x, bounds.decode(a, W_dec, b_dec, c.decoder, c.eps), x_aux_value, c.reconstruction
    )
    S = bounds.sparsity_loss(a, W_dec, c.sparsity)
    penalty = S.then(l1_coefficient * S.magnitude, k_acc=1, k_store=1)
    per_instance = add(R.magnitude + penalty.magnitude + aux.magnitude, R, penalty, aux, k_store=2)
    n_inst = int(per_instance.magnitude.size)
    return add(np.asarray(per_instance.magnitude.sum()), per_instance, k_acc=n_inst, k_store=1)


def _output_gradient(
    x: np.ndarray, latents: Bound, W_dec: np.ndarray, b_dec: np.ndarray, c: Conventions
) -> Bound:
    """g = c · (latents Ŵ + b_dec − x), as autograd forms it: three stored products (bg's chain)."""
    out = bounds.decode(latents, W_dec, b_dec, c.decoder, c.eps)
    r = add(out.magnitude + np.abs(x), out, leaf(x), k_store=1)
    scale = bounds.reconstruction_scale(x, c.reconstruction)
    return mul(scale.magnitude * r.magnitude, scale, r, k_store=3)


def gated_loss_gradients_bound(
    x: np.ndarray, params: GatedParams, l1_coefficient: float, c: Conventions, aux_decoder: str
) -> dict[str, Bound]:
    """Bounds of the six gradients of `gated_total_loss` (GATE-6), the oracle's derivation step by step."""
    W_enc, W_dec, b_dec = params[0], params[4], params[5]
    batch, d_in, d_sae = x.shape[0], x.shape[-1], W_dec.shape[-2]
    f, a, uW, e, mag_mask, gate = gated_latents_bound(x, params, c)
    W_hat = bounds.decoder_directions(W_dec, c.decoder, c.eps)

    def through_decoder(g: Bound) -> Bound:  # g Ŵᵀ: a length-d_in product, stored
        return mul(
            _einsum("b...i,...ji->b...j", g.magnitude, W_hat.magnitude), g, W_hat, k_acc=d_in, k_store=1
        )

    g_xhat, g_xaux = _output_gradient(x, f, W_dec, b_dec, c), _output_gradient(x, a, W_dec, b_dec, c)
    g_f = through_decoder(g_xhat)
    g_mag = Bound(np.where(mag_mask, g_f.magnitude, 0.0), g_f.k_acc, g_f.k_store)
    dS = Bound(np.where(gate, l1_coefficient / batch, 0.0), 1, 3)
    if c.sparsity == "l1_decoder_norm":
        norms = bounds.row_norms(W_dec)
        dS = mul(dS.magnitude * norms.magnitude, dS, norms, k_store=1)
    g_a = through_decoder(g_xaux)
    g_a = add(g_a.magnitude + dS.magnitude, g_a, dS, k_store=1)
    g_gate = Bound(np.where(gate, g_a.magnitude, 0.0), g_a.k_acc, g_a.k_store)
    # autograd: the product u W gets e ⊙ g_mag (stored) and g_gate, accumulated (stored)
    g_mag_e = mul(g_mag.magnitude * e.magnitude, g_mag, e, k_store=1)
    g_uW = add(g_gate.magnitude + g_mag_e.magnitude, g_gate, g_mag_e, k_store=1)

    u = bounds.encoder_input(x, b_dec, c.encode)
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
    grad_W_dec = G_hat if c.decoder == "constrained" else bounds.normalisation_backward(W_dec, G_hat, c.eps)
    if c.sparsity == "l1_decoder_norm":
        grad_W_dec = bounds.decoder_norm_penalty(W_dec, a, l1_coefficient, grad_W_dec)
    out["W_dec"] = grad_W_dec
    return out


def gated_encode_bounds(case: Case, out: Outputs) -> Bounds:
    """The `gated_encode` row's bounds."""
    a = case.arrays
    return dict(
        gated_encode_bound(
            a["x"], a["W_enc"], a["b_gate"], a["r_mag"], a["b_mag"], a["b_dec"], case.options["encode"]
        )
    )


def gated_total_loss_bounds(case: Case, out: Outputs) -> Bounds:
    x, o = case.arrays["x"], case.options
    return {
        "loss": gated_total_loss_bound(
            x, gated_params(case.arrays), o["l1_coefficient"], conventions_of(case)
        )
    }


def gated_loss_gradients_bounds(case: Case, out: Outputs) -> Bounds:
    x, o = case.arrays["x"], case.options
    params, c = gated_params(case.arrays), conventions_of(case)
    return dict(gated_loss_gradients_bound(x, params, o["l1_coefficient"], c, o["aux_decoder"]))


ROWS = (
    Operation(
        name="gated_encode",
        summary="(f, π_gate): f = 1[π_gate > 0] · ReLU(π_mag), W_enc rescaled by exp(r_mag) on the "
        "magnitude path",
        clauses=("GATE-1", "GATE-2", "GATE-8"),
        arrays=ENCODE_ARRAYS,
        outputs=("f", "pi_gate"),
        cases=gated_encode_cases,
        bounds=gated_encode_bounds,
        example={"encode": "tied"},
    ),
    Operation(
        name="gated_total_loss",
        summary="reconstruction + λ · sparsity of ReLU(π_gate) + the auxiliary reconstruction "
        "(decoder detached)",
        clauses=("GATE-3", "GATE-4", "GATE-8"),
        arrays=("x", *PARAMS),
        outputs=("loss",),
        cases=gated_loss_cases,
        bounds=gated_total_loss_bounds,
        example={**LOSS_EXAMPLE, "aux_decoder": "detached"},
    ),
    Operation(
        name="gated_loss_gradients",
        summary="∂L/∂(W_enc, b_gate, r_mag, b_mag, W_dec, b_dec); the gate's step passes no gradient",
        clauses=("GATE-4", "GATE-5", "GATE-6", "GATE-8"),
        arrays=("x", *PARAMS),
        outputs=PARAMS,
        cases=gated_loss_cases,
        bounds=gated_loss_gradients_bounds,
        example={**LOSS_EXAMPLE, "aux_decoder": "attached"},
    ),
)
