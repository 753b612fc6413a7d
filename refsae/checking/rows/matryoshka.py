"""Matryoshka (matryoshka.md): case strategies, error bounds and rows of the levels' decode, the
level-weighted reconstruction loss, and the Matryoshka BatchTopK loss and gradients.

Case strategies (MAT-8). The widths are drawn as 1 to 4 strictly increasing prefixes ending at
d_sae (a single level is the plain SAE). `matryoshka_loss_cases` are BatchTopK's full SAE cases
(`topk_loss_cases` with the gap held across the batch, so the selection is certain) without a
sparsity term.

Error bounds (MAT-8, TOL-4). Level i's reconstruction and loss carry DEC-1's and LOSS-1..3's bounds
for the latents f ⊙ 1[j < m_i]: a prefix of the latents is a shorter product whose terms are a subset
of the full one's. Weighting a level by 1/n is one more rounding of the weight and one of the product;
the n levels' values (losses, or gradient contributions) are summed with one stored rounding per
level: whichever order an implementation sums them in (autograd accumulating level by level, or a
hand-written backward summing the levels' residual gradients first), every partial sum is bounded by
the sum of the levels' magnitudes, so that sum is the magnitude and the chain grows by n.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking import bounds
from refsae.checking import strategies as rs
from refsae.checking.cases import (
    conventions_of,
    finish,
    pre_activations_of,
    sae_arrays,
    sae_case,
    variance_is_certain,
)
from refsae.checking.operation import Bounds, Operation, Outputs
from refsae.checking.rows.losses import RECONSTRUCTION_DRAWN
from refsae.checking.rows.topk import topk_loss_cases
from refsae.checking.tolerances import Bound, add, leaf, mul
from refsae.conventions import DECODER
from refsae.oracle.matryoshka import LEVELS, level_weights, prefix_mask
from refsae.torch.fast import matryoshka as fast_matryoshka

MATRYOSHKA_EXAMPLE = {"k": 2, "widths": (2, 5), "levels": "averaged"}


def draw_widths(draw: st.DrawFn, d_sae: int) -> tuple[int, ...]:
    """1 to 4 strictly increasing widths ending at d_sae."""
    inner = draw(st.sets(st.integers(1, d_sae - 1), max_size=min(3, d_sae - 1))) if d_sae > 1 else set()
    return (*sorted(inner), d_sae)


@st.composite
def decode_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape, a = draw(sae_case(dtype, with_x=False, with_params=("W_dec", "b_dec")))
    f = draw(rs.latents(shape, dtype))
    decoder, eps = draw(rs.convention("decoder", DECODER)), draw(rs.epsilons())
    options = {"widths": draw_widths(draw, shape.d_sae), "decoder": decoder, "eps": eps}
    x_hat = bounds.decode(leaf(f), a["W_dec"], a["b_dec"], decoder, eps)
    return finish(Case({"f": f, **a}, options, dtype), [x_hat.magnitude])


@st.composite
def reconstruction_loss_cases(draw: st.DrawFn, dtype: str) -> Case:
    reconstruction = draw(rs.convention("reconstruction", RECONSTRUCTION_DRAWN))
    shape, a = draw(
        sae_case(dtype, with_params=("W_dec", "b_dec"), min_batch=2 if reconstruction == "fvu" else 1)
    )
    if reconstruction == "fvu":
        assume(variance_is_certain(a["x"], dtype))
    f = draw(rs.latents(shape, dtype))
    options: dict[str, Any] = {
        "widths": draw_widths(draw, shape.d_sae),
        "levels": draw(rs.convention("levels", LEVELS)),
        "reconstruction": reconstruction,
        "decoder": draw(rs.convention("decoder", DECODER)),
        "eps": draw(rs.epsilons()),
    }
    x_hat = bounds.decode(leaf(f), a["W_dec"], a["b_dec"], options["decoder"], options["eps"])
    numerator = ((x_hat.magnitude + np.abs(a["x"])) ** 2).sum(axis=(0, -1))
    return finish(
        Case({"x": a["x"], "f": f, "W_dec": a["W_dec"], "b_dec": a["b_dec"]}, options, dtype), [numerator]
    )


@st.composite
def matryoshka_loss_cases(draw: st.DrawFn, dtype: str) -> Case:
    base = draw(topk_loss_cases(dtype, across_batch=True))
    options = {k: v for k, v in base.options.items() if k != "l1_coefficient"}
    options["widths"] = draw_widths(draw, base.arrays["b_enc"].shape[-1])
    options["levels"] = draw(rs.convention("levels", LEVELS))
    return Case(base.arrays, options, dtype)


def stacked(parts: list[Bound]) -> Bound:
    """The bounds of the levels' outputs as one bound on their stack (the longest chains)."""
    return Bound(
        np.stack([p.magnitude for p in parts]),
        max(p.k_acc for p in parts),
        max(p.k_store for p in parts),
    )


def level_sum(parts: list[Bound], levels: str) -> Bound:
    """Σ_i w_i part_i: a weight 1/n is rounded and multiplied (two roundings); n stored sums."""
    weights = level_weights(len(parts), levels)
    if levels == "averaged":
        parts = [mul(w * p.magnitude, p, k_store=2) for w, p in zip(weights, parts, strict=True)]
    return add(np.sum([p.magnitude for p in parts], axis=0), *parts, k_store=len(parts))


