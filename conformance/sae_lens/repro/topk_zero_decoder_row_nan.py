"""sae-lens 6.54.12: with its default rescale_acts_by_decoder_norm=True, TopKTrainingSAE (and
BatchTopKTrainingSAE, which inherits it) decodes feature_acts * (1 / ||W_dec_j||): a zero decoder row
gives 0 * inf = NaN, and the matmul spreads it to every coordinate of every example's reconstruction,
even where that latent is not selected. DEC-4: under a normalised decoder a zero row contributes
nothing, never NaN (SAELens's own get_W_dec_norm clamps the norm at 1e-8)."""

import numpy as np
import torch
from sae_lens.saes import TopKTrainingSAE, TopKTrainingSAEConfig

x = np.array([[1.0, 0.5]])
W_enc, b_enc = np.eye(2), np.zeros(2)
W_dec, b_dec = np.array([[1.0, 0.0], [0.0, 0.0]]), np.zeros(2)  # row 1 is zero
k = 1

# Expected (numpy): SAELens's rescaled TopK (select the k largest z_j ||W_dec_j||, decode
# relu(z_j ||W_dec_j||) W_dec_j / ||W_dec_j||), with a zero row contributing nothing (DEC-4).
n = np.linalg.norm(W_dec, axis=1)
z = (x - b_dec) @ W_enc + b_enc
key = z * n
top = np.argsort(-key, axis=1, kind="stable")[:, :k]
f = np.zeros_like(z)
np.put_along_axis(f, top, np.maximum(np.take_along_axis(key, top, 1), 0.0), axis=1)
expected = (np.where(n > 0, f / np.where(n > 0, n, 1.0), 0.0)) @ W_dec + b_dec

# Actual: the library's training SAE, default config, weights loaded with load_state_dict.
cfg = TopKTrainingSAEConfig(d_in=2, d_sae=2, k=k, dtype="float64", device="cpu")
sae = TopKTrainingSAE(cfg)
print("rescale_acts_by_decoder_norm =", cfg.rescale_acts_by_decoder_norm)
state = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
sae.load_state_dict({name: torch.tensor(v) for name, v in state.items()}, strict=False)
with torch.no_grad():
    actual = sae(torch.tensor(x)).numpy()

print("expected:", expected.tolist())
print("actual:  ", actual.tolist())
bug = bool(np.isnan(actual).any()) or not np.allclose(actual, expected)
print("BUG REPRODUCED" if bug else "fixed")
raise SystemExit(1 if bug else 0)
