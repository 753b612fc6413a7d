"""StandardTrainer.resample_neurons sets a dead latent's encoder row to v * 0.2 * mean alive encoder
norm without normalising v (dictionary_learning/trainers/standard.py:94).

RES-10 (Anthropic, Towards Monosemanticity): W_enc[:, j] <- v/||v|| * 0.2 * mean_{k alive} ||W_enc[:, k]||,
W_dec_j <- v/||v||, b_enc_j <- 0.  Imports only the library, numpy and torch.
"""

import numpy as np
import torch
from dictionary_learning.trainers import StandardTrainer

torch.manual_seed(0)
trainer = StandardTrainer(
    steps=2,
    activation_dim=2,
    dict_size=2,
    layer=0,
    lm_name="repro",
    warmup_steps=0,
    sparsity_warmup_steps=None,
    device="cpu",
)
ae = trainer.ae.to(torch.float64)
W_enc = np.array(
    [
        [5.0, 0.0],  # latent 0, alive: encoder norm 5, so 0.2 * 5 = 1
        [0.3, 0.4],
    ]
)  # latent 1, dead
with torch.no_grad():
    ae.encoder.weight.copy_(torch.tensor(W_enc))  # nn.Linear: row j = latent j's encoder vector
    ae.encoder.bias.copy_(torch.tensor([0.1, 0.1]))
    ae.decoder.weight.copy_(torch.eye(2, dtype=torch.float64))
    ae.bias.zero_()
# resample_neurons indexes the Adam state, which torch creates lazily: fill it with zeros
for p in ae.parameters():
    trainer.optimizer.state[p] = {
        "step": torch.tensor(1.0),
        "exp_avg": torch.zeros_like(p),
        "exp_avg_sq": torch.zeros_like(p),
    }

v = np.array([0.0, 2.0])  # the input drawn for the dead latent (one row: the draw is it)
deads = torch.tensor([False, True])
trainer.resample_neurons(deads, torch.tensor(v[None, :]))

# RES-10: direction v/||v||, scaled to 0.2 * mean alive encoder norm (alive: latent 0 only)
alive_norm = np.linalg.norm(W_enc[[0]], axis=1).mean()
expected_enc = v / np.linalg.norm(v) * 0.2 * alive_norm  # (0, 1)
expected_dec = v / np.linalg.norm(v)  # (0, 1)
actual_enc = ae.encoder.weight[1].detach().numpy()
actual_dec = ae.decoder.weight[:, 1].detach().numpy()
print("expected: W_enc[:, 1] =", expected_enc, " W_dec_1 =", expected_dec)
print("actual:   W_enc[:, 1] =", actual_enc, " W_dec_1 =", actual_dec)

bug = not (
    np.allclose(actual_enc, expected_enc, rtol=1e-12, atol=0)
    and np.allclose(actual_dec, expected_dec, rtol=1e-12, atol=0)
)
print("BUG REPRODUCED" if bug else "fixed")
raise SystemExit(1 if bug else 0)
