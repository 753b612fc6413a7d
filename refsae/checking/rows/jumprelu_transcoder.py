"""JumpReLU transcoders (transcoder.md, TC-8..TC-11): case strategies, error bounds and rows of the
forward pass, the L0 loss with y as the target and its gradients with the threshold's pseudo-gradient.

Case strategies (TC-11). TC-7's transcoder parts (d_out drawn apart from d_in half the time, W_skip
drawn or zero), shrunk into range (STR-4); θ and a power-of-two bandwidth ε drawn from z = x W_enc + b_enc
as JUMP-8 draws them: every |z − θ| and every ||z − θ| − ε/2| exceeds twice the error of z − θ, so the
mask 1[z > θ] and the kernel are exact in every dtype.

Error bounds (TC-11). f is a copy of z where active (z's bound), ŷ TC-7's decode of it; the loss is R(y, ŷ)
plus λ times an exact count over B; the five parameter gradients are TC-7's with the mask z > θ and
λ_L1 = 0, the threshold's JUMP-8's sums over the window with g_f = g_ŷ Ŵᵀ, and under `ste="also_input"`
the straight-through terms at z pulled back through the untied encoder (W_enc and b_enc).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking import bounds
from refsae.checking import strategies as rs
from refsae.checking.cases import finish, variance_is_certain
from refsae.checking.operation import Bounds, Operation, Outputs
from refsae.checking.rows.jumprelu import draw_threshold, threshold_bounds
from refsae.checking.rows.losses import RECONSTRUCTION_DRAWN
from refsae.checking.rows.transcoder import (
    ARRAYS,
    GRADIENTS,
    forward_bounds,
    gradient_bounds,
    in_range,
    transcoder_parts,
    z_bound,
)
from refsae.checking.tolerances import Bound, add, mul
from refsae.conventions import DECODER, OPERATION_AXES

EXAMPLE: dict[str, Any] = {
    "l0_coefficient": 0.5,
    "bandwidth": 0.5,
    "reconstruction": "fvu",
    "decoder": "normalised",
}


def _z(a: dict[str, np.ndarray]) -> np.ndarray:
    z: np.ndarray = np.einsum("b...i,...ij->b...j", a["x"], a["W_enc"]) + a["b_enc"]
    return z


def _mask(case: Case) -> np.ndarray:
    """The oracle's mask 1[z > θ]."""
    mask: np.ndarray = _z(case.arrays) > case.arrays["theta"]
    return mask


@st.composite
def forward_cases(draw: st.DrawFn, dtype: str) -> Case:
    _, a = draw(transcoder_parts(dtype))
    arrays = {k: v for k, v in a.items() if k != "y"}
    arrays["theta"], _ = draw_threshold(draw, _z(arrays), z_bound(arrays), dtype)
    case = Case(
        arrays, {"decoder": draw(rs.convention("decoder", DECODER)), "eps": draw(rs.epsilons())}, dtype
    )
    f, y_hat = forward_bounds(case, _mask(case))
    return finish(case, [f.magnitude, y_hat.magnitude])


def forward_row_bounds(case: Case, out: Outputs) -> Bounds:
    f, y_hat = forward_bounds(case, _mask(case))
    return {"f": f, "y_hat": y_hat}


@st.composite
def loss_cases(draw: st.DrawFn, dtype: str, *, gradients: bool = False) -> Case:
    """A transcoder case (shrunk into range) with θ, ε (JUMP-8's margins), λ ≥ 0 and the conventions;
    with `gradients`, the threshold's parametrisation (JUMP-5) and `ste` (JUMP-14, JUMP-15) too."""
    reconstruction = draw(rs.convention("reconstruction", RECONSTRUCTION_DRAWN))
    _, a = draw(transcoder_parts(dtype, min_batch=2 if reconstruction == "fvu" else 1))
    a = in_range(a, dtype)
    if reconstruction == "fvu":
        assume(variance_is_certain(a["y"], dtype))
    z = _z(a)
    a["theta"], bandwidth = draw_threshold(draw, z, z_bound(a), dtype)
    options: dict[str, Any] = {
        "l0_coefficient": draw(rs.l1_coefficients()),
        "bandwidth": bandwidth,
        "reconstruction": reconstruction,
        "decoder": draw(rs.convention("decoder", DECODER)),
        "eps": draw(rs.epsilons()),
    }
    if gradients:
        options["parametrisation"] = draw(rs.convention("parametrisation", OPERATION_AXES["parametrisation"]))
        options["ste"] = draw(rs.convention("ste", OPERATION_AXES["ste"]))
    case = Case(a, options, dtype)
    _, y_hat = forward_bounds(case, _mask(case))
    numerator = ((y_hat.magnitude + np.abs(a["y"])) ** 2).sum(axis=(0, -1))  # Σ (ŷ − y)² (STR-4)
    magnitudes = [y_hat.magnitude, numerator, np.abs(z) / bandwidth]
    magnitudes += [b.magnitude for b in _gradient_bounds(case).values()]
    return finish(case, magnitudes)


