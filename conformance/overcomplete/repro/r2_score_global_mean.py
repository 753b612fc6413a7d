"""overcomplete 0.3.0: metrics.r2_score (the R2 train_sae logs) centres x by the mean of ALL its
entries instead of each dimension's batch mean (MET-3; its docstring: "a score of 0 indicates that
the reconstruction is as good as the mean"), and adds an absolute 1e-6 to the variance.

overcomplete/metrics.py:338: ss_tot = torch.mean((x - x.mean()) ** 2)."""

import importlib.util
import sys
import types

import numpy as np
import torch

# import overcomplete.metrics without the package's __init__ (it imports torchvision)
spec = importlib.util.find_spec("overcomplete")
package = types.ModuleType("overcomplete")
package.__path__ = list(spec.submodule_search_locations)
sys.modules["overcomplete"] = package
from overcomplete.metrics import r2_score  # noqa: E402

# the reconstruction that predicts each dimension's batch mean (what a constant decoder bias gives)
x = np.array([[0.0, 4.0], [2.0, 6.0]])
x_hat = np.repeat(x.mean(axis=0, keepdims=True), 2, axis=0)  # [[1, 5], [1, 5]]

# MET-3 / LOSS-3: EV = 1 - sum (x_hat - x)^2 / sum (x - mu_d)^2, mu_d the per-dimension mean
expected = 1 - ((x_hat - x) ** 2).sum() / ((x - x.mean(axis=0)) ** 2).sum()
actual = float(r2_score(torch.tensor(x), torch.tensor(x_hat)))
print("expected:", expected)  # 0.0: as good as the mean
print("actual:  ", actual)  # 0.8 (1 - 1/5: the spread between the dimension means is "explained")
bug = abs(actual - expected) > 1e-3
print("BUG REPRODUCED" if bug else "fixed")
raise SystemExit(1 if bug else 0)
