"""dictionary-learning 0.1.0: AutoEncoder.normalize_decoder (dictionary_learning/dictionary.py:103-124)
divides each decoder column by its norm with no guard, so a zero column (a latent with no dictionary
vector) becomes NaN, and its own assertion `t.allclose(new_norms, t.ones_like(new_norms))` then raises
AssertionError. from_pretrained calls it by default (normalize_decoder=True), so such a checkpoint
cannot be loaded. FOLD-2: a zero row keeps s_j = 1 (its latent contributes nothing to x_hat)."""

import torch
from dictionary_learning.dictionary import AutoEncoder

ae = AutoEncoder(activation_dim=2, dict_size=2)
with torch.no_grad():
    ae.encoder.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    ae.encoder.bias.zero_()
    ae.decoder.weight.copy_(torch.tensor([[3.0, 0.0], [4.0, 0.0]]))  # column 0: norm 5; column 1: zero
    ae.bias.zero_()

try:
    ae.normalize_decoder()
    result = f"decoder {ae.decoder.weight.tolist()}"
    failed = bool(torch.isnan(ae.decoder.weight).any())
except AssertionError:
    result, failed = "AssertionError", True
print("expected: decoder [[0.6, 0.0], [0.8, 0.0]], encoder row 0 times 5, row 1 unchanged")
print("actual:  ", result)
print("BUG REPRODUCED" if failed else "fixed")
raise SystemExit(1 if failed else 0)
