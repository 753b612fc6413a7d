"""Error bounds for resampling (RES-1..RES-3), for the tolerance rule (TOL-1, TOL-4). NumPy only.

The dead-latent operations (DEAD) are exact and need no bound. The resampling probabilities are
counted step by step as `refsae.torch.resampling_probabilities` computes them:

    r = x_hat − x,  r²,  R_b = Σ_d r²                        (reconstruction)
    S_b = Σ_j |f_j|,  λ·S_b,  ℓ_b = R_b + λ S_b              (total only)
    m = max_b ℓ_b,  q_b = ℓ_b / m,  q_b²,  s = Σ_b q_b²,  p_b = q_b² / s

Each quotient by a computed denominator uses its first-order error (TOL-4):
`|Δ(N/D)| <= |ΔN|/D + |N|·|ΔD|/D²`. The maximum is exact, so `|Δm| <= max_b |Δℓ_b|`.
"""

from __future__ import annotations

import numpy as np

from refsae.tolerances import Bound, add, leaf, mul


def per_example_loss(
    x: np.ndarray, x_hat: np.ndarray, f: np.ndarray, loss: str, l1_coefficient: float
) -> Bound:
    """ℓ_b: d_in squared residuals summed (each residual and square stored), plus under `total` the
    d_sae-term sum of |f| times λ (λ rounded once to the accumulation dtype, as in `bounds.total_loss`)."""
    r = add(np.abs(x_hat) + np.abs(x), leaf(x_hat), leaf(x), k_store=1)
    square = mul(r.magnitude**2, r, r, k_store=1)
    reconstruction = add(square.magnitude.sum(axis=-1), square, k_acc=x.shape[-1], k_store=1)
    if loss == "reconstruction":
        return reconstruction
    l1 = add(np.abs(f).sum(axis=-1), leaf(f), k_acc=f.shape[-1], k_store=1)
    penalty = l1.then(l1_coefficient * l1.magnitude, k_acc=1, k_store=1)
    return add(reconstruction.magnitude + penalty.magnitude, reconstruction, penalty, k_store=1)


def resampling_probabilities(
    x: np.ndarray, x_hat: np.ndarray, f: np.ndarray, ell: np.ndarray, loss: str, l1_coefficient: float
) -> Bound:
    """p_b = q_b² / Σ_c q_c², q_b = ℓ_b / max ℓ; `ell` is the oracle's (float64) per-example loss.

    An instance whose every ℓ_b is 0 computes ℓ = 0 exactly in any dtype (its residuals and
    penalties are exact zeros), takes q = 1 and p = 1/B: one rounding of 1/B, covered by the same
    chains with magnitude 1/B.
    """
    batch = x.shape[0]
    loss_bound = per_example_loss(x, x_hat, f, loss, l1_coefficient)
    m = ell.max(axis=0, keepdims=True)
    zero = m == 0
    safe_m = np.where(zero, 1.0, m)
    largest = Bound(loss_bound.magnitude.max(axis=0, keepdims=True), loss_bound.k_acc, loss_bound.k_store)
    q_value = np.where(zero, 1.0, ell / safe_m)
    q_magnitude = np.where(zero, 1.0, loss_bound.magnitude / safe_m + ell * largest.magnitude / safe_m**2)
    q = add(q_magnitude, loss_bound, largest, k_store=1)
    square = mul(q.magnitude**2, q, q, k_store=1)
    s_value = (q_value**2).sum(axis=0, keepdims=True)
    s = add(square.magnitude.sum(axis=0, keepdims=True), square, k_acc=batch, k_store=1)
    magnitude = square.magnitude / s_value + q_value**2 * s.magnitude / s_value**2
    return add(magnitude, square, s, k_store=1)
