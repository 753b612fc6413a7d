"""Transcoders (transcoder.md): case strategies, error bounds and rows of the decode with its skip
connection and of the ReLU and TopK losses and gradients with y as the target.

Case strategies (TC-7). x (batch, d_in) and y (batch, d_out), d_out equal to d_in half the time (an
MLP's input and output) and drawn apart otherwise (so a transposed W_skip or W_dec cannot pass); the
encoder from d_in, the decoder into d_out; W_skip drawn or zero (a plain transcoder), and zero while the
library pins it `absent` (CONF-11). The ReLU kink is kept
at a margin by moving b_enc (STR-7); TopK's k chosen latents lead every other latent of each example by
TOPK-7's gap.

Error bounds (TC-7, TOL-4). The core's: the encoder product of length d_in, the decode of length d_sae,
the skip product of length d_in (stored) added to the decode (stored), the reconstruction loss of y
(LOSS-1..LOSS-3 with y's variance under fvu), the sparsity penalty; the gradients GRAD-2..GRAD-6's with y
as the target and u = x, and ∂L/∂W_skip = g_ŷᵀ x a length-B product.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking import bounds
from refsae.checking import strategies as rs
from refsae.checking.cases import finish, shrink_to_range, variance_is_certain
from refsae.checking.operation import Bounds, Operation, Outputs
from refsae.checking.rows.losses import RECONSTRUCTION_DRAWN
from refsae.checking.rows.topk import draw_k
from refsae.checking.tolerances import Bound, add, allowed_error, leaf, magnitude_floor, mul
from refsae.conventions import DECODER, DEFAULT_EPS, SPARSITY, pinned_value
from refsae.torch.fast import transcoder as fast_transcoder

ARRAYS = ("x", "y", "W_enc", "b_enc", "W_dec", "b_dec", "W_skip")
GRADIENTS = ("W_enc", "b_enc", "W_dec", "b_dec", "W_skip")
EXAMPLE = {
    "l1_coefficient": 0.5,
    "reconstruction": "fvu",
    "sparsity": "l1_decoder_norm",
    "decoder": "normalised",
}


def _skip(draw: st.DrawFn, shape: rs.Shape, d_out: int, dtype: str) -> np.ndarray:
    absent = pinned_value("absent")
    size = (*shape.inst, d_out, shape.d_in)
    if (isinstance(absent, tuple) and "W_skip" in absent) or draw(st.booleans()):
        return np.zeros(size)
    return draw(rs.arrays(size, dtype, draw(rs.scales(dtype)) / math.sqrt(shape.d_in)))


@st.composite
def transcoder_parts(
    draw: st.DrawFn, dtype: str, *, min_batch: int = 1
) -> tuple[rs.Shape, dict[str, np.ndarray]]:
    """A shape and x, y, W_enc, b_enc, W_dec, b_dec, W_skip (y's width d_out)."""
    shape = draw(rs.shapes(min_batch=min_batch))
    d_out = (
        shape.d_in if draw(st.booleans()) else draw(st.integers(1, 64))
    )  # an MLP's in and out widths agree
    out = rs.Shape(shape.batch, d_out, shape.d_sae, shape.n_inst)
    encoder, decoder = draw(rs.sae_params(shape, dtype)), draw(rs.sae_params(out, dtype))
    arrays = {
        "x": draw(rs.inputs(shape, dtype)),
        "y": draw(rs.inputs(out, dtype)),
        "W_enc": encoder["W_enc"],
        "b_enc": encoder["b_enc"],
        "W_dec": decoder["W_dec"],
        "b_dec": decoder["b_dec"],
        "W_skip": _skip(draw, shape, out.d_in, dtype),
    }
    return shape, arrays


@st.composite
def decode_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape, a = draw(transcoder_parts(dtype))
    f = draw(rs.latents(shape, dtype))
    decoder, eps = draw(rs.convention("decoder", DECODER)), draw(rs.epsilons())
    arrays = {"f": f, "x": a["x"], "W_dec": a["W_dec"], "b_dec": a["b_dec"], "W_skip": a["W_skip"]}
    y_hat = decode_bound(leaf(f), a["x"], a["W_dec"], a["b_dec"], a["W_skip"], decoder, eps)
    return finish(Case(arrays, {"decoder": decoder, "eps": eps}, dtype), [y_hat.magnitude])


def z_bound(a: dict[str, np.ndarray]) -> Bound:
    return bounds.pre_activations(a["x"], a["W_enc"], a["b_enc"], np.zeros(a["x"].shape[1:]), "untied")


def in_range(a: dict[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
    """STR-4's repair (`shrink_to_range`) on Σ (|ŷ| + |y|)² under either decoder, f bounded by |z|: x,
    y, b_enc and b_dec, which ŷ − y is linear in (z = x W_enc + b_enc, the skip x W_skipᵀ)."""
    z = z_bound(a)
    numerator = np.maximum.reduce(
        [
            ((decode_bound(z, a["x"], a["W_dec"], a["b_dec"], a["W_skip"], d, DEFAULT_EPS).magnitude
              + np.abs(a["y"])) ** 2).sum(axis=(0, -1))
            for d in DECODER
        ]
    )  # fmt: skip
    return shrink_to_range(a, numerator, ("x", "y", "b_enc", "b_dec"), dtype)


@st.composite
def loss_cases(draw: st.DrawFn, dtype: str, *, topk: bool = False) -> Case:
    reconstruction = draw(rs.convention("reconstruction", RECONSTRUCTION_DRAWN))
    shape, a = draw(transcoder_parts(dtype, min_batch=2 if reconstruction == "fvu" else 1))
    a = in_range(a, dtype)
    if reconstruction == "fvu":
        assume(variance_is_certain(a["y"], dtype))
    z0 = np.einsum("b...i,...ij->b...j", a["x"], a["W_enc"])
    z = z_bound(a)
    headroom = np.abs(z0) + np.abs(a["b_enc"]) + z.magnitude
    a["b_enc"] = rs.kink_margin_b_enc(
        z0, a["b_enc"], 4 * allowed_error(Bound(headroom, z.k_acc, z.k_store), dtype), dtype
    )
    with magnitude_floor(dtype):  # subnormal z rounds absolutely (TOL-7)
        err = allowed_error(z_bound(a), dtype)
    value = z0 + a["b_enc"]
    assume(bool(np.all(np.abs(value) > 2 * err)))  # the ReLU kink (STR-7)
    options: dict[str, Any] = {
        "l1_coefficient": draw(rs.l1_coefficients()),
        "reconstruction": reconstruction,
        "sparsity": draw(rs.convention("sparsity", SPARSITY)),
        "decoder": draw(rs.convention("decoder", DECODER)),
        "eps": draw(rs.epsilons()),
    }
    if topk:
        k = draw_k(draw, shape.d_sae)
        options = {**options, "k": k}
        if k < shape.d_sae:  # the k-th value of every example leads the (k+1)-th by the gap (TOPK-7)
            ordered = -np.sort(-value, axis=-1)
            gap = ordered[..., k - 1] - ordered[..., k]
            assume(bool(np.all(gap > 4 * err.max(axis=-1))))
    case = Case(a, options, dtype)
    mask = active(case)
    f, y_hat = forward_bounds(case, mask)
    numerator = ((y_hat.magnitude + np.abs(a["y"])) ** 2).sum(axis=(0, -1))  # Σ (ŷ − y)² (STR-4)
    penalty = bounds.sparsity_loss(f, a["W_dec"], options["sparsity"]).magnitude * shape.batch
    magnitudes = [
        y_hat.magnitude,
        numerator,
        penalty,
        *(b.magnitude for b in gradient_bounds(case, mask).values()),
    ]
    return finish(case, magnitudes)


def active(case: Case) -> np.ndarray:
    """The oracle's mask: z > 0 (ReLU) or `selected ∧ z > 0` (TopK)."""
    a = case.arrays
    z = np.einsum("b...i,...ij->b...j", a["x"], a["W_enc"]) + a["b_enc"]
    k = case.options.get("k")
    return z > 0 if k is None else oracle.topk(z, k=k) > 0


def decode_bound(
    f: Bound,
    x: np.ndarray,
    W_dec: np.ndarray,
    b_dec: np.ndarray,
    W_skip: np.ndarray,
    decoder: str,
    eps: float,
) -> Bound:
    """ŷ = (f Ŵ + b_dec) + x W_skipᵀ: DEC-1's decode, the length-d_in skip product (stored), a stored sum."""
    decoded = bounds.decode(f, W_dec, b_dec, decoder, eps)
    skip_magnitude = np.einsum("b...i,...oi->b...o", np.abs(x), np.abs(W_skip))
    skip = mul(skip_magnitude, leaf(x), leaf(W_skip), k_acc=x.shape[-1], k_store=1)
    return add(decoded.magnitude + skip.magnitude, decoded, skip, k_store=1)


def forward_bounds(case: Case, mask: np.ndarray) -> tuple[Bound, Bound]:
    a, o = case.arrays, case.options
    z = z_bound(a)
    f = Bound(np.where(mask, z.magnitude, 0.0), z.k_acc, z.k_store)
    return f, decode_bound(f, a["x"], a["W_dec"], a["b_dec"], a["W_skip"], o["decoder"], o["eps"])


def decode_bounds(case: Case, out: Outputs) -> Bounds:
    a, o = case.arrays, case.options
    return {
        "y_hat": decode_bound(
            leaf(a["f"]), a["x"], a["W_dec"], a["b_dec"], a["W_skip"], o["decoder"], o["eps"]
        )
    }


@st.composite
def forward_cases(draw: st.DrawFn, dtype: str) -> Case:
    _, a = draw(transcoder_parts(dtype))
    decoder, eps = draw(rs.convention("decoder", DECODER)), draw(rs.epsilons())
    arrays = {k: v for k, v in a.items() if k != "y"}
    case = Case(arrays, {"decoder": decoder, "eps": eps}, dtype)
    f, y_hat = forward_row_bounds(case, {}).values()
    assert f is not None and y_hat is not None
    return finish(case, [f.magnitude, y_hat.magnitude])


def forward_row_bounds(case: Case, out: Outputs) -> Bounds:
    """f carries z's bound (ReLU is 1-Lipschitz and exact: no margin needed), ŷ the decode of it."""
    a, o = case.arrays, case.options
    z = z_bound(a)
    return {
        "f": z,
        "y_hat": decode_bound(z, a["x"], a["W_dec"], a["b_dec"], a["W_skip"], o["decoder"], o["eps"]),
    }


def total_loss_bounds(case: Case, out: Outputs) -> Bounds:
    a, o = case.arrays, case.options
    mask = active(case)
    f, y_hat = forward_bounds(case, mask)
    z = np.einsum("b...i,...ij->b...j", a["x"], a["W_enc"]) + a["b_enc"]
    value = oracle.transcoder_decode(
        np.where(mask, z, 0.0),
        a["x"],
        a["W_dec"],
        a["b_dec"],
        a["W_skip"],
        decoder=o["decoder"],
        eps=o["eps"],
    )
    R = bounds.reconstruction_loss(a["y"], y_hat, value, o["reconstruction"])
    S = bounds.sparsity_loss(f, a["W_dec"], o["sparsity"])
    return {"loss": bounds.instance_sum(R, S.then(o["l1_coefficient"] * S.magnitude, k_acc=1, k_store=1))}


def gradient_bounds(case: Case, mask: np.ndarray) -> dict[str, Bound]:
    """TC-6's gradients as autograd computes them (bounds.loss_gradients' steps with y as the target,
    u = x, and the skip's g_ŷᵀ x), and `g_f`, ∂L/∂f of every latent."""
    a, o = case.arrays, case.options
    x, W_dec = a["x"], a["W_dec"]
    batch = x.shape[0]
    lam = o["l1_coefficient"]
    f, y_hat = forward_bounds(case, mask)
    r = add(y_hat.magnitude + np.abs(a["y"]), y_hat, leaf(a["y"]), k_store=1)
    scale = bounds.reconstruction_scale(a["y"], o["reconstruction"])
    g = mul(scale.magnitude * r.magnitude, scale, r, k_store=3)
    W_hat = bounds.decoder_directions(W_dec, o["decoder"], o["eps"])
    g_f = mul(
        np.einsum("b...o,...jo->b...j", g.magnitude, W_hat.magnitude),
        g,
        W_hat,
        k_acc=W_dec.shape[-1],
        k_store=1,
    )
    dS_df = Bound(np.where(mask, lam / batch, 0.0), 1, 3)
    if o["sparsity"] == "l1_decoder_norm":
        norms = bounds.row_norms(W_dec)
        dS_df = mul(dS_df.magnitude * norms.magnitude, dS_df, norms, k_store=1)
    g_f = add(g_f.magnitude + dS_df.magnitude, g_f, dS_df, k_store=1)
    g_z = Bound(np.where(mask, g_f.magnitude, 0.0), g_f.k_acc, g_f.k_store)
    encoder = bounds.encoder_backward(x, a["W_enc"], np.zeros(x.shape[1:]), g_z, "untied")
    G_hat = mul(np.einsum("b...j,b...o->...jo", f.magnitude, g.magnitude), f, g, k_acc=batch, k_store=1)
    W = G_hat if o["decoder"] == "constrained" else bounds.normalisation_backward(W_dec, G_hat, o["eps"])
    if o["sparsity"] == "l1_decoder_norm":
        W = bounds.decoder_norm_penalty(W_dec, f, lam, W)
    skip = mul(np.einsum("b...o,b...i->...oi", g.magnitude, np.abs(x)), g, leaf(x), k_acc=batch, k_store=1)
    return {
        "W_enc": encoder["W_enc"],
        "b_enc": encoder["b_enc"],
        "W_dec": W,
        "b_dec": add(g.magnitude.sum(axis=0), g, k_acc=batch, k_store=1),
        "W_skip": skip,
        "g_f": g_f,
    }


def loss_gradients_bounds(case: Case, out: Outputs) -> Bounds:
    return dict(gradient_bounds(case, active(case)))


ROWS = (
    Operation(
        name="transcoder_decode",
        summary="ŷ = f Ŵ + b_dec + x W_skipᵀ",
        clauses=("TC-1", "TC-4"),
        arrays=("f", "x", "W_dec", "b_dec", "W_skip"),
        outputs=("y_hat",),
        cases=decode_cases,
        bounds=decode_bounds,
        example={"decoder": "normalised", "eps": 1e-3},
    ),
    Operation(
        name="transcoder_forward",
        summary="f = ReLU(x W_enc + b_enc), ŷ = f Ŵ + b_dec + x W_skipᵀ",
        clauses=("TC-2", "TC-3", "TC-4"),
        arrays=("x", "W_enc", "b_enc", "W_dec", "b_dec", "W_skip"),
        outputs=("f", "y_hat"),
        cases=forward_cases,
        bounds=forward_row_bounds,
        example={"decoder": "normalised", "eps": 1e-3},
    ),
    Operation(
        name="transcoder_total_loss",
        summary="R(y, ŷ) + λ S(f), f = ReLU(x W_enc + b_enc)",
        clauses=("TC-2", "TC-3", "TC-5", "TC-7"),
        arrays=ARRAYS,
        outputs=("loss",),
        cases=loss_cases,
        bounds=total_loss_bounds,
        example=EXAMPLE,
    ),
    Operation(
        name="transcoder_loss_gradients",
        summary="∂L/∂(W_enc, b_enc, W_dec, b_dec, W_skip) of the ReLU transcoder",
        clauses=("TC-2", "TC-6", "TC-7"),
        arrays=ARRAYS,
        outputs=GRADIENTS,
        cases=loss_cases,
        bounds=loss_gradients_bounds,
        example=EXAMPLE,
        fast=fast_transcoder.transcoder_fused_loss_gradients,
    ),
    Operation(
        name="topk_transcoder_total_loss",
        summary="the transcoder loss with TopK latents",
        clauses=("TC-2", "TC-3", "TC-5", "TC-7"),
        arrays=ARRAYS,
        outputs=("loss",),
        cases=partial(loss_cases, topk=True),
        bounds=total_loss_bounds,
        example={**EXAMPLE, "k": 2},
    ),
    Operation(
        name="topk_transcoder_loss_gradients",
        summary="∂L/∂(W_enc, b_enc, W_dec, b_dec, W_skip) of the TopK transcoder",
        clauses=("TC-2", "TC-6", "TC-7"),
        arrays=ARRAYS,
        outputs=GRADIENTS,
        cases=partial(loss_cases, topk=True),
        bounds=loss_gradients_bounds,
        example={**EXAMPLE, "k": 2},
        fast=fast_transcoder.topk_transcoder_fused_loss_gradients,
    ),
)
