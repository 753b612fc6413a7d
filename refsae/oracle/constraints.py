"""The unit-norm constraint (CON) and parallel-gradient removal (PAR) on decoder rows; their eps-guarded
forms, the equivalences `norm_plus_eps` (EQ-4) and `project_on_norm_plus_eps` (EQ-5)."""

from __future__ import annotations

import numpy as np

from refsae._typecheck import typechecked
from refsae.conventions import check_eps
from refsae.oracle import _validate
from refsae.oracle._shapes import DecoderWeights

__all__ = [
    "remove_parallel_component",
    "remove_parallel_component_plus_eps",
    "renormalise_rows",
    "renormalise_rows_plus_eps",
]

EQUIVALENCE_FUNCTIONS: tuple[str, ...] = ("remove_parallel_component_plus_eps", "renormalise_rows_plus_eps")
"""Functions of `__all__` that define named equivalences (specs/equivalences.md), not operations: the
conformance suite's references only, so refsae.torch has no twin of them."""


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


@typechecked
def renormalise_rows_plus_eps(W_dec: DecoderWeights, *, eps: float) -> DecoderWeights:
    """Each dictionary row divided by its ℓ2 norm plus `eps` > 0, `W_j / (‖W_j‖ + eps)`: the equivalence
    `norm_plus_eps` of `renormalise_rows` (EQ-4; CON-1 divides by ‖W_j‖). A zero row stays zero
    (0 / eps, as CON-2); the other rows come out with norm ‖W_j‖ / (‖W_j‖ + eps) < 1.

    >>> import numpy as np
    >>> renormalise_rows_plus_eps(np.array([[3.0, 4.0], [0.0, 0.0]]), eps=5.0).tolist()
    [[0.3, 0.4], [0.0, 0.0]]
    """
    _validate.finite(W_dec=W_dec)
    check_eps(eps)
    scale = row_scale(W_dec)
    n = np.linalg.norm(W_dec / scale, axis=-1, keepdims=True) * scale  # no underflow (CON-4)
    out: np.ndarray = W_dec / (n + eps)
    return out


@typechecked
def remove_parallel_component_plus_eps(
    W_dec: DecoderWeights, grad_W_dec: DecoderWeights, *, eps: float
) -> DecoderWeights:
    """g_j − (g_j·ŵ_j) ŵ_j with ŵ_j = w_j / (‖w_j‖ + eps), `eps` > 0: the projection on the eps-guarded
    direction, the equivalence `project_on_norm_plus_eps` of `remove_parallel_component` (EQ-5; PAR-1
    projects on w_j / ‖w_j‖). It removes (‖w_j‖ / (‖w_j‖ + eps))² of the parallel component; a zero row
    keeps its gradient (ŵ_j = 0, as PAR-3).

    >>> import numpy as np
    >>> remove_parallel_component_plus_eps(np.array([[2.0, 0.0]]), np.array([[5.0, 7.0]]), eps=2.0).tolist()
    [[3.75, 7.0]]
    """
    _validate.finite(W_dec=W_dec, grad_W_dec=grad_W_dec)
    unit = renormalise_rows_plus_eps(W_dec, eps=eps)
    out: np.ndarray = grad_W_dec - np.sum(grad_W_dec * unit, axis=-1, keepdims=True) * unit
    return out
