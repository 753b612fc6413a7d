"""sparse_autoencoder 1.10.0: ActivationResampler.assign_sampling_probabilities returns NaN for a
component whose every per-example loss is 0 (RES-3: uniform 1/B), and for losses so small that
their squares underflow (RES-2: computed as q_b^2 / sum q^2 with q = l / max l).

activation_resampler/activation_resampler.py:293-294: loss.pow(2) / loss.pow(2).sum(0)."""

import numpy as np
import torch
import torch.optim.optimizer as _opt
import torch.serialization as _ser
import torch.types as _types

if not hasattr(_ser, "FILE_LIKE"):  # torch >= 2.6 renamed two names the library imports
    _ser.FILE_LIKE = _types.FileLike
if not hasattr(_opt, "params_t"):
    _opt.params_t = _opt.ParamsT
from sparse_autoencoder.activation_resampler.activation_resampler import ActivationResampler


def expected_probabilities(loss):  # RES-2 / RES-3, per component (axis 1), in float64
    loss = np.asarray(loss, dtype=np.float64)
    top = loss.max(axis=0)
    q = np.where(top > 0, loss / np.where(top > 0, top, 1), 1.0)  # RES-3: all zero -> q = 1
    return q**2 / (q**2).sum(axis=0)


# loss per item (batch, component): component 0 has every loss 0 (e.g. inputs reconstructed
# exactly with no penalty), component 1 has tiny losses whose squares underflow in float64
loss = np.array([[0.0, 1e-170], [0.0, 2e-170]])
expected = expected_probabilities(loss)
actual = ActivationResampler.assign_sampling_probabilities(torch.tensor(loss)).numpy()
print("expected:", expected.tolist())  # [[0.5, 0.2], [0.5, 0.8]]
print("actual:  ", actual.tolist())
bug = bool(np.isnan(actual).any())
print("BUG REPRODUCED" if bug else "fixed")
raise SystemExit(1 if bug else 0)
