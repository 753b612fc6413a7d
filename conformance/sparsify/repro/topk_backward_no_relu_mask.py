"""sparsify 1.3.3: FusedEncoder.backward passes gradient through a latent that TopK selected with a
non-positive pre-activation (its value is ReLU(z) = 0), i.e. it omits the ReLU mask (TOPK-5).

d_in = d_sae = k = 1, W_enc = W_dec = 1, b_enc = b_dec = 0, x = (1, -1): the second example's only
latent is selected (k = d_sae) with z = -1, so f = ReLU(z) = 0 and it must pass no gradient."""

import numpy as np
import torch
from sparsify import SparseCoder, SparseCoderConfig

x = np.array([[1.0], [-1.0]])
W_enc, b_enc, W_dec, b_dec, k = np.array([[1.0]]), np.array([0.0]), np.array([[1.0]]), np.array([0.0]), 1

# Expected (numpy). TOPK-6 loss = fvu (LOSS-3) = sum (x_hat - x)^2 / sum (x - mean_b x)^2.
# TOPK-5: GRAD-1..6 with the ReLU mask replaced by 1[j selected and z_j > 0].
z = (x - b_dec) @ W_enc + b_enc
selected = np.zeros_like(z, dtype=bool)
np.put_along_axis(selected, np.argsort(-z, axis=1, kind="stable")[:, :k], True, axis=1)
mask = selected & (z > 0)
f = np.where(mask, z, 0.0)
x_hat = f @ W_dec + b_dec
variance = ((x - x.mean(0)) ** 2).sum()
g_xhat = 2 * (x_hat - x) / variance  # dL/dx_hat
g_z = (g_xhat @ W_dec.T) * mask  # dL/dz, masked (TOPK-5)
expected = {"b_enc": g_z.sum(0), "W_enc": (x - b_dec).T @ g_z}

# Actual: the library's own SparseCoder (encode = fused_encoder, decode, fvu) and autograd.
sae = SparseCoder(1, SparseCoderConfig(num_latents=1, k=k), dtype=torch.float64)
with torch.no_grad():
    sae.encoder.weight.copy_(torch.tensor(W_enc.T))  # sparsify stores W_enc transposed
    sae.encoder.bias.copy_(torch.tensor(b_enc))
    sae.W_dec.copy_(torch.tensor(W_dec))
    sae.b_dec.copy_(torch.tensor(b_dec))
sae(torch.tensor(x)).fvu.backward()
actual = {"b_enc": sae.encoder.bias.grad.numpy(), "W_enc": sae.encoder.weight.grad.numpy().T}

bug = False
for name in expected:
    print(f"expected: d fvu / d {name} = {expected[name].ravel()}")
    print(f"actual:   d fvu / d {name} = {actual[name].ravel()}")
    bug |= not np.allclose(actual[name], expected[name], rtol=1e-12, atol=1e-12)
print("BUG REPRODUCED" if bug else "fixed")
raise SystemExit(1 if bug else 0)
