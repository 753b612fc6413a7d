"""The unit-norm constraint (CON) and parallel-gradient removal (PAR) on decoder rows."""

from __future__ import annotations

import numpy as np

from refsae._typecheck import typechecked
from refsae.oracle import _validate
from refsae.oracle._shapes import DecoderWeights

__all__ = ["remove_parallel_component", "renormalise_rows"]


def row_scale(v: np.ndarray) -> np.ndarray:
    """A power of two 2^(e−1) with max_i |v_i| < 2^e per row (last axis), 1 for a zero row (CON-4).
    Dividing by it is exact, and keeps the row's squares from underflowing: ‖v‖ of a row of 1e-161
    squares to a subnormal in float64 (1e-23 in float32), which would lose the norm, or all of it."""
    m = np.max(np.abs(v), axis=-1, keepdims=True)
    _, e = np.frexp(m)
    scale: np.ndarray = np.where(m > 0, np.ldexp(1.0, e - 1), 1.0)
    return scale


@typechecked
def renormalise_rows(W_dec: DecoderWeights) -> DecoderWeights:
    """Each dictionary row divided by its ℓ2 norm (CON-1); a zero row stays zero (CON-2).

    >>> import numpy as np
    >>> renormalise_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    _validate.finite(W_dec=W_dec)
    w = W_dec / row_scale(W_dec)  # exact (CON-4)
    n = np.linalg.norm(w, axis=-1, keepdims=True)
    out: np.ndarray = np.where(n > 0, w / np.where(n > 0, n, 1.0), 0.0)
    return out


@typechecked
def remove_parallel_component(W_dec: DecoderWeights, grad_W_dec: DecoderWeights) -> DecoderWeights:
    """g_j − (g_j·w_j / ‖w_j‖²) w_j for every row j (PAR-1): the general form, right for rows of any
    norm (PAR-2); rows with w_j = 0 keep their gradient (PAR-3).

    >>> import numpy as np
    >>> remove_parallel_component(np.array([[2.0, 0.0]]), np.array([[5.0, 7.0]])).tolist()
    [[0.0, 7.0]]
    """
    _validate.finite(W_dec=W_dec, grad_W_dec=grad_W_dec)
    w = W_dec / row_scale(W_dec)  # exact; the scale cancels in (g·w / ‖w‖²) w (CON-4)
    sq = np.sum(w * w, axis=-1, keepdims=True)
    coeff = np.where(sq > 0, np.sum(grad_W_dec * w, axis=-1, keepdims=True) / np.where(sq > 0, sq, 1.0), 0.0)
    out: np.ndarray = grad_W_dec - coeff * w
    return out
