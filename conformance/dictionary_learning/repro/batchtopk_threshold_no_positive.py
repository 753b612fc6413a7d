"""BatchTopKTrainer.update_threshold on a batch with no positive latent takes the batch minimum as 0.0
(dictionary_learning/trainers/batch_top_k.py:198-199): with an estimate, the EMA moves it toward 0
(theta <- beta * theta); as the first update (theta = -1, no estimate yet) it assigns the Python float
0.0 to the registered buffer `threshold` (line 204), which nn.Module refuses with TypeError.

BTOPK-4/BTOPK-5: a batch without a positive latent has no minimum and leaves the estimate unchanged.
"""

import torch
from dictionary_learning.trainers.batch_top_k import BatchTopKTrainer


def trainer(threshold):
    tr = BatchTopKTrainer(
        steps=2, activation_dim=2, dict_size=2, k=1, layer=0, lm_name="repro", warmup_steps=0, device="cpu"
    )
    tr.threshold_beta = 0.5
    tr.ae.threshold = torch.tensor(threshold)
    return tr


f = torch.zeros(3, 2)  # the batch's BatchTopK latents: none positive (every pre-activation <= 0)

# (a) an estimate 0.5 exists: BTOPK-5 keeps it
tr = trainer(0.5)
tr.update_threshold(f)
actual_a = tr.ae.threshold.item()
print("(a) expected: threshold = 0.5")
print("(a) actual:   threshold =", actual_a)

# (b) no estimate yet (the model's initial -1): BTOPK-5 keeps -1 (inference stays ReLU, BTOPK-6)
tr = trainer(-1.0)
try:
    tr.update_threshold(f)
    actual_b = repr(tr.ae.threshold.item())
except TypeError as error:
    actual_b = f"TypeError: {error}"
print("(b) expected: threshold = -1.0")
print("(b) actual:  ", actual_b)

bug = actual_a != 0.5 or actual_b != "-1.0"
print("BUG REPRODUCED" if bug else "fixed")
raise SystemExit(1 if bug else 0)
