"""Case strategies of the training-dynamics rows: Adam, its reset, resampling updates, the step."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import strategies as rs
from refsae.cases import Case, loss_cases, sae_case
from refsae.oracle.optimizer import PARAMETERS
from refsae.tolerances import LARGEST


def _moments(
    draw: st.DrawFn, params: dict[str, np.ndarray], dtype: str, fresh: bool
) -> dict[str, np.ndarray]:
    """exp_avg (any sign) and exp_avg_sq (>= 0), zero when `fresh`."""
    out: dict[str, np.ndarray] = {}
    for name, p in params.items():
        if fresh:
            out[f"exp_avg.{name}"] = np.zeros_like(p)
            out[f"exp_avg_sq.{name}"] = np.zeros_like(p)
            continue
        scale = draw(rs.scales(dtype))
        out[f"exp_avg.{name}"] = draw(rs.arrays(p.shape, dtype, scale))
        out[f"exp_avg_sq.{name}"] = rs.round_to(draw(rs.arrays(p.shape, dtype, scale)) ** 2, dtype)
    return out


def _hyper(draw: st.DrawFn, fresh: bool) -> dict[str, Any]:
    return {
        "step": 0 if fresh else draw(st.integers(1, 2000)),
        "lr": draw(st.sampled_from((1e-4, 1e-3, 1e-2))),
        "betas": draw(st.sampled_from(((0.9, 0.999), (0.0, 0.999), (0.5, 0.9)))),
        "weight_decay": draw(st.sampled_from((0.0, 0.01))),
    }


def _finite_in(dtype: str, arrays: dict[str, np.ndarray]) -> bool:
    return max(float(np.abs(a).max(initial=0.0)) for a in arrays.values()) ** 2 < LARGEST[dtype] / 16


@st.composite
def adam_cases(draw: st.DrawFn, dtype: str) -> Case:
    """Parameters, gradients and moments of every parameter; fresh state (step 0) sometimes."""
    _, params = draw(sae_case(dtype, with_x=False))
    fresh = draw(st.booleans())
    arrays = {f"param.{k}": v for k, v in params.items()}
    arrays.update(
        {f"grad.{k}": draw(rs.arrays(v.shape, dtype, draw(rs.scales(dtype)))) for k, v in params.items()}
    )
    arrays.update(_moments(draw, params, dtype, fresh))
    options = {**_hyper(draw, fresh), "eps": draw(st.sampled_from((1e-8, 1e-6)))}
    assume(_finite_in(dtype, arrays))
    return Case(arrays, options, dtype)


@st.composite
def reset_cases(draw: st.DrawFn, dtype: str) -> Case:
    """Moments and a 0/1 latent mask (none, some or all latents)."""
    shape, params = draw(sae_case(dtype, with_x=False))
    arrays = _moments(draw, params, dtype, fresh=False)
    arrays["latents"] = np.array(
        draw(
            st.lists(
                st.integers(0, 1),
                min_size=len(params["b_enc"].ravel()),
                max_size=len(params["b_enc"].ravel()),
            )
        ),
        dtype=np.int64,
    ).reshape(params["b_enc"].shape)
    del shape
    # a second moment is a square: in float16 it overflows for |draw| > 256 (STR-4)
    assume(all(float(np.abs(a).max(initial=0.0)) < LARGEST[dtype] / 16 for a in arrays.values()))
    return Case(arrays, {}, dtype)


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


@st.composite
def training_cases(draw: st.DrawFn, dtype: str) -> Case:
    """A full SAE case with the kink margin (STR-7), Adam moments and hyperparameters."""
    base = draw(loss_cases(dtype, kink_margin=True, backward=True))
    params = {k: base.arrays[k] for k in PARAMETERS}
    fresh = draw(st.booleans())
    arrays = {"x": base.arrays["x"], **{f"param.{k}": v for k, v in params.items()}}
    arrays.update(_moments(draw, params, dtype, fresh))
    options = {**base.options, **_hyper(draw, fresh), "adam_eps": draw(st.sampled_from((1e-8, 1e-6)))}
    return Case(arrays, options, dtype)


__all__ = ["adam_cases", "resample_cases", "reset_cases", "sae_case", "training_cases"]
