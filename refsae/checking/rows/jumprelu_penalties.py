"""JumpReLU's tanh and pre-activation penalties (jumprelu.md JUMP-9..JUMP-13): case strategies, error
bounds and rows.

Cases (JUMP-13): JumpReLU's loss cases (JUMP-8: z off θ and off the kernel's edges, so the mask, the
kernel and relu(θ − z)'s derivative are exact), with the tanh scale c drawn from SAELens's 4 and two
others, the threshold's parametrisation, and for the pre-activation penalty a dead mask (sometimes
none dead, sometimes all).

Bounds (TOL-4). The tanh penalty's terms are bounded by those of `l1_decoder_norm` with coefficient
λ·c: |tanh(c f s)| <= c |f| s and |∂P/∂f| <= (λ/B) c s, |∂P/∂s| <= (λ/B) c Σ_b |f|; so the loss and its
gradients take `bounds.total_loss` and `bounds.loss_gradients` at (λ c, l1_decoder_norm) for their
magnitudes, with the rounding chain of the argument a = c f s added to every chain: tanh and sech² move
by at most |Δa| and 0.65 |Δa| / |a| of their bound (2 a sech²(a) tanh(a) <= 0.65), plus the roundings
of evaluating them (tanh, cosh, the square, the reciprocal: four).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking import bounds
from refsae.checking import strategies as rs
from refsae.checking.cases import conventions_of, sae_arrays
from refsae.checking.operation import Bounds, Operation, Outputs
from refsae.checking.rows.jumprelu import JUMPRELU_EXAMPLE, jumprelu_loss_cases
from refsae.checking.tolerances import Bound, add, leaf, magnitude_floor, mul
from refsae.conventions import OPERATION_AXES

TANH_SCALES = (4.0, 1.0, 0.3)
"""c of the tanh penalty: SAELens's default and two others."""


@st.composite
def tanh_cases(draw: st.DrawFn, dtype: str, gradients: bool = False) -> Case:
    case = draw(jumprelu_loss_cases(dtype))
    options = {**case.options, "tanh_scale": draw(st.sampled_from(TANH_SCALES))}
    if gradients:
        options["parametrisation"] = draw(rs.convention("parametrisation", OPERATION_AXES["parametrisation"]))
        options["ste"] = draw(rs.convention("ste", OPERATION_AXES["ste"]))
    return Case(case.arrays, options, dtype)


@st.composite
def pre_act_cases(draw: st.DrawFn, dtype: str, gradients: bool = False) -> Case:
    case = draw(jumprelu_loss_cases(dtype))
    theta = case.arrays["theta"]
    kind = draw(st.sampled_from(("some", "some", "none", "all")))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dead = {"some": rng.integers(0, 2, theta.shape), "none": np.zeros(theta.shape, dtype=np.int64)}.get(
        kind, np.ones(theta.shape, dtype=np.int64)
    )
    options = {"pre_act_coefficient": case.options["l0_coefficient"], "encode": conventions_of(case).encode}
    if gradients:
        options["parametrisation"] = draw(rs.convention("parametrisation", OPERATION_AXES["parametrisation"]))
    return Case({**case.arrays, "dead": dead}, options, dtype)


def _tanh_argument(case: Case) -> Bound:
    """a = c f s: f with z's bound, s the row norms, two stored products."""
    x, W_enc, b_enc, W_dec, b_dec = sae_arrays(case)
    f, _ = bounds.forward(x, W_enc, b_enc, W_dec, b_dec, conventions_of(case))
    s = bounds.row_norms(W_dec)
    return mul(case.options["tanh_scale"] * f.magnitude * s.magnitude, f, s, k_store=2)


def _with_argument_chain(b: Bound, arg: Bound) -> Bound:
    return Bound(b.magnitude, b.k_acc + arg.k_acc, b.k_store + arg.k_store + 4)


def _as_l1_decoder_norm(case: Case) -> tuple[Any, float]:
    o = case.options
    return dataclasses.replace(conventions_of(case), sparsity="l1_decoder_norm"), o["l0_coefficient"] * o[
        "tanh_scale"
    ]


