"""Metrics (MET): L0, dead fraction, explained variance; the centred-residual explained variance of the
equivalence `centred_residual` (EQ-6). Per-instance results have shape `*inst`."""

from __future__ import annotations

import numpy as np
from jaxtyping import Int

from refsae._typecheck import typechecked
from refsae.oracle import _validate
from refsae.oracle._shapes import InputBatch, LatentBatch, PerInstance
from refsae.oracle.losses import reconstruction_loss, total_variance

__all__ = ["dead_fraction", "explained_variance", "explained_variance_centred_residual", "l0"]

EQUIVALENCE_FUNCTIONS: tuple[str, ...] = ("explained_variance_centred_residual",)
"""Functions of `__all__` that define named equivalences (specs/equivalences.md), not operations: the
conformance suite's references only, so refsae.torch has no twin of them."""


@typechecked
def l0(f: LatentBatch) -> PerInstance:
    """Mean over the batch of the number of non-zero latents (MET-1).

    >>> import numpy as np
    >>> float(l0(np.array([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0]])))
    1.5
    """
    _validate.nonempty_batch(f, "f")
    _validate.finite(f=f)
    return np.asarray(np.count_nonzero(f, axis=(0, -1)) / f.shape[0], dtype=np.float64)


@typechecked
def dead_fraction(fire_counts: Int[np.ndarray, "*inst d_sae"]) -> PerInstance:
    """Fraction of latents whose fire count over the window is 0 (MET-2); counts must be >= 0.

    >>> import numpy as np
    >>> float(dead_fraction(np.array([0, 3, 0, 1])))
    0.5
    """
    if fire_counts.shape[-1] == 0:
        raise ValueError("fire_counts has no latents (d_sae = 0)")
    if np.any(fire_counts < 0):
        raise ValueError("fire_counts must be >= 0")
    return np.asarray(np.mean(fire_counts == 0, axis=-1), dtype=np.float64)


@typechecked
def explained_variance(x: InputBatch, x_hat: InputBatch) -> PerInstance:
    """1 − FVU, each dimension centred by its own batch mean (MET-3); zero total variance raises.

    >>> import numpy as np
    >>> x = np.array([[0.0, 1.0], [2.0, 5.0]])
    >>> mean = np.repeat(x.mean(0, keepdims=True), 2, 0)
    >>> float(explained_variance(x, x)), float(explained_variance(x, mean))
    (1.0, 0.0)
    """
    _validate.finite(x=x, x_hat=x_hat)
    return np.asarray(1.0 - reconstruction_loss(x, x_hat, reconstruction="fvu"))


@typechecked
def explained_variance_centred_residual(x: InputBatch, x_hat: InputBatch) -> PerInstance:
    """1 − Σ_d var_b(x − x_hat) / Σ_d var_b(x): the residual centred by its own batch mean, the
    equivalence `centred_residual` of `explained_variance` (EQ-6; MET-3 divides the uncentred
    Σ (x_hat − x)²). It is scikit-learn's `explained_variance_score(x, x_hat,
    multioutput="variance_weighted")`; a constant offset of the reconstruction costs nothing. Zero
    total variance raises `ValueError`, as MET-3.

    >>> import numpy as np
    >>> x = np.array([[0.0, 4.0], [2.0, 6.0]])
    >>> float(explained_variance_centred_residual(x, x + 1.0)), float(explained_variance(x, x + 1.0))
    (1.0, 0.0)
    """
    _validate.finite(x=x, x_hat=x_hat)
    variance = total_variance(x)
    if np.any(variance == 0.0):
        raise ValueError("explained variance is undefined for a batch whose total variance is zero")
    return np.asarray(1.0 - total_variance(x - x_hat) / variance)
