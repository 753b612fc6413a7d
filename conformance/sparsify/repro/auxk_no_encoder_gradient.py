"""sparsify 1.3.3: the AuxK loss of SparseCoder.forward(x, dead_mask=...) trains no encoder parameter.
It selects the dead latents from the `pre_acts` output of FusedEncoder, whose backward ignores that
output's gradient (`grad_preacts`), so d auxk_loss / d (W_enc, b_enc) is 0 (AUXK-8 gives g W_dec^T at
the selected dead latents with z > 0, chained to W_enc and b_enc).

d_in = d_sae = 2 (so sparsify's k_aux = d_in // 2 = 1), k = 1, W_enc = I, W_dec = diag(1, 2), zero
biases, latent 1 dead; both examples select latent 0 and leave latent 1 (z = 1) to the AuxK loss."""

import numpy as np
import torch
from sparsify import SparseCoder, SparseCoderConfig

x = np.array([[3.0, 1.0], [2.0, 1.0]])
W_enc, W_dec = np.eye(2), np.diag([1.0, 2.0])  # zero b_enc, b_dec
dead = np.array([False, True])

# Expected (numpy), AUXK-4..AUXK-8 with sparsify's options: values=relu, aux_decode=without_b_dec,
# residual=detached, scale=dead_fraction, normalisation=input_variance.
z = x @ W_enc
f = np.where(z == z.max(1, keepdims=True), z, 0.0)  # TopK k = 1 (no ties here)
e = x - f @ W_dec  # residual, detached
k_aux = x.shape[1] // 2
s = min(dead.sum() / k_aux, 1.0)  # AUXK-5
a = np.where(dead & (z == np.where(dead, z, -np.inf).max(1, keepdims=True)), np.maximum(z, 0), 0.0)
D = ((x - x.mean(0)) ** 2).sum()  # AUXK-7 input_variance
g = 2 * s * (a @ W_dec - e) / D  # AUXK-8
g_z = (g @ W_dec.T) * ((a != 0) & (z > 0))  # AUXK-8: dz at the selected dead latents
expected = {"b_enc": g_z.sum(0), "W_enc": x.T @ g_z}
print("auxk_loss expected:", s * ((a @ W_dec - e) ** 2).sum() / D)

# Actual: the library's SparseCoder, backward of its auxk_loss only.
sae = SparseCoder(2, SparseCoderConfig(num_latents=2, k=1), dtype=torch.float64)
with torch.no_grad():
    sae.encoder.weight.copy_(torch.tensor(W_enc.T))
    sae.encoder.bias.zero_()
    sae.W_dec.copy_(torch.tensor(W_dec))
    sae.b_dec.zero_()
out = sae(torch.tensor(x), dead_mask=torch.tensor(dead))
print("auxk_loss actual:  ", out.auxk_loss.item())
out.auxk_loss.backward()
actual = {"b_enc": sae.encoder.bias.grad.numpy(), "W_enc": sae.encoder.weight.grad.numpy().T}

bug = False
for name in expected:
    print(f"expected: d auxk_loss / d {name} = {expected[name].ravel()}")
    print(f"actual:   d auxk_loss / d {name} = {actual[name].ravel()}")
    bug |= not np.allclose(actual[name], expected[name], rtol=1e-12, atol=1e-12)
print("BUG REPRODUCED" if bug else "fixed")
raise SystemExit(1 if bug else 0)
