"""Test-only composite strategies built from the public ones in `refsae.checking.strategies`."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from refsae.checking import strategies as rs
from refsae.conventions import Conventions

SAECase = tuple[rs.Shape, np.ndarray, dict[str, Any]]
"""(shape, x, params) as `float64_sae` draws it."""


@st.composite
def float64_sae(
    draw: st.DrawFn,
    *,
    max_dim: int = 8,
    max_batch: int = 8,
    min_batch: int = 1,
    instance_axis: bool | None = None,
    margin: float = 0.0,
) -> tuple[rs.Shape, np.ndarray, dict[str, np.ndarray]]:
    """(shape, x, params) in float64; with `margin` > 0 every pre-activation under *both* encode
    conventions is at least margin · (1 + |z|) away from the ReLU kink (STR-7)."""
    shape = draw(
        rs.shapes(max_dim=max_dim, max_batch=max_batch, min_batch=min_batch, instance_axis=instance_axis)
    )
    params = draw(rs.sae_params(shape, "float64"))
    x = draw(rs.inputs(shape, "float64"))
    if margin > 0:
        # both conventions at once: tied z0 = (x − b_dec) W_enc and untied z0 = x W_enc, stacked
        # along the batch axis so one b_enc keeps every pre-activation of either away from the kink
        z0 = np.concatenate(
            [np.einsum("b...i,...ij->b...j", u, params["W_enc"]) for u in (x - params["b_dec"], x)]
        )
        m = margin * (1 + np.abs(z0) + np.abs(params["b_enc"]))
        params["b_enc"] = rs.kink_margin_b_enc(z0, params["b_enc"], m, "float64")
    return shape, x, params


def all_conventions() -> st.SearchStrategy[Conventions]:
    return rs.conventions()
