"""Pearson's chi-square goodness-of-fit test in pure Python, for the sampler tests (RES-6).

The survival function of the chi-square distribution with `k` degrees of freedom is the regularized
upper incomplete gamma function, `sf(x; k) = Q(k/2, x/2)`, computed here by its power series for
`x < a + 1` and by its continued fraction (modified Lentz) otherwise (Numerical Recipes §6.2; both
converge to full float64 precision in that split). The critical value for a false-alarm rate `α` is
the root of `sf(x; k) = α`, found by bisection. No SciPy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

FALSE_ALARM = 1e-6
"""The probability that one goodness-of-fit test of a correct sampler fails (per statistic): with
fixed seeds every run sees the same draws, so this is the chance that the chosen seed is unlucky."""

MIN_EXPECTED = 5.0
"""Cochran's rule: every cell expects at least 5 draws, so the chi-square approximation holds."""

_TINY = 1e-300
_ITERATIONS = 10_000


def _log_prefactor(a: float, x: float) -> float:
    return -x + a * math.log(x) - math.lgamma(a)


def _lower_series(a: float, x: float) -> float:
    """P(a, x) = e^{-x} x^a / Γ(a) · Σ_n x^n / (a (a+1) … (a+n)); for x < a + 1."""
    term = total = 1.0 / a
    denominator = a
    for _ in range(_ITERATIONS):
        denominator += 1.0
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * 2.0**-53:
            break
    return total * math.exp(_log_prefactor(a, x))


def _upper_fraction(a: float, x: float) -> float:
    """Q(a, x) by its continued fraction (modified Lentz); for x >= a + 1."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _ITERATIONS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 2.0**-53:
            break
    return math.exp(_log_prefactor(a, x)) * h


def upper_regularized_gamma(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a), for a > 0 and x >= 0."""
    if a <= 0 or x < 0:
        raise ValueError(f"Q(a, x) needs a > 0 and x >= 0, got a={a}, x={x}")
    if x == 0:
        return 1.0
    if x < a + 1.0:
        return 1.0 - _lower_series(a, x)
    return _upper_fraction(a, x)


def chi2_sf(x: float, dof: int) -> float:
    """P(X > x) for X ~ chi-square with `dof` degrees of freedom."""
    return upper_regularized_gamma(dof / 2.0, x / 2.0) if x > 0 else 1.0


def chi2_critical(alpha: float, dof: int) -> float:
    """The x with P(X > x) = alpha (the upper alpha quantile), by bisection to float64 resolution."""
    if not (0 < alpha < 1) or dof < 1:
        raise ValueError(f"need 0 < alpha < 1 and dof >= 1, got alpha={alpha}, dof={dof}")
    lo, hi = 0.0, float(dof) + 10.0
    while chi2_sf(hi, dof) > alpha:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if chi2_sf(mid, dof) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def goodness_of_fit(counts: Sequence[int] | np.ndarray, probabilities: Sequence[float] | np.ndarray) -> str:
    """Pearson's test that `counts` are multinomial(sum, probabilities), at `FALSE_ALARM`.

    Cells of probability 0 must have count 0 (any draw there is an outright failure); the others
    form the statistic `Σ (O − E)² / E` with `cells − 1` degrees of freedom. Returns "" when the
    counts pass, otherwise a message with the statistic, the critical value and the worst cell.
    """
    o = np.asarray(counts, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    p = p / p.sum()
    if np.any(o[p == 0] > 0):
        return f"draws in cells of probability 0: {np.nonzero((p == 0) & (o > 0))[0].tolist()}"
    o, p = o[p > 0], p[p > 0]
    expected = o.sum() * p
    if expected.min() < MIN_EXPECTED:
        raise ValueError(f"a cell expects {expected.min():.3g} < {MIN_EXPECTED} draws: draw more")
    if p.size == 1:
        return ""
    contributions = (o - expected) ** 2 / expected
    statistic = float(contributions.sum())
    critical = chi2_critical(FALSE_ALARM, p.size - 1)
    if statistic <= critical:
        return ""
    worst = int(np.argmax(contributions))
    return (
        f"chi-square {statistic:.4g} > {critical:.4g} (dof {p.size - 1}, false alarm {FALSE_ALARM:g}); "
        f"worst cell {worst}: observed {o[worst]:.0f}, expected {expected[worst]:.1f}"
    )