def _level_decodes(f: np.ndarray, W_dec: np.ndarray, b_dec: np.ndarray, o: dict[str, Any]) -> list[Bound]:
    d_sae = f.shape[-1]
    return [
        bounds.decode(leaf(np.where(prefix_mask(d_sae, m), f, 0.0)), W_dec, b_dec, o["decoder"], o["eps"])
        for m in o["widths"]
    ]


def decode_bounds(case: Case, out: Outputs) -> Bounds:
    a = case.arrays
    return {"x_hat": stacked(_level_decodes(a["f"], a["W_dec"], a["b_dec"], dict(case.options)))}


def level_losses(
    x: np.ndarray, f: np.ndarray, W_dec: np.ndarray, b_dec: np.ndarray, o: dict[str, Any]
) -> Bound:
    """Σ_inst Σ_i w_i R(x, x̂_i) for latents f (dense, already selected)."""
    x_hats = oracle.matryoshka_decode(f, W_dec, b_dec, widths=o["widths"], decoder=o["decoder"], eps=o["eps"])
    parts = [
        bounds.reconstruction_loss(x, x_hat, value, o["reconstruction"])
        for x_hat, value in zip(_level_decodes(f, W_dec, b_dec, o), x_hats, strict=True)
    ]
    per_instance = level_sum(parts, o["levels"])
    n_inst = int(per_instance.magnitude.size)
    return add(np.asarray(per_instance.magnitude.sum()), per_instance, k_acc=n_inst, k_store=1)


def reconstruction_loss_bounds(case: Case, out: Outputs) -> Bounds:
    a = case.arrays
    return {"loss": level_losses(a["x"], a["f"], a["W_dec"], a["b_dec"], dict(case.options))}


def _latents(case: Case) -> np.ndarray:
    return oracle.batchtopk(pre_activations_of(case), k=case.options["k"])


def matryoshka_total_loss_bounds(case: Case, out: Outputs) -> Bounds:
    c, o = conventions_of(case), case.options
    x, W_enc, b_enc, W_dec, b_dec = sae_arrays(case)
    z = bounds.pre_activations(x, W_enc, b_enc, b_dec, c.encode)  # f carries z's bound (ReLU is exact)
    f = _latents(case)
    active = f > 0
    parts = []
    x_hats = oracle.matryoshka_decode(f, W_dec, b_dec, widths=o["widths"], decoder=c.decoder, eps=c.eps)
    for m, value in zip(o["widths"], x_hats, strict=True):
        level_f = Bound(np.where(active & prefix_mask(f.shape[-1], m), z.magnitude, 0.0), z.k_acc, z.k_store)
        x_hat = bounds.decode(level_f, W_dec, b_dec, c.decoder, c.eps)
        parts.append(bounds.reconstruction_loss(x, x_hat, value, c.reconstruction))
    per_instance = level_sum(parts, o["levels"])
    n_inst = int(per_instance.magnitude.size)
    return {"loss": add(np.asarray(per_instance.magnitude.sum()), per_instance, k_acc=n_inst, k_store=1)}


def matryoshka_gradients_bounds(case: Case, out: Outputs) -> Bounds:
    c, o = conventions_of(case), case.options
    active = _latents(case) > 0
    per_level = [
        bounds.loss_gradients(*sae_arrays(case), 0.0, c, active=active & prefix_mask(active.shape[-1], m))
        for m in o["widths"]
    ]
    return {
        name: level_sum([level[name] for level in per_level], o["levels"])
        for name in ("W_enc", "b_enc", "W_dec", "b_dec")
    }


ROWS = (
    Operation(
        name="matryoshka_decode",
        summary="x̂_i = f_{:m_i} Ŵ_{:m_i} + b_dec for each level",
        clauses=("MAT-1", "MAT-2"),
        arrays=("f", "W_dec", "b_dec"),
        outputs=("x_hat",),
        cases=decode_cases,
        bounds=decode_bounds,
        example={"widths": (2, 5)},
    ),
    Operation(
        name="matryoshka_reconstruction_loss",
        summary="Σ_i w_i R(x, x̂_i): levels summed or averaged",
        clauses=("MAT-3", "MAT-5", "MAT-6"),
        arrays=("x", "f", "W_dec", "b_dec"),
        outputs=("loss",),
        cases=reconstruction_loss_cases,
        bounds=reconstruction_loss_bounds,
        example={"widths": (2, 5), "levels": "averaged"},
    ),
    Operation(
        name="matryoshka_batchtopk_total_loss",
        summary="Matryoshka loss of one BatchTopK selection over all latents",
        clauses=("MAT-3", "MAT-4", "MAT-8"),
        arrays=("x", "W_enc", "b_enc", "W_dec", "b_dec"),
        outputs=("loss",),
        cases=matryoshka_loss_cases,
        bounds=matryoshka_total_loss_bounds,
        example=MATRYOSHKA_EXAMPLE,
    ),
    Operation(
        name="matryoshka_batchtopk_loss_gradients",
        summary="∂L/∂(W_enc, b_enc, W_dec, b_dec) of the Matryoshka BatchTopK loss",
        clauses=("MAT-4", "MAT-7", "MAT-8"),
        arrays=("x", "W_enc", "b_enc", "W_dec", "b_dec"),
        outputs=("W_enc", "b_enc", "W_dec", "b_dec"),
        cases=matryoshka_loss_cases,
        bounds=matryoshka_gradients_bounds,
        example=MATRYOSHKA_EXAMPLE,
        fast=fast_matryoshka.matryoshka_batchtopk_fused_loss_gradients,
    ),
)
