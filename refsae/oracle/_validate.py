"""Value checks shared by the oracle functions (shapes and dtypes are checked by jaxtyping)."""

from __future__ import annotations

import numpy as np

from refsae._typecheck import CHECKS_ENABLED


def finite(**arrays: np.ndarray) -> None:
    """Raise `ValueError` naming the first array that holds NaN or ±Inf (NOT-5)."""
    if not CHECKS_ENABLED:
        return
    for name, a in arrays.items():
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or Inf; refsae operations are defined on finite inputs")


def nonempty_batch(x: np.ndarray, name: str = "x") -> None:
    """Raise `ValueError` when the batch axis (axis 0) is empty (NOT-6)."""
    if x.shape[0] == 0:
        raise ValueError(
            f"{name} has an empty batch (shape {x.shape}); every batch reduction needs batch >= 1"
        )
