"""SAELens 6.54.12: with normalize_activations="layer_norm", the SAE's input map divides the centred
token by (std + eps) (sae_lens/saes/sae.py:389-395) but its output map multiplies by std alone
(sae.py:401; its eps argument is unused), so output(input(x)) = mu + (x - mu) * std / (std + eps) != x:
an SAE that reconstructs its normalised input exactly returns x shrunk towards its mean by the factor
std / (std + eps). NORM-9: the output map is y * (std + eps) + mu, the inverse of the input map."""

import torch
from sae_lens.saes import StandardSAE, StandardSAEConfig

cfg = StandardSAEConfig(d_in=4, d_sae=8, dtype="float64", normalize_activations="layer_norm")
sae = StandardSAE(cfg)
failed = False
for spread in (1.0, 1e-4):
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64) * spread + 5.0
    round_trip = sae.run_time_activation_norm_fn_out(sae.run_time_activation_norm_fn_in(x))
    gap = float((round_trip - x).abs().max() / (x - x.mean()).abs().max())
    print(f"token spread {spread:g}: output(input(x)) differs from x by {gap:.3g} of x - mean")
    failed |= gap > 1e-12
print("BUG REPRODUCED" if failed else "fixed")
raise SystemExit(1 if failed else 0)
