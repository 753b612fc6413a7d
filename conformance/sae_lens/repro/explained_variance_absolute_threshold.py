"""SAELens 6.54.12: ExplainedVarianceCalculator.compute (sae_lens/evals.py:438-442) returns 1.0 (or 0.0)
whenever the total variance is below the absolute threshold 1e-10, whatever the reconstruction, so the
explained variance of activations of scale 1e-6 is 1.0 for a reconstruction that explains 44 % of it
(MET-3 is invariant to rescaling x and x_hat together; a batch with zero variance is undefined, LOSS-8).
The calculator is what get_sparsity_and_variance_metrics reports as explained_variance."""

import numpy as np
import torch
from sae_lens.evals import ExplainedVarianceCalculator

x = np.array([[1.0, 0.0], [0.0, 3.0], [2.0, 1.0]])
x_hat = 0.5 * x  # explains 1 − Σ(x/2)² / Σ(x − μ)² = 0.4375 of the variance, at every scale
failed = False
for scale in (1.0, 1e-6):
    xs, hats = scale * x, scale * x_hat
    expected = float(1 - ((xs - hats) ** 2).sum() / ((xs - xs.mean(0)) ** 2).sum())  # MET-3
    calculator = ExplainedVarianceCalculator()
    calculator.add_batch(sae_output=torch.tensor(hats), hidden_acts=torch.tensor(xs))
    actual = calculator.compute()
    print(f"scale {scale}: expected {expected:.6f}, ExplainedVarianceCalculator {actual:.6f}")
    failed |= not np.isclose(actual, expected)
print("BUG REPRODUCED" if failed else "fixed")
raise SystemExit(1 if failed else 0)
