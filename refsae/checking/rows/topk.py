"""TopK (topk.md): case strategies, error bounds and rows of `topk`, `decode_sparse` and the TopK loss
and gradients.

Case strategies of the TopK rows (TOPK-7): margins at the k-th value built in, never loosened.

- `topk_cases`: pre-activations z drawn directly (the grid distribution gives exact ties and zeros);
  a tie *across* the k-th value with a positive value would make two selections valid with
  different dense latents, so such cases are rejected; every other tie is kept (TOPK-2).
- `decode_sparse_cases`: a sparse code (values of any sign, indices with repeats) and a decoder.
- `topk_loss_cases`: a full SAE case in which, per instance, a chosen set of k latents is separated
  from the rest at every example by more than four times the allowed error of z: either the chosen
  latents are pushed up (then they are all active, and latents active under ReLU but not selected
  remain: TopK is told apart from ReLU) or the others are pushed down (then some selected latents
  are negative: selected with value 0). The ReLU kink margin of STR-7 holds as well.

Error bounds of the TopK rows (TOPK, TOL-4).

The selection is exact once the strategy keeps a gap at the k-th value larger than the error of z
(TOPK-7), so TopK latents carry z's bound where selected and are exactly 0 elsewhere. The loss and
gradient rows reuse the ReLU bounds: ReLU's active set contains TopK's, so the magnitudes summed
there are at least TopK's, and a bound over a superset of terms is still a bound (a little loose).

Equivalence (equivalences.md): SAELens's selection on z_j ‖W_dec_j‖ with the decode of f_j / ‖W_dec_j‖
(`rescaled_by_decoder_norm`, EQ-7), of the TopK and BatchTopK losses and gradients. TopK's equal k-th
values need no tie equivalence: the strategies reject a positive tie across the k-th value, and every
other tie leaves the dense latents unchanged (TOPK-2).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking import bounds
from refsae.checking import strategies as rs
from refsae.checking.cases import conventions_of, finish, pre_activations_of
from refsae.checking.equivalence import Equivalence, Parameters, calling
from refsae.checking.examples import K
from refsae.checking.operation import Bounds, Operation, Outputs, exact
from refsae.checking.rows.gradients import loss_gradients_bounds
from refsae.checking.rows.losses import LOSS_EXAMPLE, backward_magnitudes, loss_cases, variant_loss_bounds
from refsae.checking.tolerances import Bound, add, allowed_error, magnitude_floor, mul
from refsae.conventions import DECODER, Conventions
from refsae.torch.fast import topk as fast_topk


def draw_k(draw: st.DrawFn, d_sae: int) -> int:
    return int(
        draw(st.one_of(st.integers(1, d_sae), st.sampled_from((1, d_sae)), st.integers(1, min(d_sae, 4))))
    )


@st.composite
def topk_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape = draw(rs.shapes())
    z = draw(rs.arrays((shape.batch, *shape.inst, shape.d_sae), dtype, draw(rs.scales(dtype))))
    k = draw_k(draw, shape.d_sae)
    if k < shape.d_sae:
        ordered = -np.sort(-z, axis=-1)
        kth, next_ = ordered[..., k - 1], ordered[..., k]
        assume(not np.any((kth == next_) & (kth > 0)))
    return Case({"z": z}, {"k": k}, dtype)


@st.composite
def decode_sparse_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape = draw(rs.shapes())
    params = draw(rs.sae_params(shape, dtype))
    k = draw_k(draw, shape.d_sae)
    values = draw(rs.arrays((shape.batch, *shape.inst, k), dtype, draw(rs.scales(dtype))))
    seed = draw(st.integers(0, 2**32 - 1))
    indices = np.random.default_rng(seed).integers(0, shape.d_sae, (shape.batch, *shape.inst, k))
    decoder = draw(rs.convention("decoder", DECODER))
    eps = draw(rs.epsilons())
    arrays = {
        "values": values,
        "indices": indices.astype(np.int64),
        "W_dec": params["W_dec"],
        "b_dec": params["b_dec"],
    }
    x_hat = decode_sparse_bound(values, indices, params["W_dec"], params["b_dec"], decoder, eps)
    return finish(Case(arrays, {"decoder": decoder, "eps": eps}, dtype), [x_hat.magnitude])


@st.composite
def topk_loss_cases(draw: st.DrawFn, dtype: str, *, across_batch: bool = False) -> Case:
    """The module's third strategy; with `across_batch` the gap holds between every chosen entry and
    every other entry of the batch, so BatchTopK's k·B selection is the chosen latents too."""
    base = draw(loss_cases(dtype, kink_margin=True, backward=True))
    a = dict(base.arrays)
    c: Conventions = base.options["conventions"]
    d_sae = a["b_enc"].shape[-1]
    k = draw_k(draw, d_sae)
    inst = a["b_enc"].shape[:-1]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    chosen = np.argsort(rng.uniform(size=(*inst, d_sae)), axis=-1) < k  # k chosen latents per instance
    z_bound = bounds.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], c.encode)
    z = oracle.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], encode=c.encode)
    err = allowed_error(z_bound, dtype)
    if k < d_sae:
        low_chosen = np.where(chosen, z, np.inf).min(axis=(0, -1))
        high_other = np.where(chosen, -np.inf, z).max(axis=(0, -1))
        shift = (
            np.maximum(high_other - low_chosen, 0.0) + 8 * float(err.max()) + np.abs(z).max(axis=(0, -1)) / 4
        )
        up = draw(st.booleans())
        delta = np.where(chosen, shift[..., None], 0.0) if up else np.where(chosen, 0.0, -shift[..., None])
        a["b_enc"] = rs.round_to(a["b_enc"] + delta, dtype)
    z = oracle.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], encode=c.encode)
    with magnitude_floor(dtype):  # subnormal z rounds absolutely (TOL-7)
        z_bound = bounds.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], c.encode)
    err = allowed_error(z_bound, dtype)
    assume(bool(np.all(np.abs(z) > 2 * err)))  # the ReLU kink (STR-7)
    if k < d_sae:
        # the k-th value of every example (TOPK-7); across the whole batch for BatchTopK (BTOPK-3)
        axes = (0, -1) if across_batch else -1
        gap = np.where(chosen, z - err, np.inf).min(axis=axes) - np.where(chosen, -np.inf, z + err).max(
            axis=axes
        )
        assume(bool(np.all(gap > 2 * err.max(axis=axes))))
    options: dict[str, Any] = {**base.options, "k": k}
    f, x_hat = bounds.forward(a["x"], a["W_enc"], a["b_enc"], a["W_dec"], a["b_dec"], c)
    numerator = ((x_hat.magnitude + np.abs(a["x"])) ** 2).sum(axis=(0, -1))
    magnitudes = [
        f.magnitude,
        x_hat.magnitude,
        numerator,
        *backward_magnitudes(a, base.options["l1_coefficient"], c),
    ]
    return finish(Case(a, options, dtype), magnitudes)


