"""The AuxK loss (auxk.md): case strategies, error bounds and rows of `auxk_latents`, `auxk_loss` and
`auxk_loss_gradients`.

Case strategies of the AuxK rows (AUXK-9).

The rows take the pre-activations z as an input, as the libraries pass their `hidden_pre`, so the
oracle and the implementation select from the same numbers: the only discontinuity left is a tie
*across* the k-th value among an example's dead latents (two valid selections, two different
auxiliary latents), and such cases are rejected; every other tie is kept (the grid distribution
draws many). The dead mask is drawn with about 0, 30, 70 or 100 % dead latents per instance (0 %:
the loss must be exactly 0, AUXK-6), k_aux from 1 to d_sae + 2 (k_aux > n_dead and > d_sae both
occur), every convention of AUXK-3..AUXK-7, and x_hat either independent of x or a small
perturbation of it (a small residual, as late in training). The variance normalisers must exceed
twice their own allowed error (STR-8's rule).

Error bounds of the AuxK rows (AUXK, TOL-4), step by step as refsae.torch computes them.

z is an input of the rows (representable, STR-1), so the selection and the auxiliary latents are
exact on both sides once the strategies exclude the ties that change them (AUXK-9): a is a leaf.
The residual e = x − x_hat is one stored difference with magnitude |x| + |x_hat|; its variance
(the `residual_variance` normaliser) inherits that chain. s = min(n_dead/k_aux, 1) is one rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae.cases import Case
from refsae.checking import bounds
from refsae.checking import strategies as rs
from refsae.checking.cases import finish
from refsae.checking.examples import K
from refsae.checking.operation import Bounds, Operation, Outputs, exact
from refsae.checking.rows.forward import EPSILONS
from refsae.checking.tolerances import Bound, add, allowed_error, leaf, magnitude_floor, mul
from refsae.conventions import DECODER
from refsae.oracle import auxk as oracle_auxk
from refsae.oracle.auxk import AuxKOptions, auxk_latents, check_dead, dead_selection
from refsae.oracle.forward import decoder_directions

ARRAYS = ("x", "x_hat", "z", "W_dec", "b_dec", "dead")
"""The arguments of the loss and gradient rows, in order."""


def _no_tie_across_the_kth(z: np.ndarray, dead: np.ndarray, k_aux: int, values: str) -> bool:
    """True unless, for some example, the k-th and (k+1)-th largest dead z are equal, with a value
    that matters (any value for `raw`, a positive one for `relu`)."""
    k = np.minimum(k_aux, dead.sum(axis=-1))  # (*inst)
    ordered = -np.sort(np.where(dead, -z, np.inf), axis=-1)  # dead values descending, then −inf
    d_sae = z.shape[-1]
    kth = np.take_along_axis(
        ordered, np.broadcast_to(np.maximum(k - 1, 0)[..., None], (*z.shape[:-1], 1)), -1
    )
    nxt = np.take_along_axis(
        ordered, np.broadcast_to(np.minimum(k, d_sae - 1)[..., None], (*z.shape[:-1], 1)), -1
    )
    relevant = (k > 0) & (k < dead.sum(axis=-1))
    tie = (kth[..., 0] == nxt[..., 0]) & (np.isfinite(kth[..., 0])) & ((kth[..., 0] > 0) | (values == "raw"))
    return not bool(np.any(tie & relevant))


@st.composite
def _arrays(draw: st.DrawFn, dtype: str, *, full: bool) -> tuple[dict[str, np.ndarray], int, str]:
    shape = draw(rs.shapes(min_batch=2 if full else 1))
    z = draw(rs.arrays((shape.batch, *shape.inst, shape.d_sae), dtype, draw(rs.scales(dtype))))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    fraction = draw(st.sampled_from((0.0, 0.3, 0.7, 1.0)))
    dead = (rng.uniform(size=(*shape.inst, shape.d_sae)) < fraction).astype(np.int64)
    k_aux: int = draw(st.integers(1, shape.d_sae + 2))
    values: str = draw(rs.convention("values", oracle_auxk.VALUES))
    assume(_no_tie_across_the_kth(z, dead.astype(bool), k_aux, values))
    arrays = {"z": z, "dead": dead}
    if full:
        params = draw(rs.sae_params(shape, dtype))
        x = draw(rs.inputs(shape, dtype))
        if draw(st.booleans()):
            x_hat = draw(rs.inputs(shape, dtype))
        else:
            noise = draw(rs.arrays(x.shape, dtype, draw(rs.scales(dtype))))
            x_hat = rs.round_to(x + noise * draw(st.sampled_from((1.0, 1 / 8))), dtype)
        arrays = {
            "x": x,
            "x_hat": x_hat,
            "z": z,
            "W_dec": params["W_dec"],
            "b_dec": params["b_dec"],
            "dead": dead,
        }
    return arrays, k_aux, values


@st.composite
def auxk_latent_cases(draw: st.DrawFn, dtype: str) -> Case:
    arrays, k_aux, values = draw(_arrays(dtype, full=False))
    return Case(arrays, {"k_aux": k_aux, "values": values}, dtype)


@st.composite
def auxk_loss_cases(draw: st.DrawFn, dtype: str) -> Case:
    arrays, k_aux, values = draw(_arrays(dtype, full=True))
    options: dict[str, Any] = {
        "k_aux": k_aux,
        "values": values,
        "aux_decode": draw(rs.convention("aux_decode", oracle_auxk.AUX_DECODE)),
        "scale": draw(rs.convention("scale", oracle_auxk.SCALE)),
        "normalisation": draw(rs.convention("normalisation", oracle_auxk.NORMALISATION)),
        "residual": draw(rs.convention("residual", oracle_auxk.RESIDUAL)),
        "decoder": draw(rs.convention("decoder", DECODER)),
        "eps": draw(rs.epsilons(EPSILONS)),
    }
    o = oracle_auxk.AuxKOptions(**options)
    a = arrays
    args = (a["x"], a["x_hat"], a["z"], a["W_dec"], a["b_dec"], a["dead"])
    with magnitude_floor(dtype):
        parts = auxk_loss_parts(*args, o)
    if o.normalisation != "sum":  # where a latent is dead, D is certainly positive in the dtype (STR-8)
        centred = a["x"] if o.normalisation == "input_variance" else a["x"] - a["x_hat"]
        D_true = ((centred - centred.mean(axis=0, keepdims=True)) ** 2).sum(axis=(0, -1))
        some_dead = a["dead"].sum(axis=-1) > 0
        assume(bool(np.all((2 * allowed_error(parts[6], dtype) < D_true) | ~some_dead)))
    grads = auxk_loss_gradients_bound(*args, o)
    magnitudes = [parts[3].magnitude, parts[4].magnitude, auxk_loss_bound(*args, o).magnitude]
    magnitudes += [g.magnitude for g in grads.values() if g is not None]
    if o.decoder == "normalised":  # the norm's backward quotient (STR-4)
        ne = np.linalg.norm(a["W_dec"], axis=-1) + o.eps
        W_grad = grads["W_dec"]
        assert W_grad is not None
        magnitudes.append((np.abs(a["W_dec"]) * W_grad.magnitude).sum(axis=-1) / ne)
    return finish(Case(arrays, options, dtype), magnitudes)


def residual_variance_bound(e: Bound, value: np.ndarray) -> Bound:
    """Σ (e − mean_b e)² of a computed e (LOSS-3's chain on top of e's own); `value` is e."""
    batch = value.shape[0]
    mean = add(e.magnitude.mean(axis=0, keepdims=True), e, k_acc=batch + 1, k_store=1)
    centred = add(e.magnitude + mean.magnitude, e, mean, k_store=1)
    square = mul(centred.magnitude**2, centred, centred, k_store=1)
    return add(bounds.sum_batch_dim(square.magnitude), square, k_acc=batch * value.shape[-1], k_store=1)


def auxk_loss_parts(
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
    W_hat = bounds.decoder_directions(W_dec, o.decoder, o.eps)
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
    N = add(bounds.sum_batch_dim(square.magnitude), square, k_acc=batch * x.shape[-1], k_store=1)
    e_value = x - x_hat
    e_hat_value = np.einsum("b...j,...ji->b...i", a, decoder_directions(W_dec, decoder=o.decoder, eps=o.eps))
    if o.aux_decode == "with_b_dec":
        e_hat_value = e_hat_value + b_dec
    N_value = bounds.sum_batch_dim((e_hat_value - e_value) ** 2)
    if o.normalisation == "sum":
        D, D_value = Bound(np.full(N_value.shape, float(batch)), 0, 0), np.full(N_value.shape, float(batch))
    elif o.normalisation == "input_variance":
        D, D_value = bounds.total_variance(x), bounds.sum_batch_dim((x - x.mean(axis=0, keepdims=True)) ** 2)
    else:
        D, D_value = (
            residual_variance_bound(e, e_value),
            bounds.sum_batch_dim((e_value - e_value.mean(axis=0, keepdims=True)) ** 2),
        )
    return a, W_hat, e, diff, N, N_value, D, np.where(D_value > 0, D_value, 1.0)


def _scale_bound(dead: np.ndarray, o: AuxKOptions) -> Bound:
    """s: 0 without dead latents, 1 (exact) or min(n_dead/k_aux, 1) rounded once."""
    n_dead = check_dead(dead).sum(axis=-1)
    if o.scale == "unscaled":
        return Bound(np.where(n_dead > 0, 1.0, 0.0), 0, 0)
    return Bound(np.where(n_dead > 0, np.minimum(n_dead / o.k_aux, 1.0), 0.0), 0, 1)


def auxk_loss_bound(
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
    _, _, _, _, N, N_value, D, D_value = auxk_loss_parts(x, x_hat, z, W_dec, b_dec, dead, o)
    s = _scale_bound(dead, o)
    quotient = add(N.magnitude / D_value + N_value * D.magnitude / D_value**2, N, D)
    per_instance = mul(s.magnitude * quotient.magnitude, s, quotient, k_store=2)
    n_inst = int(per_instance.magnitude.size)
    return add(np.asarray(per_instance.magnitude.sum()), per_instance, k_acc=n_inst, k_store=1)


def auxk_loss_gradients_bound(
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
    a, W_hat, _, diff, _, _, D, D_value = auxk_loss_parts(x, x_hat, z, W_dec, b_dec, dead, o)
    s = _scale_bound(dead, o)
    # autograd: ∂/∂N = s/D (the quotient's backward and the product's: two stored roundings); 1/D
    # carries D's relative error, so its magnitude is s·M_D/D²
    g_N = mul((s.magnitude * D.magnitude / D_value**2)[..., None], s, D, k_store=2)
    g = mul(2 * g_N.magnitude * diff.magnitude, g_N, diff, k_store=3)  # pow's backward: 2·diff·g_N
    g_a = mul(np.einsum("b...i,...ji->b...j", g.magnitude, W_hat.magnitude), g, W_hat, k_acc=d_in, k_store=1)
    selected = a != 0 if o.values == "relu" else dead_selection(z, check_dead(dead), o.k_aux)
    G_hat = mul(np.einsum("b...j,b...i->...ji", np.abs(a), g.magnitude), leaf(a), g, k_acc=batch, k_store=1)
    return {
        "z": Bound(np.where(selected, g_a.magnitude, 0.0), g_a.k_acc, g_a.k_store),
        "W_dec": G_hat if o.decoder == "constrained" else bounds.normalisation_backward(W_dec, G_hat, o.eps),
        "b_dec": None
        if o.aux_decode == "without_b_dec"
        else add(g.magnitude.sum(axis=0), g, k_acc=batch, k_store=1),
        "x_hat": g if o.residual == "attached" else None,
    }


def _case_args(
    arrays: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return arrays["x"], arrays["x_hat"], arrays["z"], arrays["W_dec"], arrays["b_dec"], arrays["dead"]


def auxk_loss_bounds(case: Case, out: Outputs) -> Bounds:
    """The `auxk_loss` row's bound: named arrays, the options of `AuxKOptions`."""
    return {"loss": auxk_loss_bound(*_case_args(case.arrays), AuxKOptions(**case.options))}


