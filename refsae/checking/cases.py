"""What the case strategies of every family share: the full-SAE draw, the range check (STR-4), the
variance check (STR-8) and accessors of a case's arrays by name.

The strategies themselves live with their rows, one module per family (`refsae.checking.rows`).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking import bounds
from refsae.checking import strategies as rs
from refsae.checking.tolerances import LARGEST, allowed_error
from refsae.conventions import Conventions


def within_range(case: Case, magnitudes: list[np.ndarray]) -> bool:
    """No intermediate can overflow: the magnitudes of the largest intermediates (sums before their
    division, squares) stay below 1/16 of the dtype's largest value (STR-4)."""
    largest = max((float(np.max(m, initial=0.0)) for m in magnitudes), default=0.0)
    return largest < LARGEST.get(case.dtype, LARGEST["float64"]) / 16


def variance_is_certain(x: np.ndarray, dtype: str) -> bool:
    """FVU needs V > 0 as computed in `dtype` too: V must exceed twice its own allowed error (STR-8)."""
    V = ((x - x.mean(axis=0, keepdims=True)) ** 2).sum(axis=(0, -1))
    return bool(np.all(2 * allowed_error(bounds.total_variance(x), dtype) < V))


@st.composite
def sae_case(
    draw: st.DrawFn,
    dtype: str,
    *,
    with_x: bool = True,
    with_params: tuple[str, ...] = ("W_enc", "b_enc", "W_dec", "b_dec"),
    min_batch: int = 1,
) -> tuple[rs.Shape, dict[str, np.ndarray]]:
    """A shape and the named arrays of a full SAE case."""
    shape = draw(rs.shapes(min_batch=min_batch))
    params = draw(rs.sae_params(shape, dtype))
    arrays = {k: params[k] for k in with_params}
    if with_x:
        arrays = {"x": draw(rs.inputs(shape, dtype)), **arrays}
    return shape, arrays


def shrink_to_range(
    a: dict[str, np.ndarray], numerator: np.ndarray, names: tuple[str, ...], dtype: str
) -> dict[str, np.ndarray]:
    """STR-4's repair of a draw whose squared residual would leave the dtype's range: the arrays `names`
    divided by the smallest power of two 2^k that brings `numerator` (Σ (|x̂| + |x|)², per instance)
    under 1/64 of the dtype's largest value. The callers name the arrays the residual is linear in
    (x, b_enc, b_dec: z = u W_enc + b_enc, and ReLU, TopK and the decode are positively homogeneous),
    so the residual scales by 2^−k and its square by 2^−2k: the same SAE on smaller data. A draw the
    range check would reject (float16 at large shapes) becomes one it accepts; one already in range is
    returned unchanged. Rounded to the dtype after (exact until a value nears the subnormals)."""
    largest = float(np.max(numerator, initial=0.0))
    limit = LARGEST.get(dtype, LARGEST["float64"]) / 64
    if largest <= limit:
        return a
    k = math.ceil(math.log2(largest / limit) / 2)
    return {**a, **{n: rs.round_to(a[n] * 2.0**-k, dtype) for n in names}}


def finish(case: Case, magnitudes: list[np.ndarray]) -> Case:
    """`case`, if no intermediate of the magnitudes `magnitudes` can overflow its dtype (STR-4)."""
    assume(within_range(case, magnitudes))
    return case


def conventions_of(case: Case) -> Conventions:
    """The case's `conventions` option."""
    c: Conventions = case.options["conventions"]
    return c


def sae_arrays(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, W_enc, b_enc, W_dec, b_dec of a full-SAE case, by name."""
    a = case.arrays
    return a["x"], a["W_enc"], a["b_enc"], a["W_dec"], a["b_dec"]


def group(case: Case, name: str) -> dict[str, np.ndarray]:
    """The arrays `name.KEY` of a case (`param.W_enc` …), keyed KEY."""
    return {k.split(".", 1)[1]: v for k, v in case.arrays.items() if k.startswith(f"{name}.")}


def pre_activations_of(case: Case) -> np.ndarray:
    """The oracle's pre-activations of a full-SAE case."""
    x, W_enc, b_enc, _, b_dec = sae_arrays(case)
    return np.asarray(oracle.pre_activations(x, W_enc, b_enc, b_dec, encode=conventions_of(case).encode))
