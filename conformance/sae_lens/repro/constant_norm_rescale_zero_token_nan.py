"""SAELens 6.54.12: with normalize_activations="constant_norm_rescale", the SAE's input map
(sae_lens/saes/sae.py:372-374) multiplies each token by sqrt(d_in) / ||x_b||, so a token that is the
zero vector becomes 0 * inf = NaN, and so do its latents and its reconstruction (the output map divides
by the same infinite coefficient). NORM-7: a zero token has no rescale; it is left as is (coefficient 1)."""

import torch
from sae_lens.saes import StandardSAE, StandardSAEConfig

torch.manual_seed(0)
cfg = StandardSAEConfig(d_in=4, d_sae=8, dtype="float64", normalize_activations="constant_norm_rescale")
sae = StandardSAE(cfg)
x = torch.randn(3, 4, dtype=torch.float64)
x[1] = 0.0  # one token is the zero vector (a padding position, an ablated activation)
f = sae.encode(x)
x_hat = sae.decode(f)
print("latents of the zero token:", f[1].tolist())
print("reconstruction of the zero token:", x_hat[1].tolist())
failed = bool(torch.isnan(f[1]).any() or torch.isnan(x_hat[1]).any())
print("BUG REPRODUCED" if failed else "fixed")
raise SystemExit(1 if failed else 0)
