"""BatchTopKTrainer.geometric_median, the same Weiszfeld code as trainers.top_k.geometric_median (weights
1/||x_b - y||, no coincidence guard), returns NaN when an iterate equals a data point: 1/0 = inf,
inf/inf = NaN (dictionary_learning/trainers/batch_top_k.py:306-307).
BatchTopKTrainer.update calls it on the first batch to initialise b_dec.

INIT-2: the geometric median minimises sum_b ||x_b - y||; it is never NaN for finite input; one point
returns that point. INIT-4: points equal to the iterate are left out of the Weiszfeld step.
"""

import numpy as np
import torch
from dictionary_learning.trainers.batch_top_k import BatchTopKTrainer

geometric_median = BatchTopKTrainer.geometric_median  # a staticmethod

cases = {
    # the suite's shrunk case: a batch of one point (the median is that point)
    "one point": np.array([[0.1257302165031433]]),
    # five points whose mean, the first iterate, is one of them; by symmetry the median is (0, 0)
    "mean is a data point": np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]),
}
expected = {"one point": np.array([0.1257302165031433]), "mean is a data point": np.array([0.0, 0.0])}

bug = False
for name, x in cases.items():
    for dtype in (torch.float32, torch.float64):
        actual = geometric_median(torch.tensor(x, dtype=dtype)).numpy()
        print(f"{name} [{dtype}]  expected: {expected[name]}  actual: {actual}")
        # the bug is a NaN; 1e-6 only absorbs the float32 run's rounding (a few float32 ulps)
        bug |= not np.allclose(actual, expected[name], rtol=1e-6, atol=1e-6)

print("BUG REPRODUCED" if bug else "fixed")
raise SystemExit(1 if bug else 0)
