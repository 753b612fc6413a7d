"""Case strategies of the `b_dec` initialisations (INIT-12): data whose median is known or hard.

Each case is a batch `x` of shape `(batch, *inst, d_in)` (STR-5 shapes, STR-1 values), of one kind:

- `plain`: `strategies.inputs` (a per-dimension offset half the time);
- `symmetric`: centrally symmetric pairs `c ± v_i`, whose median is the centre `c`;
- `centre`: the same plus `c` itself, so that the first iterate (the mean) sits on a data point;
- `mean_point`: plain data plus one more point equal to (the dtype's rounding of) their mean;
- `duplicates`: plain data with rows repeated (points of multiplicity > 1);
- `identical`: one point repeated `batch` times;
- `collinear`: points `c + t_b v` on one line, built from small dyadic grids so that they are
  exactly collinear in every dtype (any point of the middle segment is a median when `batch` is
  even). Nearly collinear data, whose objective is nearly flat along a segment, is where Weiszfeld's
  iteration converges slowest (INIT-7); rounding the exactly collinear points would create it.

Rounding to the dtype may break exact symmetry; such a case is still a valid case.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from refsae import strategies as rs
from refsae.cases import Case

KINDS = ("plain", "symmetric", "centre", "mean_point", "duplicates", "identical", "collinear")


@st.composite
def init_cases(draw: st.DrawFn, dtype: str) -> Case:
    """One batch of one of the `KINDS`, sometimes with an instance axis."""
    shape = draw(rs.shapes())
    inst, batch, d_in = shape.inst, shape.batch, shape.d_in
    kind = draw(st.sampled_from(KINDS))
    scale = draw(rs.scales(dtype))
    if kind in ("symmetric", "centre"):
        half = max(1, (batch - 1) // 2)
        offset = scale * draw(st.sampled_from((0.0, 1.0, 4.0)))
        c = draw(rs.arrays((1, *inst, d_in), dtype, max(offset, scale)))
        c = c if offset else np.zeros_like(c)
        v = draw(rs.arrays((half, *inst, d_in), dtype, scale))
        parts = [c + v, c - v, *([c] if kind == "centre" else [])]
        x = rs.round_to(np.concatenate(parts, axis=0), dtype)
    elif kind == "identical":
        x = np.repeat(draw(rs.arrays((1, *inst, d_in), dtype, scale)), batch, axis=0)
    elif kind == "collinear":  # exactly collinear in every dtype: multiples of scale/16, |·| <= 3 scale
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        c = rng.integers(-4, 5, (1, *inst, d_in)) / 4
        v = rng.integers(-4, 5, (1, *inst, d_in)) / 4
        t = rng.integers(-8, 9, (batch, *inst, 1)) / 4
        x = rs.round_to((c + t * v) * scale, dtype)
    else:
        x = draw(rs.inputs(shape, dtype))
        if kind == "mean_point":
            x = x[:63]  # one more row: batch stays <= 64 (STR-5)
            x = np.concatenate([x, rs.round_to(x.mean(axis=0, keepdims=True), dtype)], axis=0)
        elif kind == "duplicates":
            rows = draw(st.lists(st.integers(0, batch - 1), min_size=batch, max_size=batch))
            x = x[np.array(rows)]
    return Case({"x": x}, {}, dtype)
