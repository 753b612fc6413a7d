"""Error bounds of the BatchTopK threshold update (BTOPK-5, TOL-4). The minimum is a copy (exact);
`mean`: θ + (m − θ)/(n + 1), a difference, a quotient and a sum, each stored; `ema`: β θ + (1 − β) m,
two products (β and 1 − β in the accumulation dtype) and a sum."""

from __future__ import annotations

import numpy as np

from refsae.tolerances import Bound


def update_threshold(threshold: np.ndarray, m: np.ndarray, n_batches: int, update: str, beta: float) -> Bound:
    t, m = np.abs(threshold), np.abs(m)
    if update == "mean":
        return Bound(t + (t + m) / (n_batches + 1), 0, 3)
    return Bound(beta * t + (1 - beta) * m, 2, 3)