def tanh_total_loss_bounds(case: Case, out: Outputs) -> Bounds:
    x, W_enc, b_enc, W_dec, b_dec = sae_arrays(case)
    c = conventions_of(case)
    z = oracle.pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    x_hat = oracle.decode(
        oracle.jumprelu(z, case.arrays["theta"]), W_dec, b_dec, decoder=c.decoder, eps=c.eps
    )
    c_pen, coefficient = _as_l1_decoder_norm(case)
    loss = bounds.total_loss(x, W_enc, b_enc, W_dec, b_dec, x_hat, coefficient, c_pen)
    return {"loss": _with_argument_chain(loss, _tanh_argument(case))}


def tanh_loss_gradients_bounds(case: Case, out: Outputs) -> Bounds:
    with magnitude_floor(case.dtype):  # TOL-7: gradients near the smallest normal round absolutely
        return _tanh_loss_gradients_bounds(case)


def _tanh_loss_gradients_bounds(case: Case) -> Bounds:
    """`bounds.loss_gradients` at (λ c, l1_decoder_norm) with the mask z > θ, and the threshold's
    Σ_b g_f (θ/ε) K as JumpReLU's (JUMP-6), g_f covering the penalty's ∂P/∂f; times θ under log θ."""
    x, W_enc, b_enc, W_dec, b_dec = sae_arrays(case)
    theta, o = case.arrays["theta"], case.options
    c_pen, coefficient = _as_l1_decoder_norm(case)
    z = oracle.pre_activations(x, W_enc, b_enc, b_dec, encode=c_pen.encode)
    grads = bounds.loss_gradients(x, W_enc, b_enc, W_dec, b_dec, coefficient, c_pen, active=z > theta)
    g_f = grads.pop("g_f")  # the penalty's part only where active; at f = 0 it is (λ/B) c s, sech²(0) = 1
    inactive = np.where(z > theta, 0.0, coefficient / x.shape[0] * bounds.row_norms(W_dec).magnitude)
    K = (np.abs(z - theta) < o["bandwidth"] / 2).astype(np.float64)
    term = mul((g_f.magnitude + inactive) * (theta / o["bandwidth"]) * K, g_f, k_store=2)
    grads["threshold"] = add(term.magnitude.sum(axis=0), term, k_acc=x.shape[0], k_store=1)
    if o.get("ste", "threshold_only") == "also_input":  # the same terms at z too (JUMP-15)
        grads = bounds.plus(grads, bounds.encoder_backward(x, W_enc, b_dec, term, c_pen.encode))
    if o.get("parametrisation") == "log_theta":
        grads["threshold"] = mul(theta * grads["threshold"].magnitude, grads["threshold"], k_store=1)
    arg = _tanh_argument(case)
    return {k: _with_argument_chain(v, arg) for k, v in grads.items()}


def _pre_act_parts(case: Case) -> tuple[Bound, Bound, np.ndarray]:
    """(relu(θ − z) · d, the row norms, the exact mask 1[θ > z] · d)."""
    x, W_enc, b_enc, W_dec, b_dec = sae_arrays(case)
    theta, dead, encode = case.arrays["theta"], case.arrays["dead"], case.options["encode"]
    z_bound = bounds.pre_activations(x, W_enc, b_enc, b_dec, encode)
    z = oracle.pre_activations(x, W_enc, b_enc, b_dec, encode=encode)
    below = (theta > z) & (dead == 1)
    gap = add(np.where(below, np.abs(theta) + z_bound.magnitude, 0.0), z_bound, leaf(theta), k_store=2)
    return gap, bounds.row_norms(W_dec), below


def pre_act_penalty_bounds(case: Case, out: Outputs) -> Bounds:
    """d · relu(θ − z) (a difference, a product by the mask), times s_j, the B·d_sae-term sum, times
    λ_p and over B, then the sum over instances."""
    gap, s, _ = _pre_act_parts(case)
    batch, d_sae = gap.magnitude.shape[0], gap.magnitude.shape[-1]
    terms = mul(gap.magnitude * s.magnitude, gap, s, k_store=1)
    total = add(bounds.sum_batch_dim(terms.magnitude), terms, k_acc=batch * d_sae, k_store=1)
    per_instance = total.then(case.options["pre_act_coefficient"] * total.magnitude / batch, k_store=3)
    n_inst = int(per_instance.magnitude.size)
    return {"loss": add(np.asarray(per_instance.magnitude.sum()), per_instance, k_acc=n_inst, k_store=1)}


def pre_act_penalty_gradients_bounds(case: Case, out: Outputs) -> Bounds:
    with magnitude_floor(case.dtype):  # TOL-7: gradients near the smallest normal round absolutely
        return _pre_act_penalty_gradients_bounds(case)


