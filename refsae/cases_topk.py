"""Case strategies of the TopK rows (TOPK-7): margins at the k-th value built in, never loosened.

- `topk_cases`: pre-activations z drawn directly (the grid distribution gives exact ties and zeros);
  a tie *across* the k-th value with a positive value would make two selections valid with
  different dense latents, so such cases are rejected; every other tie is kept (TOPK-2).
- `decode_sparse_cases`: a sparse code (values of any sign, indices with repeats) and a decoder.
- `topk_loss_cases`: a full SAE case in which, per instance, a chosen set of k latents is separated
  from the rest at every example by more than four times the allowed error of z: either the chosen
  latents are pushed up (then they are all active, and latents active under ReLU but not selected
  remain: TopK is told apart from ReLU) or the others are pushed down (then some selected latents
  are negative: selected with value 0). The ReLU kink margin of STR-7 holds as well.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import bounds, bounds_topk, oracle
from refsae import strategies as rs
from refsae.cases import Case, _finish, backward_magnitudes, loss_cases
from refsae.conventions import DECODER, Conventions
from refsae.tolerances import allowed_error, magnitude_floor


def _k(draw: st.DrawFn, d_sae: int) -> int:
    return int(
        draw(st.one_of(st.integers(1, d_sae), st.sampled_from((1, d_sae)), st.integers(1, min(d_sae, 4))))
    )


@st.composite
def topk_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape = draw(rs.shapes())
    z = draw(rs.arrays((shape.batch, *shape.inst, shape.d_sae), dtype, draw(rs.scales(dtype))))
    k = _k(draw, shape.d_sae)
    if k < shape.d_sae:
        ordered = -np.sort(-z, axis=-1)
        kth, next_ = ordered[..., k - 1], ordered[..., k]
        assume(not np.any((kth == next_) & (kth > 0)))
    return Case({"z": z}, {"k": k}, dtype)


@st.composite
def decode_sparse_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape = draw(rs.shapes())
    params = draw(rs.sae_params(shape, dtype))
    k = _k(draw, shape.d_sae)
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
    x_hat = bounds_topk.decode_sparse(values, indices, params["W_dec"], params["b_dec"], decoder, eps)
    return _finish(Case(arrays, {"decoder": decoder, "eps": eps}, dtype), [x_hat.magnitude])


@st.composite
def topk_loss_cases(draw: st.DrawFn, dtype: str, *, across_batch: bool = False) -> Case:
    """The module's third strategy; with `across_batch` the gap holds between every chosen entry and
    every other entry of the batch, so BatchTopK's k·B selection is the chosen latents too."""
    base = draw(loss_cases(dtype, kink_margin=True, backward=True))
    a = dict(base.arrays)
    c: Conventions = base.options["conventions"]
    d_sae = a["b_enc"].shape[-1]
    k = _k(draw, d_sae)
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
    return _finish(Case(a, options, dtype), magnitudes)