def decode_sparse_bound(
    values: np.ndarray, indices: np.ndarray, W_dec: np.ndarray, b_dec: np.ndarray, decoder: str, eps: float
) -> Bound:
    """x_hat = Σ_i v_i Ŵ_{idx_i} + b_dec: a length-k product over the gathered rows, stored, then the
    bias added and stored (the dense decode's chain with k in place of d_sae)."""
    W_hat = bounds.decoder_directions(W_dec, decoder, eps)
    if W_dec.ndim == 2:
        rows = W_hat.magnitude[indices]
    else:
        rows = W_hat.magnitude[np.arange(W_dec.shape[0])[None, :, None], indices]
    magnitude = np.einsum("b...k,b...kd->b...d", np.abs(values), rows)
    product = mul(magnitude, Bound(np.abs(values), 0, 0), W_hat, k_acc=values.shape[-1], k_store=1)
    return add(product.magnitude + np.abs(b_dec), product, Bound(np.abs(b_dec), 0, 0), k_store=1)


def topk_total_loss_bounds(case: Case, out: Outputs) -> Bounds:
    return variant_loss_bounds(case, oracle.topk(pre_activations_of(case), k=case.options["k"]))


def decode_sparse_bounds(case: Case, out: Outputs) -> Bounds:
    a, o = case.arrays, case.options
    return {
        "x_hat": decode_sparse_bound(
            a["values"], a["indices"], a["W_dec"], a["b_dec"], o["decoder"], o["eps"]
        )
    }


