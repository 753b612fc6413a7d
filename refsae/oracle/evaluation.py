"""Evaluation metrics (EVAL): the numbers SAEs are compared by in SAEBench and SAELens's evals,
each with one definition (specs/evaluation.md). Per-instance results have shape `*inst`; the
feature density has shape `(*inst, d_sae)`.

The mean squared error is `reconstruction_loss` (`sum` or `mean`, LOSS-1, LOSS-2) and the explained
variance `explained_variance` (MET-3): EVAL-1 says which is which, so they have no second function.
"""

from __future__ import annotations

import numpy as np

from refsae._typecheck import typechecked
from refsae.oracle import _validate
from refsae.oracle._shapes import InputBatch, LatentBatch, LatentVector, PerInstance

__all__ = [
    "cosine_similarity",
    "explained_variance_per_token",
    "feature_density",
    "feature_density_positive",
    "fraction_above",
    "l2_ratio",
    "l2_ratio_guarded",
    "relative_reconstruction_bias",
]

EQUIVALENCE_FUNCTIONS: tuple[str, ...] = ("feature_density_positive", "l2_ratio_guarded")
"""Functions of `__all__` that define named equivalences (specs/equivalences.md), not operations:
the conformance suite's references only, so refsae.torch has no twin of them."""

SAEBENCH_NORM_GUARD = 1e-4
"""SAEBench's and SAELens's `l2_ratio` divide by 1 where ‖x_b‖ < 1e-4 (EQ-13)."""


def _norms(a: np.ndarray, name: str, what: str) -> np.ndarray:
    """‖a_b‖ over the last axis; `ValueError` naming `name` where one is exactly 0 (`what` is undefined)."""
    norms = np.linalg.norm(a, axis=-1)
    if np.any(norms == 0.0):
        raise ValueError(f"{what} is undefined for a token whose {name} is the zero vector (‖{name}_b‖ = 0)")
    return np.asarray(norms)


def _pair(x: np.ndarray, x_hat: np.ndarray) -> None:
    _validate.nonempty_batch(x)
    _validate.finite(x=x, x_hat=x_hat)


@typechecked
def cosine_similarity(x: InputBatch, x_hat: InputBatch) -> PerInstance:
    """Mean over the batch of cos(x_b, x_hat_b) = ⟨x_b, x_hat_b⟩ / (‖x_b‖ ‖x_hat_b‖) (EVAL-2); a token
    with ‖x_b‖ = 0 or ‖x_hat_b‖ = 0 raises `ValueError`.

    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> float(cosine_similarity(x, np.array([[3.0, 0.0], [1.0, 0.0]])))
    0.5
    """
    _pair(x, x_hat)
    dots = np.sum(x * x_hat, axis=-1)
    cos = dots / (_norms(x, "x", "cosine_similarity") * _norms(x_hat, "x_hat", "cosine_similarity"))
    return np.asarray(cos.mean(axis=0), dtype=np.float64)


@typechecked
def l2_ratio(x: InputBatch, x_hat: InputBatch) -> PerInstance:
    """Mean over the batch of ‖x_hat_b‖ / ‖x_b‖ (EVAL-3); a token with ‖x_b‖ = 0 raises `ValueError`.

    >>> import numpy as np
    >>> float(l2_ratio(np.array([[3.0, 4.0], [1.0, 0.0]]), np.array([[0.0, 5.0], [0.5, 0.0]])))
    0.75
    """
    _pair(x, x_hat)
    ratio = np.linalg.norm(x_hat, axis=-1) / _norms(x, "x", "l2_ratio")
    return np.asarray(ratio.mean(axis=0), dtype=np.float64)


@typechecked
def l2_ratio_guarded(x: InputBatch, x_hat: InputBatch) -> PerInstance:
    """SAEBench's `l2_ratio` (`sae_bench/evals/core/main.py`, also SAELens's `evals.py`): as
    `l2_ratio`, but a token with ‖x_b‖ < 1e-4 is divided by 1 instead (EQ-13); it equals `l2_ratio`
    on every batch whose tokens all have ‖x_b‖ >= 1e-4.

    >>> import numpy as np
    >>> x, x_hat = np.array([[3.0, 4.0], [1e-5, 0.0]]), np.array([[0.0, 5.0], [1e-5, 0.0]])
    >>> float(l2_ratio_guarded(x, x_hat)), float(l2_ratio(x, x_hat))
    (0.500005, 1.0)
    """
    _pair(x, x_hat)
    norms = np.linalg.norm(x, axis=-1)
    ratio = np.linalg.norm(x_hat, axis=-1) / np.where(norms < SAEBENCH_NORM_GUARD, 1.0, norms)
    return np.asarray(ratio.mean(axis=0), dtype=np.float64)


