"""One test helper: do two float64 computations of the same real value agree (TOL-1 at float64)?"""

from __future__ import annotations

import numpy as np

from refsae.checking.tolerances import UNIT_ROUNDOFF, gamma


def agree(a: np.ndarray, b: np.ndarray, magnitude: np.ndarray, chain: int) -> bool:
    """Each of `a` and `b` is within γ(chain, u_float64) · magnitude of the exact value (TOL-1 with the
    rounding chain `chain` of the longer computation, TOL-4's magnitude), so they differ by at most
    twice that."""
    allowed = 2 * gamma(chain, UNIT_ROUNDOFF["float64"]) * np.asarray(magnitude)
    return bool(np.all(np.abs(np.asarray(a) - np.asarray(b)) <= allowed))
