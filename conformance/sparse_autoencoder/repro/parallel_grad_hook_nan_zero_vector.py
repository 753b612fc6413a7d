"""sparse_autoencoder 1.10.0: UnitNormDecoder's gradient hook turns the gradient of a zero
dictionary vector into NaN (PAR-3: a zero row keeps its gradient unchanged).

The hook (autoencoder/components/unit_norm_decoder.py:251) divides the weight by its column norms
with no guard, so a zero column gives 0/0."""

import numpy as np
import torch
import torch.optim.optimizer as _opt
import torch.serialization as _ser
import torch.types as _types

if not hasattr(_ser, "FILE_LIKE"):  # torch >= 2.6 renamed two names the library imports
    _ser.FILE_LIKE = _types.FileLike
if not hasattr(_opt, "params_t"):
    _opt.params_t = _opt.ParamsT
from sparse_autoencoder.autoencoder.components.unit_norm_decoder import UnitNormDecoder

# 2 learned features, d_in = 2, no component axis; the library stores dictionary vectors as columns
decoder = UnitNormDecoder(learnt_features=2, decoded_features=2, n_components=None)
W = np.array([[0.6, 0.0], [0.8, 0.0]])  # column 0: unit vector, column 1: zero vector
G = np.array([[1.0, 2.0], [3.0, 4.0]])  # raw gradient of the loss w.r.t. the weight
decoder.weight.data = torch.tensor(W)
# autograd hands G to the hook registered by UnitNormDecoder(enable_gradient_hook=True), the default
(decoder.weight * torch.tensor(G)).sum().backward()
actual = decoder.weight.grad.numpy()

# PAR-1: g - (g.w / |w|^2) w for a non-zero vector; PAR-3: g unchanged for a zero vector
expected = G.copy()
for j in range(W.shape[1]):
    w, g = W[:, j], G[:, j]
    if np.any(w != 0):
        expected[:, j] = g - (g @ w) / (w @ w) * w
print("expected:", expected.tolist())
print("actual:  ", actual.tolist())
bug = bool(np.isnan(actual).any())
print("BUG REPRODUCED" if bug else "fixed")
raise SystemExit(1 if bug else 0)
