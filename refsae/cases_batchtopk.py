"""Case strategies of the BatchTopK rows (BTOPK-7).

- `batchtopk_cases`: pre-activations drawn directly; a positive tie across the k·B-th value of the
  flattened batch would make two selections valid with different latents, so it is rejected.
- `threshold_cases`: an estimate, a batch of non-negative latents (sometimes all zero: BTOPK-4),
  the number of batches averaged so far and the update rule.
- `inference_cases`: pre-activations and one threshold per instance, sometimes copied from z
  (strictness) and sometimes <= 0.
- `batchtopk_loss_cases`: TopK's full SAE cases with the gap held across the batch.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import strategies as rs
from refsae.cases import Case
from refsae.cases_topk import _k, topk_loss_cases
from refsae.conventions import OPERATION_AXES

batchtopk_loss_cases = partial(topk_loss_cases, across_batch=True)


@st.composite
def batchtopk_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape = draw(rs.shapes())
    z = draw(rs.arrays((shape.batch, *shape.inst, shape.d_sae), dtype, draw(rs.scales(dtype))))
    k = _k(draw, shape.d_sae)
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