@typechecked
def relative_reconstruction_bias(x: InputBatch, x_hat: InputBatch) -> PerInstance:
    """γ = E_b ‖x_hat_b‖² / E_b ⟨x_b, x_hat_b⟩ (EVAL-4; Rajamanoharan et al. 2024, eq. 10): 1 for an
    unbiased scale, < 1 for a shrunk reconstruction. E_b ⟨x_b, x_hat_b⟩ = 0 raises `ValueError`.

    >>> import numpy as np
    >>> x = np.array([[2.0, 0.0], [0.0, 4.0]])
    >>> float(relative_reconstruction_bias(x, 0.5 * x))
    0.5
    """
    _pair(x, x_hat)
    numerator = np.mean(np.sum(x_hat**2, axis=-1), axis=0)
    denominator = np.mean(np.sum(x * x_hat, axis=-1), axis=0)
    if np.any(denominator == 0.0):
        raise ValueError("relative_reconstruction_bias is undefined where E_b ⟨x_b, x_hat_b⟩ = 0")
    return np.asarray(numerator / denominator, dtype=np.float64)


@typechecked
def explained_variance_per_token(x: InputBatch, x_hat: InputBatch) -> PerInstance:
    """Mean over the batch of 1 − ‖x_b − x_hat_b‖² / ‖x_b − μ‖², μ the per-dimension batch mean
    (EVAL-5): SAEBench's `explained_variance_legacy`, the formula of its paper's numbers; not
    `explained_variance` (MET-3), which divides the batch totals. A token at the batch mean
    (‖x_b − μ‖ = 0, e.g. a batch of 1) raises `ValueError`.

    >>> import numpy as np
    >>> x = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 6.0]])  # μ = (2, 2)
    >>> x_hat = np.array([[0.0, 2.0], [2.0, 0.0], [4.0, 6.0]])
    >>> float(explained_variance_per_token(x, x_hat))  # (1 − 4/8 + 1 − 0/4 + 1 − 0/20) / 3
    0.8333333333333334
    """
    _pair(x, x_hat)
    spread = np.sum((x - x.mean(axis=0, keepdims=True)) ** 2, axis=-1)
    if np.any(spread == 0.0):
        raise ValueError(
            "explained_variance_per_token is undefined for a token equal to the batch mean "
            "(‖x_b − μ‖ = 0; e.g. a batch of 1)"
        )
    residual = np.sum((x - x_hat) ** 2, axis=-1)
    return np.asarray(np.mean(1.0 - residual / spread, axis=0), dtype=np.float64)


@typechecked
def feature_density(f: LatentBatch) -> LatentVector:
    """Fraction of the batch's tokens on which each latent fires, f_bj ≠ 0 (EVAL-6), float64 and exact;
    its mean over latents is L0 / d_sae (MET-1).

    >>> import numpy as np
    >>> feature_density(np.array([[0.0, 1.0, -2.0], [0.0, 0.0, 3.0]])).tolist()
    [0.0, 0.5, 1.0]
    """
    _validate.nonempty_batch(f, "f")
    _validate.finite(f=f)
    return np.asarray(np.count_nonzero(f, axis=0) / f.shape[0], dtype=np.float64)


@typechecked
def feature_density_positive(f: LatentBatch) -> LatentVector:
    """SAEBench's density (`sae_bench/evals/core/main.py`): a latent fires where f_bj > 0 (EQ-14); it
    equals `feature_density` on non-negative latents (ReLU, TopK, JumpReLU), not on signed ones
    (AbsTopK).

    >>> import numpy as np
    >>> feature_density_positive(np.array([[0.0, 1.0, -2.0], [0.0, 0.0, 3.0]])).tolist()
    [0.0, 0.5, 0.5]
    """
    _validate.nonempty_batch(f, "f")
    _validate.finite(f=f)
    return np.asarray(np.count_nonzero(f > 0, axis=0) / f.shape[0], dtype=np.float64)


def check_density(density: float) -> None:
    """A density threshold is a finite float in [0, 1) (EVAL-7)."""
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0.0 <= density < 1.0:
        raise ValueError(f"density must be a number in [0, 1), got {density!r}")


@typechecked
def fraction_above(f: LatentBatch, *, density: float = 0.0) -> PerInstance:
    """Fraction of latents whose density (EVAL-6) exceeds `density`, strictly (EVAL-7): `density = 0`
    is SAEBench's `frac_alive`, 0.01 and 0.1 its `freq_over_1_percent` and `freq_over_10_percent`.

    >>> import numpy as np
    >>> f = np.array([[0.0, 1.0, 2.0, 0.0], [0.0, 0.0, 3.0, 0.0]])  # densities 0, 0.5, 1, 0
    >>> float(fraction_above(f)), float(fraction_above(f, density=0.5))
    (0.5, 0.25)
    """
    check_density(density)
    return np.asarray(np.mean(feature_density(f) > density, axis=-1), dtype=np.float64)