def total_loss_bounds(case: Case, out: Outputs) -> Bounds:
    """R(y, ŷ) (TC-7's bound with the mask z > θ) plus λ · count/B, the count exact (TC-9)."""
    a, o = case.arrays, case.options
    mask = _mask(case)
    _, y_hat = forward_bounds(case, mask)
    value = oracle.transcoder_decode(
        np.where(mask, _z(a), 0.0),
        a["x"],
        a["W_dec"],
        a["b_dec"],
        a["W_skip"],
        decoder=o["decoder"],
        eps=o["eps"],
    )
    R = bounds.reconstruction_loss(a["y"], y_hat, value, o["reconstruction"])
    count = mask.sum(axis=(0, -1))
    penalty = Bound(np.asarray(o["l0_coefficient"] * count / a["x"].shape[0], dtype=np.float64), 0, 3)
    return {"loss": bounds.instance_sum(R, penalty)}


def _gradient_bounds(case: Case) -> dict[str, Bound]:
    a, o = case.arrays, case.options
    mask = _mask(case)
    out = gradient_bounds(Case(a, {**o, "l1_coefficient": 0.0, "sparsity": "l1"}, case.dtype), mask)
    threshold, at_z = threshold_bounds(out.pop("g_f"), _z(a), a["theta"], o["bandwidth"], o["l0_coefficient"])
    if o.get("ste", "threshold_only") == "also_input":  # JUMP-15, through the untied encoder
        extra = bounds.encoder_backward(a["x"], a["W_enc"], np.zeros(a["x"].shape[1:]), at_z, "untied")
        for name in ("W_enc", "b_enc"):
            out[name] = add(out[name].magnitude + extra[name].magnitude, out[name], extra[name], k_store=1)
    if o.get("parametrisation", "theta") == "log_theta":
        threshold = mul(np.abs(a["theta"]) * threshold.magnitude, threshold, k_store=1)
    return {**out, "threshold": threshold}


def loss_gradients_bounds(case: Case, out: Outputs) -> Bounds:
    return dict(_gradient_bounds(case))


ROWS = (
    Operation(
        name="jumprelu_transcoder_forward",
        summary="f = z · 1[z > θ] with z = x W_enc + b_enc, ŷ = f Ŵ + b_dec + x W_skipᵀ",
        clauses=("TC-8", "TC-4", "TC-11"),
        arrays=("x", "W_enc", "b_enc", "W_dec", "b_dec", "W_skip", "theta"),
        outputs=("f", "y_hat"),
        cases=forward_cases,
        bounds=forward_row_bounds,
        example={"decoder": "normalised", "eps": 1e-3},
    ),
    Operation(
        name="jumprelu_transcoder_total_loss",
        summary="R(y, ŷ) + λ · L0 of a JumpReLU transcoder",
        clauses=("TC-8", "TC-9", "TC-11"),
        arrays=(*ARRAYS, "theta"),
        outputs=("loss",),
        cases=loss_cases,
        bounds=total_loss_bounds,
        example=EXAMPLE,
    ),
    Operation(
        name="jumprelu_transcoder_loss_gradients",
        summary="∂L/∂(W_enc, b_enc, W_dec, b_dec, W_skip) and the threshold's pseudo-gradient",
        clauses=("TC-10", "TC-11"),
        arrays=(*ARRAYS, "theta"),
        outputs=(*GRADIENTS, "threshold"),
        cases=partial(loss_cases, gradients=True),
        bounds=loss_gradients_bounds,
        example=EXAMPLE,
    ),
)
