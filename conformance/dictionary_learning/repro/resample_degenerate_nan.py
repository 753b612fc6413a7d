"""StandardTrainer.resample_neurons on degenerate inputs (dictionary_learning/trainers/standard.py:90,94-95):
(a) a zero drawn input v gives a NaN decoder row (v/||v|| = 0/0) and the latent still counts as resampled;
(b) with every latent dead, the alive norm is the mean of an empty tensor (NaN), so are the encoder rows.

RES-13: a dead latent whose v is exactly 0 is left unchanged (never NaN) and not marked resampled.
RES-14: with no live latent the scale is encoder_scale * 1 = 0.2: W_enc[:, j] = 0.2 * v/||v||.
"""

import numpy as np
import torch
from dictionary_learning.trainers import StandardTrainer


def resample(W_enc, deads, rows):
    torch.manual_seed(0)
    tr = StandardTrainer(
        steps=2,
        activation_dim=2,
        dict_size=2,
        layer=0,
        lm_name="repro",
        warmup_steps=0,
        sparsity_warmup_steps=None,
        device="cpu",
    )
    ae = tr.ae.to(torch.float64)
    with torch.no_grad():
        ae.encoder.weight.copy_(torch.tensor(W_enc))
        ae.encoder.bias.zero_()
        ae.decoder.weight.copy_(torch.eye(2, dtype=torch.float64))
        ae.bias.copy_(torch.tensor([1.0, 1.0]))  # b_dec != 0: a zero input has a loss > 0 (drawable)
    for p in ae.parameters():  # the Adam state resample_neurons indexes
        tr.optimizer.state[p] = {
            "step": torch.tensor(1.0),
            "exp_avg": torch.zeros_like(p),
            "exp_avg_sq": torch.zeros_like(p),
        }
    deads = torch.tensor(deads)
    tr.resample_neurons(deads, torch.tensor(rows))
    return ae.encoder.weight.detach().numpy(), ae.decoder.weight.detach().numpy(), deads.numpy()


# (a) latent 1 dead, its drawn input is the zero vector: RES-13 leaves it as it was
W_enc = np.array([[1.0, 0.0], [0.3, 0.4]])
enc, dec, resampled = resample(W_enc, [False, True], np.zeros((1, 2)))
print("(a) expected: W_enc[:, 1] =", W_enc[1], " W_dec_1 = [0. 1.]  resampled = [False False]")
print("(a) actual:   W_enc[:, 1] =", enc[1], " W_dec_1 =", dec[:, 1], " resampled =", resampled)
bug_a = not (np.array_equal(enc[1], W_enc[1]) and np.array_equal(dec[:, 1], [0.0, 1.0]) and not resampled[1])

# (b) both latents dead, both drawn inputs equal to v = (3, 4): RES-14's scale 0.2 * 1
v = np.array([3.0, 4.0])
enc, dec, _ = resample(W_enc, [True, True], np.stack([v, v]))
expected = 0.2 * v / np.linalg.norm(v)  # (0.12, 0.16)
print("(b) expected: W_enc[:, j] =", expected, "for both latents")
print("(b) actual:   W_enc[:, 0] =", enc[0], " W_enc[:, 1] =", enc[1])
bug_b = not np.allclose(enc, np.stack([expected, expected]), rtol=1e-12, atol=0)

bug = bug_a or bug_b
print("BUG REPRODUCED" if bug else "fixed")
raise SystemExit(1 if bug else 0)
