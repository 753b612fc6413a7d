"""saev 0.1.0: SparseAutoencoder.normalize_w_dec divides every row of W_dec by its norm with no guard,
so an all-zero row becomes NaN (0/0) instead of staying zero (CON-2; the non-zero rows come out unit,
CON-1)."""

import numpy as np
import torch
from saev.config import SparseAutoencoder as Config
from saev.nn import SparseAutoencoder

W_dec = np.array([[3.0, 4.0], [0.0, 0.0]])  # d_sae = 2 rows, d_in = 2; row 1 is zero

# Expected (numpy): CON-1 w / ||w|| for a non-zero row; CON-2 a zero row stays zero.
norms = np.linalg.norm(W_dec, axis=1, keepdims=True)
expected = np.where(norms > 0, W_dec / np.where(norms > 0, norms, 1.0), 0.0)

# Actual: the library's method on an SAE holding W_dec (normalize_w_dec=True is saev's default).
sae = SparseAutoencoder(Config(d_vit=2, exp_factor=1))
sae.W_dec = torch.nn.Parameter(torch.tensor(W_dec))
sae.normalize_w_dec()
actual = sae.W_dec.detach().numpy()

print("expected:", expected.tolist())
print("actual:  ", actual.tolist())
bug = not np.array_equal(np.isnan(actual), np.isnan(expected)) or not np.allclose(actual, expected)
print("BUG REPRODUCED" if bug else "fixed")
raise SystemExit(1 if bug else 0)
