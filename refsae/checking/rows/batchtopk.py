"""BatchTopK (batchtopk.md): case strategies, error bounds and rows of the batch selection, the
threshold update, inference, and the loss and gradients.

Case strategies of the BatchTopK rows (BTOPK-7).

- `batchtopk_cases`: pre-activations drawn directly; a positive tie across the k·B-th value of the
  flattened batch would make two selections valid with different latents, so it is rejected.
- `threshold_cases`: an estimate, a batch of non-negative latents (sometimes all zero: BTOPK-4),
  the number of batches averaged so far and the update rule.
- `inference_cases`: pre-activations and one threshold per instance, sometimes copied from z
  (strictness) and sometimes <= 0.
- `batchtopk_loss_cases`: TopK's full SAE cases with the gap held across the batch.

Error bounds of the BatchTopK threshold update (BTOPK-5, TOL-4). The minimum is a copy (exact);
`mean`: θ + (m − θ)/(n + 1), a difference, a quotient and a sum, each stored; `ema`: β θ + (1 − β) m,
two products (β and 1 − β in the accumulation dtype) and a sum.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking import strategies as rs
from refsae.checking.cases import pre_activations_of
from refsae.checking.operation import Bounds, Operation, Outputs, exact
from refsae.checking.rows.gradients import loss_gradients_bounds
from refsae.checking.rows.losses import LOSS_EXAMPLE, variant_loss_bounds
from refsae.checking.rows.topk import draw_k, topk_loss_cases
from refsae.checking.tolerances import Bound
from refsae.conventions import OPERATION_AXES

batchtopk_loss_cases = partial(topk_loss_cases, across_batch=True)


@st.composite
def batchtopk_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape = draw(rs.shapes())
    z = draw(rs.arrays((shape.batch, *shape.inst, shape.d_sae), dtype, draw(rs.scales(dtype))))
    k = draw_k(draw, shape.d_sae)
    if k < shape.d_sae:
        flat = np.moveaxis(z, 0, -2).reshape(*shape.inst, shape.batch * shape.d_sae)
        ordered = -np.sort(-flat, axis=-1)
        kth, next_ = ordered[..., k * shape.batch - 1], ordered[..., k * shape.batch]
        assume(not np.any((kth == next_) & (kth > 0)))
    return Case({"z": z}, {"k": k}, dtype)


@st.composite
def threshold_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape = draw(rs.shapes())
    f = draw(rs.latents(shape, dtype))
    if draw(st.booleans()):
        f = f * (np.arange(shape.d_sae) % 2 == 0)  # only some latents fire
    if shape.n_inst is not None and draw(st.booleans()):
        f[:, 0] = 0.0  # an instance whose batch kept nothing
    threshold = np.asarray(np.abs(draw(rs.arrays(shape.inst, dtype, draw(rs.scales(dtype)))))).reshape(
        shape.inst
    )
    options = {
        "n_batches": draw(st.integers(0, 1000)),
        "update": draw(rs.convention("update", OPERATION_AXES["update"])),
        "beta": draw(st.sampled_from((0.0, 0.5, 0.99))),
    }
    return Case({"threshold": threshold, "f": f}, options, dtype)


@st.composite
def inference_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape = draw(rs.shapes())
    z = draw(rs.arrays((shape.batch, *shape.inst, shape.d_sae), dtype, draw(rs.scales(dtype))))
    mode = draw(st.sampled_from(("drawn", "copied", "non-positive")))
    threshold = np.abs(draw(rs.arrays(shape.inst, dtype, draw(rs.scales(dtype)))))
    if mode == "copied":
        threshold = np.abs(z[0, ..., 0])
    elif mode == "non-positive":
        threshold = -threshold
    threshold = np.asarray(threshold).reshape(shape.inst)  # 0-d (not 1-d, not a scalar) without instances
    return Case({"z": z, "threshold": threshold}, {}, dtype)


def update_threshold_bound(
    threshold: np.ndarray, m: np.ndarray, n_batches: int, update: str, beta: float
) -> Bound:
    t, m = np.abs(threshold), np.abs(m)
    if update == "mean":
        return Bound(t + (t + m) / (n_batches + 1), 0, 3)
    return Bound(beta * t + (1 - beta) * m, 2, 3)


def batchtopk_update_threshold_bounds(case: Case, out: Outputs) -> Bounds:
    a, o = case.arrays, case.options
    m = oracle.batchtopk_min_positive(a["f"])[0]
    return {"threshold": update_threshold_bound(a["threshold"], m, o["n_batches"], o["update"], o["beta"])}


def batchtopk_total_loss_bounds(case: Case, out: Outputs) -> Bounds:
    return variant_loss_bounds(case, oracle.batchtopk(pre_activations_of(case), k=case.options["k"]))


ROWS = (
    Operation(
        name="batchtopk",
        summary="f = max(z, 0) at the k·B largest z of the batch, 0 elsewhere",
        clauses=("BTOPK-1", "BTOPK-2"),
        arrays=("z",),
        outputs=("f",),
        cases=batchtopk_cases,
        bounds=exact("f"),
        example={"k": 1},
    ),
    Operation(
        name="batchtopk_update_threshold",
        summary="θ ← running mean (or EMA) of each batch's smallest positive latent",
        clauses=("BTOPK-4", "BTOPK-5"),
        arrays=("threshold", "f"),
        outputs=("threshold",),
        cases=threshold_cases,
        bounds=batchtopk_update_threshold_bounds,
        example={"n_batches": 3, "update": "ema", "beta": 0.9},
    ),
    Operation(
        name="batchtopk_inference",
        summary="f = z · 1[z > θ] with one θ per instance",
        clauses=("BTOPK-6",),
        arrays=("z", "threshold"),
        outputs=("f",),
        cases=inference_cases,
        bounds=exact("f"),
    ),
    Operation(
        name="batchtopk_total_loss",
        summary="reconstruction + λ · sparsity of BatchTopK training latents",
        clauses=("BTOPK-3", "BTOPK-7"),
        arrays=("x", "W_enc", "b_enc", "W_dec", "b_dec"),
        outputs=("loss",),
        cases=batchtopk_loss_cases,
        bounds=batchtopk_total_loss_bounds,
        example={**LOSS_EXAMPLE, "k": 1},
    ),
    Operation(
        name="batchtopk_loss_gradients",
        summary="∂L/∂(W_enc, b_enc, W_dec, b_dec) through the batch selection",
        clauses=("BTOPK-3", "BTOPK-7"),
        arrays=("x", "W_enc", "b_enc", "W_dec", "b_dec"),
        outputs=("W_enc", "b_enc", "W_dec", "b_dec"),
        cases=batchtopk_loss_cases,
        bounds=loss_gradients_bounds,
        example={**LOSS_EXAMPLE, "k": 1},
    ),
)