ROWS = (
    Operation(
        name="topk",
        summary="f = max(z, 0) at the k largest z per example, 0 elsewhere",
        clauses=("TOPK-1", "TOPK-2", "TOPK-3"),
        arrays=("z",),
        outputs=("f",),
        cases=topk_cases,
        bounds=exact("f"),
        example={"k": K},
    ),
    Operation(
        name="decode_sparse",
        summary="x_hat = Σ_i values_i Ŵ_{indices_i} + b_dec from the k gathered rows",
        clauses=("TOPK-4",),
        arrays=("values", "indices", "W_dec", "b_dec"),
        outputs=("x_hat",),
        cases=decode_sparse_cases,
        bounds=decode_sparse_bounds,
        example={"decoder": "normalised", "eps": 1e-3},
    ),
    Operation(
        name="topk_total_loss",
        summary="reconstruction + λ · sparsity of TopK latents, through the sparse decode",
        clauses=("TOPK-6", "TOPK-7"),
        arrays=("x", "W_enc", "b_enc", "W_dec", "b_dec"),
        outputs=("loss",),
        cases=topk_loss_cases,
        bounds=topk_total_loss_bounds,
        example={**LOSS_EXAMPLE, "k": K},
    ),
    Operation(
        name="topk_loss_gradients",
        summary="∂L/∂(W_enc, b_enc, W_dec, b_dec) through TopK and the sparse decode",
        clauses=("TOPK-5", "TOPK-7"),
        arrays=("x", "W_enc", "b_enc", "W_dec", "b_dec"),
        outputs=("W_enc", "b_enc", "W_dec", "b_dec"),
        cases=topk_loss_cases,
        bounds=loss_gradients_bounds,
        example={**LOSS_EXAMPLE, "k": K},
        fast=fast_topk.topk_fused_loss_gradients,
    ),
)


def rescaled_bounds(op: Operation, case: Case, out: Outputs, parameters: Parameters) -> Bounds:
    """EQ-7: the row's bounds in the equivalent form (the decoder `normalised` without eps, W_enc's
    columns and b_enc scaled by n_j = ‖W_dec_j‖), ∂L/∂W_dec with the path through the n_j of the scaled
    encoder added, every output with the chain of n and of the products by n and by 1/n."""
    a, c = case.arrays, conventions_of(case)
    d_in, n = a["x"].shape[-1], np.linalg.norm(a["W_dec"], axis=-1)
    scaled = {**a, "W_enc": a["W_enc"] * n[..., None, :], "b_enc": a["b_enc"] * n}
    c_scaled = dataclasses.replace(c, decoder="normalised", eps=float(np.finfo(np.float64).tiny))
    twin = Case(scaled, {**case.options, "conventions": c_scaled}, case.dtype)
    if op.name.endswith("total_loss"):
        loss = op.bounds(twin, out)["loss"]
        assert loss is not None
        return {"loss": loss.then(k_acc=d_in + 1, k_store=4)}
    lam = case.options["l1_coefficient"]
    g = bounds.loss_gradients(a["x"], scaled["W_enc"], scaled["b_enc"], a["W_dec"], a["b_dec"], lam, c_scaled)
    norms = bounds.row_norms(a["W_dec"])
    g_n = mul(
        np.einsum("...ij,...ij->...j", np.abs(a["W_enc"]), g["W_enc"].magnitude)
        + np.abs(a["b_enc"]) * g["b_enc"].magnitude,
        g["W_enc"],
        k_acc=d_in + 1,
        k_store=1,
    )
    unit = np.abs(a["W_dec"]) / np.where(n > 0, n, np.inf)[..., None]
    through_n = mul(g_n.magnitude[..., None] * unit, g_n, norms, k_store=2)
    grads = {
        "W_enc": mul(g["W_enc"].magnitude * n[..., None, :], g["W_enc"], norms, k_store=1),
        "b_enc": mul(g["b_enc"].magnitude * n, g["b_enc"], norms, k_store=1),
        "W_dec": add(g["W_dec"].magnitude + through_n.magnitude, g["W_dec"], through_n, k_store=1),
        "b_dec": g["b_dec"],
    }
    return {k: b.then(k_acc=d_in + 1, k_store=4) for k, b in grads.items()}


EQUIVALENCES = (
    Equivalence(
        name="rescaled_by_decoder_norm",
        clause="EQ-7",
        formula="select on h_j = z_j ‖W_dec_j‖, f_j = max(h_j, 0), decode Σ_j (f_j / ‖W_dec_j‖) W_dec_j "
        "+ b_dec (SAELens's rescale_acts_by_decoder_norm=True); gradients through both uses of ‖W_dec_j‖",
        rows=("topk_total_loss", "topk_loss_gradients", "batchtopk_total_loss", "batchtopk_loss_gradients"),
        reference=calling(
            {
                "topk_total_loss": oracle.topk_rescaled_total_loss,
                "topk_loss_gradients": oracle.topk_rescaled_loss_gradients,
                "batchtopk_total_loss": oracle.batchtopk_rescaled_total_loss,
                "batchtopk_loss_gradients": oracle.batchtopk_rescaled_loss_gradients,
            }
        ),
        bounds=rescaled_bounds,
        about=("TOPK-5", "TOPK-6", "BTOPK-3"),
    ),
)
"""SAELens's TopK and BatchTopK with the latents rescaled by the decoder norms (EQ-7)."""