def _pre_act_penalty_gradients_bounds(case: Case) -> Bounds:
    """g = (λ_p / B) d s 1[θ > z] (autograd: λ_p and 1/B rounded, times the mask and s): the threshold's
    Σ_b g; g_z = −g pulled back to W_enc, b_enc, b_dec as GRAD-4; W_dec's (λ_p/B) Σ_b d relu(θ − z)
    W_j / s_j."""
    x, W_enc, _, W_dec, b_dec = sae_arrays(case)
    theta, encode = case.arrays["theta"], case.options["encode"]
    gap, s, below = _pre_act_parts(case)
    batch = x.shape[0]
    scale = case.options["pre_act_coefficient"] / batch
    g = mul(np.where(below, scale * s.magnitude, 0.0), s, k_store=4)
    grads = bounds.encoder_backward(x, W_enc, b_dec, g, encode)
    grads["threshold"] = add(g.magnitude.sum(axis=0), g, k_acc=batch, k_store=1)
    # each example's term (λ_p/B) d relu(θ − z) is stored before the batch sum (autograd: the backward
    # of s broadcast over the batch): a Bound of its own, so that TOL-7's floor applies per term. With
    # λ_p/B below float16's ν every term is subnormal and rounds by up to u·ν, B of them (found by the
    # ci profile: B = 17, λ_p = 2^-10, an error of 4.4e-7 against 3.9e-7 with the floor on the sum only)
    terms = gap.then(scale * gap.magnitude, k_store=4)
    g_s = add(terms.magnitude.sum(axis=0), terms, k_acc=batch, k_store=1)
    safe = np.where(s.magnitude > 0, s.magnitude, np.inf)[..., None]
    grads["W_dec"] = mul(g_s.magnitude[..., None] * np.abs(W_dec) / safe, g_s, s, k_store=3)
    if case.options.get("parametrisation") == "log_theta":
        grads["threshold"] = mul(theta * grads["threshold"].magnitude, grads["threshold"], k_store=1)
    return dict(grads)


TANH_EXAMPLE: dict[str, Any] = {**JUMPRELU_EXAMPLE, "tanh_scale": 4.0}
PRE_ACT_EXAMPLE: dict[str, Any] = {"pre_act_coefficient": 0.5, "encode": "tied"}
PENALTY_ARRAYS = ("x", "W_enc", "b_enc", "W_dec", "b_dec", "theta")
GRADIENTS = ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")

ROWS = (
    Operation(
        name="jumprelu_tanh_total_loss",
        summary="reconstruction + λ · mean Σ_j tanh(c f_j ‖W_dec_j‖) of JumpReLU latents",
        clauses=("JUMP-9", "JUMP-13"),
        arrays=PENALTY_ARRAYS,
        outputs=("loss",),
        cases=tanh_cases,
        bounds=tanh_total_loss_bounds,
        example=TANH_EXAMPLE,
    ),
    Operation(
        name="jumprelu_tanh_loss_gradients",
        summary="gradients of the tanh-penalised loss, θ's through the straight-through estimate",
        clauses=("JUMP-10", "JUMP-13", "JUMP-14", "JUMP-15"),
        arrays=PENALTY_ARRAYS,
        outputs=GRADIENTS,
        cases=lambda dtype: tanh_cases(dtype, gradients=True),
        bounds=tanh_loss_gradients_bounds,
        example=TANH_EXAMPLE,
    ),
    Operation(
        name="jumprelu_pre_act_penalty",
        summary="λ_p · mean Σ_j dead_j relu(θ_j − z_j) ‖W_dec_j‖",
        clauses=("JUMP-11", "JUMP-13"),
        arrays=(*PENALTY_ARRAYS, "dead"),
        outputs=("loss",),
        cases=pre_act_cases,
        bounds=pre_act_penalty_bounds,
        example=PRE_ACT_EXAMPLE,
    ),
    Operation(
        name="jumprelu_pre_act_penalty_gradients",
        summary="exact gradients of the pre-activation penalty",
        clauses=("JUMP-12", "JUMP-13"),
        arrays=(*PENALTY_ARRAYS, "dead"),
        outputs=GRADIENTS,
        cases=lambda dtype: pre_act_cases(dtype, gradients=True),
        bounds=pre_act_penalty_gradients_bounds,
        example=PRE_ACT_EXAMPLE,
    ),
)
