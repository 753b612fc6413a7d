"""The resampling updates (resampling.md, RES-10..RES-15): case strategies, error bounds and rows of
`resample_anthropic` and `resample_simple`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from refsae.cases import Case
from refsae.checking import strategies as rs
from refsae.checking.cases import group, sae_case
from refsae.checking.operation import Bounds, Operation, Outputs
from refsae.checking.rows.constraints import renormalised_bound
from refsae.checking.tolerances import Bound, leaf
from refsae.oracle.optimizer import PARAMETERS, Arrays


@st.composite
def resample_cases(draw: st.DrawFn, dtype: str, *, simple: bool) -> Case:
    """Parameters, a dead mask (sometimes none or all dead) and one chosen input or direction per
    latent, some exactly zero (or exactly b_dec, for the centred variant: RES-13)."""
    _, params = draw(sae_case(dtype, with_x=False))
    n = params["b_enc"].size
    pattern = draw(st.sampled_from(("some", "none", "all")))
    flags = {"none": [0] * n, "all": [1] * n}.get(pattern) or draw(
        st.lists(st.integers(0, 1), min_size=n, max_size=n)
    )
    dead = np.array(flags, dtype=np.int64).reshape(params["b_enc"].shape)
    chosen = draw(rs.arrays(params["W_dec"].shape, dtype, draw(rs.scales(dtype))))
    centred = False if simple else draw(st.booleans())
    degenerate = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n))).reshape(dead.shape)
    replacement = np.broadcast_to(params["b_dec"][..., None, :], chosen.shape) if centred else 0.0
    chosen = np.where(
        degenerate[..., None] & (np.arange(n).reshape(dead.shape) % 3 == 0)[..., None], replacement, chosen
    )
    arrays = {
        **{f"param.{k}": v for k, v in params.items()},
        "dead": dead,
        ("directions" if simple else "chosen"): chosen,
    }
    options: dict[str, Any] = {"encoder_scale": draw(st.sampled_from((0.2, 0.5, 1.0)))}
    if not simple:
        options["centred"] = centred
    return Case(arrays, options, dtype)


def resample_bound(
    param: Arrays, dead: np.ndarray, chosen: np.ndarray, *, centred: bool, encoder_scale: float, simple: bool
) -> dict[str, Bound | None]:
    """W_dec_j = v̂_j and W_enc[:, j] = v̂_j · scale (· mean alive column norm) where resampled; every
    other element is an exact copy (RES-10..RES-15)."""
    v = chosen - param["b_dec"][..., None, :] if centred else chosen
    vb = Bound(np.abs(chosen) + np.abs(param["b_dec"][..., None, :]), 0, 1) if centred else leaf(chosen)
    direction = renormalised_bound(v, vb)
    ok = dead.astype(bool) & (np.linalg.norm(v, axis=-1) > 0)
    if simple:
        scale_bound = Bound(np.full(ok.shape[:-1], encoder_scale), 0, 0)
    else:
        d_in, d_sae = param["W_enc"].shape[-2], param["W_enc"].shape[-1]
        alive = ~dead.astype(bool)
        norms = np.linalg.norm(param["W_enc"], axis=-2)
        n_alive = alive.sum(axis=-1)
        mean = np.where(n_alive > 0, (norms * alive).sum(axis=-1) / np.maximum(n_alive, 1), 1.0)
        scale_bound = Bound(encoder_scale * mean, d_in + d_sae + 3, 4)
    column = Bound(
        direction.magnitude * scale_bound.magnitude[..., None, None],
        direction.k_acc + scale_bound.k_acc,
        direction.k_store + scale_bound.k_store + 1,
    )
    return {
        "param.W_enc": Bound(
            np.where(ok[..., None, :], np.swapaxes(column.magnitude, -1, -2), 0.0),
            column.k_acc,
            column.k_store,
        ),
        "param.b_enc": None,
        "param.W_dec": Bound(
            np.where(ok[..., None], direction.magnitude, 0.0), direction.k_acc, direction.k_store
        ),
        "param.b_dec": None,
        "resampled": None,
    }


PARAMS = tuple(f"param.{k}" for k in PARAMETERS)


def resample_anthropic_cases(dtype: str) -> st.SearchStrategy[Case]:
    return resample_cases(dtype, simple=False)


def resample_simple_cases(dtype: str) -> st.SearchStrategy[Case]:
    return resample_cases(dtype, simple=True)


def resample_anthropic_bounds(case: Case, out: Outputs) -> Bounds:
    a, o = case.arrays, case.options
    return resample_bound(
        group(case, "param"),
        a["dead"],
        a["chosen"],
        centred=o["centred"],
        encoder_scale=o["encoder_scale"],
        simple=False,
    )


def resample_simple_bounds(case: Case, out: Outputs) -> Bounds:
    a, o = case.arrays, case.options
    return resample_bound(
        group(case, "param"),
        a["dead"],
        a["directions"],
        centred=False,
        encoder_scale=o["encoder_scale"],
        simple=True,
    )


def has_zero_direction(case: Case) -> bool:
    """RES-13's case: a dead latent whose direction (v_j, or v_j − b_dec when centred) is zero."""
    a = case.arrays
    v = a["chosen"] - a["param.b_dec"][..., None, :] if case.options.get("centred") else a["chosen"]
    return bool(np.any(a["dead"].astype(bool) & np.all(v == 0, axis=-1)))


def has_instance_all_dead(case: Case) -> bool:
    """RES-14's case: an instance whose every latent is dead (no alive norm to average)."""
    return bool(np.any(np.all(case.arrays["dead"].astype(bool), axis=-1)))


ROWS = (
    Operation(
        name="resample_anthropic",
        summary="Anthropic's resampling update given the chosen inputs (plain or centred)",
        clauses=("RES-10", "RES-11", "RES-12", "RES-13", "RES-14"),
        arrays=(*PARAMS, "dead", "chosen"),
        outputs=(*PARAMS, "resampled"),
        cases=resample_anthropic_cases,
        bounds=resample_anthropic_bounds,
        example={"centred": True},
        edge_clauses=(("RES-13", has_zero_direction), ("RES-14", has_instance_all_dead)),
    ),
    Operation(
        name="resample_simple",
        summary="the simple resampling update given explicit directions",
        clauses=("RES-13", "RES-15"),
        arrays=(*PARAMS, "dead", "directions"),
        outputs=(*PARAMS, "resampled"),
        cases=resample_simple_cases,
        bounds=resample_simple_bounds,
    ),
)
