"""Case strategies of the Gated SAE rows (GATE-8): margins at both kinks built in, never loosened.

A full SAE case supplies x, W_enc, W_dec, b_dec (and its b_enc becomes b_gate); r_mag is drawn in
[−2, 2] (so exp(r_mag) ∈ [0.14, 7.4]) and b_mag at a drawn scale. Then b_gate and b_mag are moved
(STR-7's `kink_margin_b_enc`, applied to each path) so that every π_gate and every π_mag is more
than twice its allowed error away from 0: rounding can flip neither the gate nor either ReLU, in
any dtype. The loss and gradient rows draw every convention, λ and `aux_decoder`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import bounds, oracle
from refsae import bounds_gated as bgt
from refsae import strategies as rs
from refsae.cases import Case, _finish, sae_case, variance_is_certain
from refsae.conventions import Conventions
from refsae.oracle.gated_activation import AUX_DECODER
from refsae.tolerances import Bound, allowed_error, magnitude_floor

PARAMS = ("W_enc", "b_gate", "r_mag", "b_mag", "W_dec", "b_dec")
ENCODE_ARRAYS = ("x", "W_enc", "b_gate", "r_mag", "b_mag", "b_dec")


def _params(a: dict[str, np.ndarray]) -> bgt.Params:
    return (a["W_enc"], a["b_gate"], a["r_mag"], a["b_mag"], a["W_dec"], a["b_dec"])


def _away_from_zero(a: dict[str, np.ndarray], c: Conventions, dtype: str) -> dict[str, np.ndarray]:
    """Move b_gate, then b_mag, off their kinks by 4× a generous allowed error (STR-7), then keep the
    case only if every |π| exceeds twice its own allowed error."""
    pre = (a["x"], a["W_enc"], a["b_gate"], a["r_mag"], a["b_mag"], a["b_dec"], c.encode)
    pi_gate, pi_mag, _, _ = bgt.pre_activations(*pre)
    u = a["x"] - a["b_dec"] if c.encode == "tied" else a["x"]
    uW = np.einsum("b...i,...ij->b...j", u, a["W_enc"])
    for bias, path, z0 in (("b_gate", pi_gate, uW), ("b_mag", pi_mag, np.exp(a["r_mag"]) * uW)):
        headroom = np.abs(z0) + np.abs(a[bias]) + path.magnitude
        margin = 4 * allowed_error(Bound(headroom, path.k_acc, path.k_store), dtype)
        a[bias] = rs.kink_margin_b_enc(z0, a[bias], margin, dtype)
    with magnitude_floor(dtype):  # subnormal π rounds absolutely (TOL-7)
        bounds = bgt.pre_activations(
            a["x"], a["W_enc"], a["b_gate"], a["r_mag"], a["b_mag"], a["b_dec"], c.encode
        )
    values = oracle.gated_pre_activations(
        a["x"], a["W_enc"], a["b_gate"], a["r_mag"], a["b_mag"], a["b_dec"], encode=c.encode
    )
    for value, bound in zip(values, bounds[:2], strict=True):
        assume(bool(np.all(np.abs(value) > 2 * allowed_error(bound, dtype))))
    return a


@st.composite
def gated_base(draw: st.DrawFn, dtype: str) -> tuple[dict[str, np.ndarray], Conventions]:
    c: Conventions = draw(rs.conventions())
    shape, base = draw(sae_case(dtype, min_batch=2 if c.reconstruction == "fvu" else 1))
    if c.reconstruction == "fvu":
        assume(variance_is_certain(base["x"], dtype))
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
    return _away_from_zero(a, c, dtype), c


@st.composite
def gated_encode_cases(draw: st.DrawFn, dtype: str) -> Case:
    a, c = draw(gated_base(dtype))
    arrays = {k: a[k] for k in ENCODE_ARRAYS}
    b = bgt.case_encode(arrays, c.encode)
    return _finish(
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
    f, a_gate, _, _, _, _ = bgt._latents(a["x"], _params(a), c)
    magnitudes = [f.magnitude, a_gate.magnitude]
    for latents in (f, a_gate):
        x_out = bounds.decode(latents, a["W_dec"], a["b_dec"], c.decoder, c.eps)
        magnitudes += [x_out.magnitude, ((x_out.magnitude + np.abs(a["x"])) ** 2).sum(axis=(0, -1))]
    grads = bgt.loss_gradients(a["x"], _params(a), lam, c, options["aux_decoder"])
    magnitudes += [g.magnitude for g in grads.values()]
    if c.decoder == "normalised":  # the norm's backward quotient (STR-4)
        ne = np.linalg.norm(a["W_dec"], axis=-1) + c.eps
        magnitudes.append((np.abs(a["W_dec"]) * grads["W_dec"].magnitude).sum(axis=-1) / ne)
    return _finish(Case(a, options, dtype), magnitudes)