def auxk_loss_gradients_bounds(case: Case, out: Outputs) -> Bounds:
    """The `auxk_loss_gradients` row's bounds."""
    return dict(auxk_loss_gradients_bound(*_case_args(case.arrays), AuxKOptions(**case.options)))


AUXK_EXAMPLE: dict[str, Any] = {
    "k_aux": K,
    "scale": "dead_fraction",
    "normalisation": "input_variance",
    "decoder": "normalised",
    "eps": 1e-3,
}


def has_instance_without_dead(case: Case) -> bool:
    """Some instance of the case has no dead latent (AUXK-6)."""
    return bool(np.any(np.all(case.arrays["dead"] == 0, axis=-1)))


# z is an input, so the selection is exact; ties across the k-th are excluded by the strategies
ROWS = (
    Operation(
        name="auxk_latents",
        summary="v(z) at the min(k_aux, n_dead) largest dead pre-activations per example, 0 elsewhere",
        clauses=("AUXK-1", "AUXK-2", "AUXK-3"),
        arrays=("z", "dead"),
        outputs=("a",),
        cases=auxk_latent_cases,
        bounds=exact("a"),
        example={"k_aux": K, "values": "raw"},
    ),
    Operation(
        name="auxk_loss",
        summary="s · Σ (ê − sg(x − x_hat))² / D over the top dead latents, every AuxK convention",
        clauses=("AUXK-4", "AUXK-5", "AUXK-6", "AUXK-7", "AUXK-9"),
        arrays=ARRAYS,
        outputs=("loss",),
        cases=auxk_loss_cases,
        bounds=auxk_loss_bounds,
        example=AUXK_EXAMPLE,
        edge_clauses=(("AUXK-6", has_instance_without_dead),),
    ),
    Operation(
        name="auxk_loss_gradients",
        summary="∂L_aux/∂(z, W_dec, b_dec, x_hat): exact zeros where detached or not decoded",
        clauses=("AUXK-5", "AUXK-8", "AUXK-9"),
        arrays=ARRAYS,
        outputs=("z", "W_dec", "b_dec", "x_hat"),
        cases=auxk_loss_cases,
        bounds=auxk_loss_gradients_bounds,
        example={**AUXK_EXAMPLE, "residual": "attached", "aux_decode": "with_b_dec"},
    ),
)
