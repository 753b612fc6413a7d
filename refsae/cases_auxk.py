"""Case strategies of the AuxK rows (AUXK-9).

The rows take the pre-activations z as an input, as the libraries pass their `hidden_pre`, so the
oracle and the implementation select from the same numbers: the only discontinuity left is a tie
*across* the k-th value among an example's dead latents (two valid selections, two different
auxiliary latents), and such cases are rejected; every other tie is kept (the grid distribution
draws many). The dead mask is drawn with about 0, 30, 70 or 100 % dead latents per instance (0 %:
the loss must be exactly 0, AUXK-6), k_aux from 1 to d_sae + 2 (k_aux > n_dead and > d_sae both
occur), every convention of AUXK-3..AUXK-7, and x_hat either independent of x or a small
perturbation of it (a small residual, as late in training). The variance normalisers must exceed
twice their own allowed error (STR-8's rule).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import bounds_auxk
from refsae import strategies as rs
from refsae.cases import EPSILONS, Case, _finish
from refsae.conventions import DECODER
from refsae.oracle import auxk as oracle_auxk
from refsae.tolerances import allowed_error, magnitude_floor

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
        parts = bounds_auxk._parts(*args, o)
    if o.normalisation != "sum":  # where a latent is dead, D is certainly positive in the dtype (STR-8)
        centred = a["x"] if o.normalisation == "input_variance" else a["x"] - a["x_hat"]
        D_true = ((centred - centred.mean(axis=0, keepdims=True)) ** 2).sum(axis=(0, -1))
        some_dead = a["dead"].sum(axis=-1) > 0
        assume(bool(np.all((2 * allowed_error(parts[6], dtype) < D_true) | ~some_dead)))
    grads = bounds_auxk.loss_gradients(*args, o)
    magnitudes = [parts[3].magnitude, parts[4].magnitude, bounds_auxk.loss(*args, o).magnitude]
    magnitudes += [g.magnitude for g in grads.values() if g is not None]
    if o.decoder == "normalised":  # the norm's backward quotient (STR-4)
        ne = np.linalg.norm(a["W_dec"], axis=-1) + o.eps
        W_grad = grads["W_dec"]
        assert W_grad is not None
        magnitudes.append((np.abs(a["W_dec"]) * W_grad.magnitude).sum(axis=-1) / ne)
    return _finish(Case(arrays, options, dtype), magnitudes)
