"""Dead-latent detection (DEAD): fire counts, the fire-fraction rule and the steps-since-fired rule.

Per-latent results have shape `(*inst, d_sae)`; counts and steps are int64, dead masks bool. Nothing
here rounds: every result is exact, in every implementation (DEAD-5).
"""

from __future__ import annotations

import math

import numpy as np
from jaxtyping import Bool, Int, Int64

from refsae._typecheck import typechecked
from refsae.oracle import _validate
from refsae.oracle._shapes import LatentBatch

__all__ = [
    "dead_by_fire_fraction",
    "dead_by_fire_fraction_product_form",
    "dead_by_steps",
    "fire_counts",
    "update_steps_since_fired",
]

EQUIVALENCE_FUNCTIONS: tuple[str, ...] = ("dead_by_fire_fraction_product_form",)
"""Functions of `__all__` that define named equivalences (specs/equivalences.md), not operations: the
conformance suite's references only, so refsae.torch has no twin of them."""


def check_count(name: str, value: int, minimum: int) -> None:
    """Window sizes and step limits are plain integers >= `minimum` (DEAD-2, DEAD-4)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_threshold(threshold: float) -> None:
    """A fire-fraction threshold is a finite number in [0, 1) (DEAD-2)."""
    if isinstance(threshold, bool) or not (
        isinstance(threshold, int | float) and math.isfinite(threshold) and 0 <= threshold < 1
    ):
        raise ValueError(f"threshold must be a finite number in [0, 1), got {threshold!r}")


@typechecked
def fire_counts(f: LatentBatch) -> Int64[np.ndarray, "*inst d_sae"]:
    """Number of examples of the batch on which each latent fired, `#{b : f_bj > 0}` (DEAD-1).

    Firing is strictly positive: a latent selected with value 0 (TopK) or negative did not fire.

    >>> import numpy as np
    >>> fire_counts(np.array([[0.0, 1.0, -2.0], [0.0, 3.0, 0.5]])).tolist()
    [0, 2, 1]
    """
    _validate.nonempty_batch(f, "f")
    _validate.finite(f=f)
    return np.asarray(np.count_nonzero(f > 0, axis=0), dtype=np.int64)


@typechecked
def dead_by_fire_fraction(
    fire_counts: Int[np.ndarray, "*inst d_sae"], n_examples: int, threshold: float
) -> Bool[np.ndarray, "*inst d_sae"]:
    """Dead where the fire fraction over a window of `n_examples` examples is <= `threshold` (DEAD-2).

    The fraction is the float64 quotient `fire_counts / n_examples` (IEEE division, correctly
    rounded), compared with the float64 `threshold`; `threshold = 0` means "never fired" (MET-2).
    Counts must lie in `0 … n_examples`, `n_examples >= 1`, `0 <= threshold < 1`.

    >>> import numpy as np
    >>> dead_by_fire_fraction(np.array([0, 1, 3, 10]), 10, 0.3).tolist()
    [True, True, True, False]
    """
    check_count("n_examples", n_examples, 1)
    check_threshold(threshold)
    if np.any(fire_counts < 0):
        raise ValueError("fire_counts must be >= 0")
    if np.any(fire_counts > n_examples):
        raise ValueError(f"fire_counts must be <= n_examples ({n_examples}): a latent fires once per example")
    fraction = fire_counts.astype(np.float64) / np.float64(n_examples)
    return np.asarray(fraction <= threshold)


def dead_by_fire_fraction_product_form(
    fire_counts: Int[np.ndarray, "*inst d_sae"], n_examples: int, threshold: float
) -> Bool[np.ndarray, "*inst d_sae"]:
    """DEAD-2's other rule at its kink (`fire_fraction_product_form`, EQ-10): dead where
    `fire_counts <= threshold · n_examples`, the product rounded in float64 (sparse_autoencoder's
    `count <= int(n · threshold)` is the same for integer counts). It differs from the quotient only
    where `fire_counts / n_examples` equals `threshold` before rounding (63 fires in 90 examples at
    threshold 0.7: `0.7 · 90` rounds to 62.99999999999999).

    >>> import numpy as np
    >>> dead_by_fire_fraction(np.array([63]), 90, 0.7).tolist(), dead_by_fire_fraction_product_form(
    ...     np.array([63]), 90, 0.7).tolist()
    ([True], [False])
    """
    check_count("n_examples", n_examples, 1)
    check_threshold(threshold)
    return np.asarray(fire_counts <= np.float64(threshold) * np.float64(n_examples))


@typechecked
def update_steps_since_fired(
    steps_since: Int[np.ndarray, "*inst d_sae"], f: LatentBatch
) -> Int64[np.ndarray, "*inst d_sae"]:
    """One training step of the counter: 0 where the latent fired on any example of the batch,
    `steps_since + 1` elsewhere (DEAD-3). Steps count batches, not examples; counters start at 0.

    >>> import numpy as np
    >>> update_steps_since_fired(np.array([0, 4, 7]), np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])).tolist()
    [1, 0, 8]
    """
    _validate.nonempty_batch(f, "f")
    _validate.finite(f=f)
    if np.any(steps_since < 0):
        raise ValueError("steps_since must be >= 0")
    fired = np.any(f > 0, axis=0)
    return np.asarray(np.where(fired, 0, steps_since.astype(np.int64) + 1), dtype=np.int64)


@typechecked
def dead_by_steps(steps_since: Int[np.ndarray, "*inst d_sae"], n: int) -> Bool[np.ndarray, "*inst d_sae"]:
    """Dead where the latent has not fired for more than `n` steps: `steps_since > n` (DEAD-4).

    >>> import numpy as np
    >>> dead_by_steps(np.array([0, 5, 6]), 5).tolist()
    [False, False, True]
    """
    check_count("n", n, 0)
    if np.any(steps_since < 0):
        raise ValueError("steps_since must be >= 0")
    return np.asarray(steps_since > n)
