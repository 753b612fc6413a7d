"""Resampling dead latents (RES): which examples to draw, and the draw itself.

Anthropic's rule picks each replacement direction from an example drawn with probability
proportional to the square of the SAE's loss on it. This module defines the per-example loss
(RES-1), the probabilities (RES-2, RES-3) and a NumPy sampler (RES-4, RES-5), all per instance over
the batch axis. The parameter update that uses the drawn examples is specified separately
(specs/resampling.md, "Parameter update").
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
from jaxtyping import Float64, Int64

from refsae._typecheck import typechecked
from refsae.conventions import check_choice, check_coefficient
from refsae.oracle import _validate
from refsae.oracle._shapes import InputBatch, LatentBatch

__all__ = ["per_example_loss", "resampling_probabilities", "sample_examples"]

ResamplingLoss = Literal["total", "reconstruction"]
RESAMPLING_LOSS: tuple[str, ...] = get_args(ResamplingLoss)


@typechecked
def per_example_loss(
    x: InputBatch,
    x_hat: InputBatch,
    f: LatentBatch,
    *,
    l1_coefficient: float,
    loss: ResamplingLoss = "total",
) -> Float64[np.ndarray, "batch *inst"]:  # noqa: F821 (jaxtyping dims, not names)
    """The loss of each example (RES-1): `Σ_d (x_hat − x)²`, plus `λ Σ_j |f_j|` under `total`.

    Under `reconstruction` the coefficient is checked (LOSS-7) but not used.

    >>> import numpy as np
    >>> x = np.array([[0.0, 0.0], [1.0, 1.0]]); f = np.array([[2.0], [0.0]])
    >>> per_example_loss(x, np.ones((2, 2)), f, l1_coefficient=0.5).tolist()
    [3.0, 0.0]
    >>> per_example_loss(x, np.ones((2, 2)), f, l1_coefficient=0.5, loss="reconstruction").tolist()
    [2.0, 0.0]
    """
    check_choice("loss", loss, RESAMPLING_LOSS)
    check_coefficient("l1_coefficient", l1_coefficient)
    _validate.nonempty_batch(x)
    _validate.finite(x=x, x_hat=x_hat, f=f)
    reconstruction = ((x_hat - x) ** 2).sum(axis=-1)
    if loss == "reconstruction":
        return np.asarray(reconstruction)
    return np.asarray(reconstruction + l1_coefficient * np.abs(f).sum(axis=-1))


@typechecked
def resampling_probabilities(
    x: InputBatch,
    x_hat: InputBatch,
    f: LatentBatch,
    *,
    l1_coefficient: float,
    loss: ResamplingLoss = "total",
) -> Float64[np.ndarray, "batch *inst"]:  # noqa: F821 (jaxtyping dims, not names)
    """`p_b = ℓ_b² / Σ_c ℓ_c²` over the batch, per instance (RES-2); uniform `1/B` where every
    `ℓ_b = 0` (RES-3). Computed as `(ℓ_b/m)² / Σ_c (ℓ_c/m)²` with `m = max_c ℓ_c`: no square can
    overflow or underflow to a 0/0. A per-example loss that overflows raises `ValueError`.

    >>> import numpy as np
    >>> x = np.zeros((3, 2)); x_hat = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    >>> resampling_probabilities(x, x_hat, np.zeros((3, 1)), l1_coefficient=0.0).tolist()
    [0.058823529411764705, 0.9411764705882353, 0.0]
    >>> resampling_probabilities(x, x, np.zeros((3, 1)), l1_coefficient=0.0).tolist()
    [0.3333333333333333, 0.3333333333333333, 0.3333333333333333]
    """
    with np.errstate(over="ignore"):  # an overflow becomes the ValueError below
        ell = per_example_loss(x, x_hat, f, l1_coefficient=l1_coefficient, loss=loss)
    if not np.all(np.isfinite(ell)):
        raise ValueError("the per-example loss overflows in float64; rescale the inputs")
    m = ell.max(axis=0, keepdims=True)
    q = np.where(m > 0, ell / np.where(m > 0, m, 1.0), 1.0)
    squares = q * q
    return np.asarray(squares / squares.sum(axis=0, keepdims=True))


def _check_weights(probabilities: np.ndarray, n: int, replacement: bool) -> None:
    """The sampler's input rules (RES-4, RES-5)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    _validate.nonempty_batch(probabilities, "probabilities")
    _validate.finite(probabilities=probabilities)
    if np.any(probabilities < 0):
        raise ValueError("probabilities must be >= 0")
    if np.any(probabilities.sum(axis=0) <= 0):
        raise ValueError("every instance needs an example with probability > 0")
    if not replacement:
        positive = int(np.min(np.count_nonzero(probabilities > 0, axis=0)))
        if n > positive:
            raise ValueError(
                f"cannot draw n={n} examples without replacement: an instance has only {positive} "
                "examples with probability > 0 (draw with replacement instead)"
            )


def _inverse_cdf(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Indices `i` with `cdf[i-1] <= u < cdf[i]`, `cdf` the normalised cumulative weights; an index
    of weight 0 is never returned (its cdf step is empty)."""
    cdf = np.cumsum(weights)
    cdf = cdf / cdf[-1]
    return np.searchsorted(cdf, u, side="right").astype(np.int64)


@typechecked
def sample_examples(
    probabilities: Float64[np.ndarray, "batch *inst"],  # noqa: F821 (jaxtyping dims, not names)
    n: int,
    *,
    replacement: bool,
    generator: np.random.Generator,
) -> Int64[np.ndarray, "*inst n_samples"]:
    """Draw `n` batch indices per instance from `probabilities` (normalised per instance) (RES-4).

    With replacement the draws are independent; without, they are successive: each draw comes from
    the probabilities of the examples not yet drawn, renormalised. Without replacement `n` may not
    exceed the number of examples of positive probability (RES-5). Instances are drawn one after
    another (C order), each taking `n` uniform variates from `generator` in turn.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> sample_examples(np.array([0.0, 1.0, 0.0]), 4, replacement=True, generator=rng).tolist()
    [1, 1, 1, 1]
    >>> sorted(sample_examples(np.array([0.2, 0.5, 0.3]), 3, replacement=False, generator=rng).tolist())
    [0, 1, 2]
    """
    _check_weights(probabilities, n, replacement)
    inst = probabilities.shape[1:]
    out = np.zeros((*inst, n), dtype=np.int64)
    for index in np.ndindex(*inst):
        weights = probabilities[(slice(None), *index)].copy()
        if replacement:
            out[index] = _inverse_cdf(weights, generator.random(n))
            continue
        for k in range(n):
            chosen = int(_inverse_cdf(weights, generator.random(1))[0])
            out[(*index, k)] = chosen
            weights[chosen] = 0.0
    return out
