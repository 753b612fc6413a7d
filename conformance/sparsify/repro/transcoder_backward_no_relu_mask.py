"""sparsify 1.3.3: a transcoder (`transcode=True`, `skip_connection=True`) inherits FusedEncoder.backward,
which passes gradient through a latent that TopK selected with a non-positive pre-activation (its value
is ReLU(z) = 0): the ReLU mask of TOPK-5 / TC-6 is missing.

d_in = d_out = d_sae = k = 1, W_enc = W_dec = 1, b_enc = b_dec = 0, W_skip = 0, x = (1, -1), y = (2, 1):
the second example's only latent is selected (k = d_sae) with z = -1, so f = 0 and it must pass no
gradient to the encoder."""

import numpy as np
import torch
from sparsify import SparseCoder, SparseCoderConfig

x, y = np.array([[1.0], [-1.0]]), np.array([[2.0], [1.0]])
W_enc, b_enc, W_dec, b_dec, W_skip = np.eye(1), np.zeros(1), np.eye(1), np.zeros(1), np.zeros((1, 1))

# Expected (numpy): TC-5's loss fvu = sum (y_hat - y)^2 / sum (y - mean_b y)^2, TC-6's gradients
# with the mask 1[selected and z > 0] (k = d_sae: every latent is selected).
z = x @ W_enc + b_enc
mask = z > 0
y_hat = np.where(mask, z, 0.0) @ W_dec + b_dec + x @ W_skip.T
g = 2 * (y_hat - y) / ((y - y.mean(0)) ** 2).sum()
g_z = (g @ W_dec.T) * mask
expected = {"b_enc": g_z.sum(0), "W_enc": x.T @ g_z}

# Actual: the library's transcoder and autograd.
config = SparseCoderConfig(num_latents=1, k=1, transcode=True, skip_connection=True)
coder = SparseCoder(1, config, dtype=torch.float64)
with torch.no_grad():
    coder.encoder.weight.copy_(torch.tensor(W_enc.T))  # sparsify stores W_enc transposed
    coder.encoder.bias.copy_(torch.tensor(b_enc))
    coder.W_dec.copy_(torch.tensor(W_dec))
    coder.b_dec.copy_(torch.tensor(b_dec))
    coder.W_skip.copy_(torch.tensor(W_skip))
coder(torch.tensor(x), torch.tensor(y)).fvu.backward()
actual = {"b_enc": coder.encoder.bias.grad.numpy(), "W_enc": coder.encoder.weight.grad.numpy().T}

bug = False
for name in expected:
    print(f"expected: d fvu / d {name} = {expected[name].ravel()}")
    print(f"actual:   d fvu / d {name} = {actual[name].ravel()}")
    bug |= not np.allclose(actual[name], expected[name], rtol=1e-12, atol=1e-12)
print("BUG REPRODUCED" if bug else "fixed")
raise SystemExit(1 if bug else 0)
