"""The unit-norm constraint (CON) and parallel-gradient removal (PAR) on decoder rows."""

from __future__ import annotations

import numpy as np
from jaxtyping import Float64

from refsae._typecheck import typechecked
from refsae.oracle import _validate


@typechecked
def renormalise_rows(
    W_dec: Float64[np.ndarray, "*inst d_sae d_in"],
) -> Float64[np.ndarray, "*inst d_sae d_in"]:
    """Each dictionary row divided by its ℓ2 norm (CON-1); a zero row stays zero (CON-2).

    >>> import numpy as np
    >>> renormalise_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    _validate.finite(W_dec=W_dec)
    n = np.linalg.norm(W_dec, axis=-1, keepdims=True)
    out: np.ndarray = np.where(n > 0, W_dec / np.where(n > 0, n, 1.0), 0.0)
    return out


@typechecked
def remove_parallel_component(
    W_dec: Float64[np.ndarray, "*inst d_sae d_in"],
    grad_W_dec: Float64[np.ndarray, "*inst d_sae d_in"],
) -> Float64[np.ndarray, "*inst d_sae d_in"]:
    """g_j − (g_j·w_j / ‖w_j‖²) w_j for every row j (PAR-1): the general form, right for rows of any
    norm (PAR-2); rows with w_j = 0 keep their gradient (PAR-3).

    >>> import numpy as np
    >>> remove_parallel_component(np.array([[2.0, 0.0]]), np.array([[5.0, 7.0]])).tolist()
    [[0.0, 7.0]]
    """
    _validate.finite(W_dec=W_dec, grad_W_dec=grad_W_dec)
    sq = np.sum(W_dec * W_dec, axis=-1, keepdims=True)
    coeff = np.where(
        sq > 0, np.sum(grad_W_dec * W_dec, axis=-1, keepdims=True) / np.where(sq > 0, sq, 1.0), 0.0
    )
    out: np.ndarray = grad_W_dec - coeff * W_dec
    return out
