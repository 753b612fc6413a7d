"""Error bounds of the `b_dec` initialisations (INIT-10, INIT-11), for the tolerance rule (TOL-1).

`b_dec_mean` is an ordinary reduction. The geometric median is checked through its objective
`f(y) = Σ_b ‖x_b − y‖` (INIT-11): the minimiser may be ill-conditioned where `f` is flat, so two
correct results can differ by far more than rounding while their objectives agree. NumPy only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from refsae.oracle import init as oracle_init
from refsae.tolerances import ACCUMULATOR, UNIT_ROUNDOFF, Bound, add, gamma, leaf

if TYPE_CHECKING:  # refsae.torch.init imports this module: keep it free of torch and hypothesis
    from refsae.cases import Case


def b_dec_mean(x: np.ndarray) -> Bound:
    """(1/B) Σ_b x_b: a B-term sum and a division (k_acc = B + 1), stored once (INIT-10)."""
    return add(np.abs(x).mean(axis=0), leaf(x), k_acc=x.shape[0] + 1, k_store=1)


def weiszfeld_step_chain(batch: int, d_in: int) -> int:
    """Rounding chain of one Vardi–Zhang step y ← (1 − β) T + β y, T = Σ w_b x_b / Σ w_b (TOL-4):
    x_b − y (1), its square (3), a d_in-term sum and a square root (d_in + 4), w_b = min/‖·‖
    (chains add: 2 d_in + 9), w_b x_b (2 d_in + 10), the B-term sums (2 d_in + B + 10 and
    2 d_in + B + 9), their quotient (4 d_in + 2B + 20), the mixing with β (4 d_in + 2B + 22)."""
    return 4 * d_in + 2 * batch + 22


def geometric_median_objective(x: np.ndarray, gap: np.ndarray, dtype: str) -> Bound:
    """Allowed |f(y_impl) − f(y_oracle)| per instance (INIT-11), all of it derived:

    - rounding: a result computed in `dtype` is the fixed point of a step whose every coordinate
      errs by at most `[γ(1, u) + γ(k, u_acc) + γ(1 + k, u_64)] · m_j` (k = `weiszfeld_step_chain`,
      one final rounding to the dtype, `m_j = max_b |x_bj|` bounding the step's magnitude
      `Σ w_b |x_bj| / Σ w_b`), and `f` is B-Lipschitz: `|f(y + δ) − f(y)| ≤ B ‖δ‖`, so
      `M = B ‖m‖`;
    - the oracle's certified gap `G = certified_gap(x, y_oracle)` (≤ tol · f when it converged,
      INIT-6): a correct result may be better than the oracle's by up to G;
    - float64 evaluation: the two objectives and the certificate are each evaluated with an error
      of at most `γ(d_in + B + 4, u_64) · 2M` (`f ≤ Σ_b (‖x_b‖ + ‖y‖) ≤ 2M`).

    The Bound carries the absolute terms as extra magnitude, `M + (G + 6 γ(·, u_64) M) / factor`,
    so that the tolerance rule's `factor · magnitude` is exactly their sum.
    """
    batch, d_in = x.shape[0], x.shape[-1]
    M = batch * np.linalg.norm(np.abs(x).max(axis=0), axis=-1)
    k_acc, k_store = weiszfeld_step_chain(batch, d_in), 1
    u, u_acc, u64 = UNIT_ROUNDOFF[dtype], UNIT_ROUNDOFF[ACCUMULATOR[dtype]], UNIT_ROUNDOFF["float64"]
    factor = gamma(k_store, u) + gamma(k_acc, u_acc) + gamma(k_store + k_acc, u64)
    evaluation = 6 * gamma(d_in + batch + 4, u64) * M
    return Bound(np.asarray(M + (np.asarray(gap) + evaluation) / factor), k_acc, k_store)


def objective_projection(case: Case, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The geometric-median row's `compare_via` (INIT-11): the returned point `b_dec` is replaced by
    its float64 objective `Σ_b ‖x_b − b_dec‖`; its certified gap rides along (not compared) for the
    bound. Applied to both sides."""
    x, y = case.arrays["x"], np.asarray(out["b_dec"], dtype=np.float64)
    return {
        "b_dec": oracle_init.geometric_median_objective(x, y),
        "certified_gap": oracle_init.certified_gap(x, y),
    }


def geometric_median(case: Case, projected: dict[str, np.ndarray]) -> dict[str, Bound | None]:
    """The row's bounds: the objective bound above, with the oracle's certified gap."""
    return {"b_dec": geometric_median_objective(case.arrays["x"], projected["certified_gap"], case.dtype)}
