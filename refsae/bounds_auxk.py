"""Error bounds of the AuxK rows (AUXK, TOL-4), step by step as refsae.torch computes them.

z is an input of the rows (representable, STR-1), so the selection and the auxiliary latents are
exact on both sides once the strategies exclude the ties that change them (AUXK-9): a is a leaf.
The residual e = x − x_hat is one stored difference with magnitude |x| + |x_hat|; its variance
(the `residual_variance` normaliser) inherits that chain. s = min(n_dead/k_aux, 1) is one rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refsae import bounds as b
from refsae import bounds_gradients as bg
from refsae.oracle.auxk import AuxKOptions, _selected, auxk_latents, check_dead
from refsae.oracle.forward import decoder_directions
from refsae.tolerances import Bound, add, leaf, mul


def _sum_batch_dim(a: np.ndarray) -> np.ndarray:
    return np.asarray(a.sum(axis=(0, -1)))


def variance(e: Bound, value: np.ndarray) -> Bound:
    """Σ (e − mean_b e)² of a computed e (LOSS-3's chain on top of e's own); `value` is e."""
    batch = value.shape[0]
    mean = add(e.magnitude.mean(axis=0, keepdims=True), e, k_acc=batch + 1, k_store=1)
    centred = add(e.magnitude + mean.magnitude, e, mean, k_store=1)
    square = mul(centred.magnitude**2, centred, centred, k_store=1)
    return add(_sum_batch_dim(square.magnitude), square, k_acc=batch * value.shape[-1], k_store=1)


def _parts(
    x: np.ndarray,
    x_hat: np.ndarray,
    z: np.ndarray,
    W_dec: np.ndarray,
    b_dec: np.ndarray,
    dead: np.ndarray,
    o: AuxKOptions,
) -> tuple[np.ndarray, Bound, Bound, Bound, Bound, np.ndarray, Bound, np.ndarray]:
    """a, Ŵ, e, ê − e, N = Σ (ê − e)², its value, D's bound and D's value (1 where no latent is dead)."""
    batch, d_sae = x.shape[0], W_dec.shape[-2]
    a = auxk_latents(z, dead, k_aux=o.k_aux, values=o.values)
    W_hat = b.decoder_directions(W_dec, o.decoder, o.eps)
    e_hat = mul(
        np.einsum("b...j,...ji->b...i", np.abs(a), W_hat.magnitude), leaf(a), W_hat, k_acc=d_sae, k_store=1
    )
    if o.aux_decode != "without_b_dec":
        e_hat = add(e_hat.magnitude + np.abs(b_dec), e_hat, leaf(b_dec), k_store=1)
    if o.aux_decode == "cancelled_b_dec":  # (ê + b_dec) − b_dec: a second stored difference
        e_hat = add(e_hat.magnitude + np.abs(b_dec), e_hat, leaf(b_dec), k_store=1)
    e = add(np.abs(x) + np.abs(x_hat), leaf(x), leaf(x_hat), k_store=1)
    diff = add(e_hat.magnitude + e.magnitude, e_hat, e, k_store=1)
    square = mul(diff.magnitude**2, diff, diff, k_store=1)
    N = add(_sum_batch_dim(square.magnitude), square, k_acc=batch * x.shape[-1], k_store=1)
    e_value = x - x_hat
    e_hat_value = np.einsum("b...j,...ji->b...i", a, decoder_directions(W_dec, decoder=o.decoder, eps=o.eps))
    if o.aux_decode == "with_b_dec":
        e_hat_value = e_hat_value + b_dec
    N_value = _sum_batch_dim((e_hat_value - e_value) ** 2)
    if o.normalisation == "sum":
        D, D_value = Bound(np.full(N_value.shape, float(batch)), 0, 0), np.full(N_value.shape, float(batch))
    elif o.normalisation == "input_variance":
        D, D_value = b.total_variance(x), _sum_batch_dim((x - x.mean(axis=0, keepdims=True)) ** 2)
    else:
        D, D_value = (
            variance(e, e_value),
            _sum_batch_dim((e_value - e_value.mean(axis=0, keepdims=True)) ** 2),
        )
    return a, W_hat, e, diff, N, N_value, D, np.where(D_value > 0, D_value, 1.0)


def _scale(dead: np.ndarray, o: AuxKOptions) -> Bound:
    """s: 0 without dead latents, 1 (exact) or min(n_dead/k_aux, 1) rounded once."""
    n_dead = check_dead(dead).sum(axis=-1)
    if o.scale == "unscaled":
        return Bound(np.where(n_dead > 0, 1.0, 0.0), 0, 0)
    return Bound(np.where(n_dead > 0, np.minimum(n_dead / o.k_aux, 1.0), 0.0), 0, 1)


def loss(
    x: np.ndarray,
    x_hat: np.ndarray,
    z: np.ndarray,
    W_dec: np.ndarray,
    b_dec: np.ndarray,
    dead: np.ndarray,
    o: AuxKOptions,
) -> Bound:
    """s · N / D per instance (first order: |ΔN|/D + N·|ΔD|/D², TOL-4; s·N and the quotient stored),
    summed over instances."""
    _, _, _, _, N, N_value, D, D_value = _parts(x, x_hat, z, W_dec, b_dec, dead, o)
    s = _scale(dead, o)
    quotient = add(N.magnitude / D_value + N_value * D.magnitude / D_value**2, N, D)
    per_instance = mul(s.magnitude * quotient.magnitude, s, quotient, k_store=2)
    n_inst = int(per_instance.magnitude.size)
    return add(np.asarray(per_instance.magnitude.sum()), per_instance, k_acc=n_inst, k_store=1)


def loss_gradients(
    x: np.ndarray,
    x_hat: np.ndarray,
    z: np.ndarray,
    W_dec: np.ndarray,
    b_dec: np.ndarray,
    dead: np.ndarray,
    o: AuxKOptions,
) -> dict[str, Bound | None]:
    """Bounds of ∂L/∂(z, W_dec, b_dec, x_hat) (AUXK-8); None (exact zero) for the inputs the loss does
    not reach."""
    batch, d_in = x.shape[0], x.shape[-1]
    a, W_hat, _, diff, _, _, D, D_value = _parts(x, x_hat, z, W_dec, b_dec, dead, o)
    s = _scale(dead, o)
    # autograd: ∂/∂N = s/D (the quotient's backward and the product's: two stored roundings); 1/D
    # carries D's relative error, so its magnitude is s·M_D/D²
    g_N = mul((s.magnitude * D.magnitude / D_value**2)[..., None], s, D, k_store=2)
    g = mul(2 * g_N.magnitude * diff.magnitude, g_N, diff, k_store=3)  # pow's backward: 2·diff·g_N
    g_a = mul(np.einsum("b...i,...ji->b...j", g.magnitude, W_hat.magnitude), g, W_hat, k_acc=d_in, k_store=1)
    selected = a != 0 if o.values == "relu" else _selected(z, check_dead(dead), o.k_aux)
    G_hat = mul(np.einsum("b...j,b...i->...ji", np.abs(a), g.magnitude), leaf(a), g, k_acc=batch, k_store=1)
    return {
        "z": Bound(np.where(selected, g_a.magnitude, 0.0), g_a.k_acc, g_a.k_store),
        "W_dec": G_hat if o.decoder == "constrained" else bg.normalisation_backward(W_dec, G_hat, o.eps),
        "b_dec": None
        if o.aux_decode == "without_b_dec"
        else add(g.magnitude.sum(axis=0), g, k_acc=batch, k_store=1),
        "x_hat": g if o.residual == "attached" else None,
    }


def _case_args(
    arrays: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return arrays["x"], arrays["x_hat"], arrays["z"], arrays["W_dec"], arrays["b_dec"], arrays["dead"]


def case_loss(arrays: dict[str, np.ndarray], options: dict[str, Any]) -> dict[str, Bound | None]:
    """`loss` of a row's case: named arrays, the options of `AuxKOptions`."""
    return {"loss": loss(*_case_args(arrays), AuxKOptions(**options))}


def case_loss_gradients(arrays: dict[str, np.ndarray], options: dict[str, Any]) -> dict[str, Bound | None]:
    """`loss_gradients` of a row's case."""
    return loss_gradients(*_case_args(arrays), AuxKOptions(**options))
