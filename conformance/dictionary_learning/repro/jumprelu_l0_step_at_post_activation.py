"""JumpReluTrainer.loss evaluates the L0 step's pseudo-gradient at the post-activation f = z * 1[z > theta]
(`StepFunction.apply(f, threshold, bandwidth)`, dictionary_learning/trainers/jumprelu.py:170) instead of
at the pre-activation z: an example with theta - eps/2 < z <= theta has f = 0, falls outside the window
and gives no d(penalty)/d(theta); when theta < eps/2 every inactive example (any z <= theta) falls inside.

JUMP-4: dH/dtheta = -(1/eps) K((z - theta)/eps), K the rectangle on |.| < 1/2, at the pre-activations.
The library's own penalty P(L0) = lambda (L0/target_l0 - 1)^2 is kept (its convention), so the
expected gradient is P'(L0) * (-1/(B eps)) * sum_b K((z_b - theta)/eps).
"""

import numpy as np
import torch
from dictionary_learning.trainers.jumprelu import JumpReluTrainer

lam, T, eps = 1.0, 20.0, 0.5
tr = JumpReluTrainer(
    steps=2,
    activation_dim=1,
    dict_size=2,
    layer=0,
    lm_name="repro",
    bandwidth=eps,
    sparsity_penalty=lam,
    target_l0=T,
    warmup_steps=0,
    sparsity_warmup_steps=None,
)
ae = tr.ae.to(torch.float64)
x = np.array([[1.0]])
W_enc, theta = np.array([[1.0, -5.0]]), np.array([1.1, 0.2])  # z = (1, -5): both latents inactive
with torch.no_grad():
    ae.W_enc.copy_(torch.tensor(W_enc))
    ae.b_enc.zero_()
    ae.W_dec.copy_(torch.ones(2, 1, dtype=torch.float64))
    ae.b_dec.copy_(torch.tensor(x[0]))  # x_hat = b_dec = x: the reconstruction gives theta no gradient
    ae.threshold.copy_(torch.tensor(theta))
tr.loss(torch.tensor(x), step=1).backward()

z = x @ W_enc
l0 = (z > theta).sum(axis=-1).mean()  # 0
dP = 2 * lam * (l0 / T - 1) / T  # P'(L0) = -0.1
K = (np.abs((z - theta) / eps) < 0.5).astype(float)  # window at z: (1, 0)
expected = dP * (-1 / (x.shape[0] * eps)) * K.sum(axis=0)  # (0.2, 0)
actual = ae.threshold.grad.numpy()
print("expected: dL/dtheta =", expected)
print("actual:   dL/dtheta =", actual)

# rtol 1e-6: StepFunction's forward returns float32 (`.float()`), so L0 and P'(L0) are float32 values
bug = not np.allclose(actual, expected, rtol=1e-6, atol=1e-12)
print("BUG REPRODUCED" if bug else "fixed")
raise SystemExit(1 if bug else 0)
