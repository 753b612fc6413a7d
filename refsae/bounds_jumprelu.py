"""Error bounds of the JumpReLU rows (JUMP, TOL-4).

The strategies keep every |z − θ| and every ||z − θ| − ε/2| above twice the error of z − θ
(JUMP-8), so the mask 1[z > θ] and the kernel K are exact: the four parameter gradients are
GRAD's with the mask z > θ, and the threshold's pseudo-gradient sums exact 0/1 kernels times
g_f θ/ε over the batch.
"""

from __future__ import annotations

import numpy as np

from refsae import bounds as b
from refsae import bounds_gradients as bg
from refsae import oracle
from refsae.conventions import Conventions
from refsae.tolerances import Bound, add, mul


def total_loss(
    x: np.ndarray,
    W_enc: np.ndarray,
    b_enc: np.ndarray,
    W_dec: np.ndarray,
    b_dec: np.ndarray,
    theta: np.ndarray,
    x_hat_value: np.ndarray,
    l0_coefficient: float,
    c: Conventions,
) -> Bound:
    """R + λ · count/B per instance, summed over instances. f carries z's bound where active (ReLU's
    bound over all latents is used: a superset of terms); the count of active latents is exact."""
    _, x_hat = b.forward(x, W_enc, b_enc, W_dec, b_dec, c)
    R = b.reconstruction_loss(x, x_hat, x_hat_value, c.reconstruction)
    count = (oracle.pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode) > theta).sum(axis=(0, -1))
    penalty = Bound(np.asarray(l0_coefficient * count / x.shape[0], dtype=np.float64), 0, 3)
    return b.instance_sum(R, penalty)


def loss_gradients(
    x: np.ndarray,
    W_enc: np.ndarray,
    b_enc: np.ndarray,
    W_dec: np.ndarray,
    b_dec: np.ndarray,
    theta: np.ndarray,
    l0_coefficient: float,
    bandwidth: float,
    c: Conventions,
    parametrisation: str = "theta",
) -> dict[str, Bound]:
    """The four gradients (GRAD's bounds with the mask z > θ) and the threshold's: the batch sum of
    g_f · (θ/ε) · K, plus λ/(Bε) times the number of kernel hits, the two added by autograd; under
    `log_theta` that times θ (an exact input), one more rounding."""
    z = oracle.pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    out = bg.loss_gradients(x, W_enc, b_enc, W_dec, b_dec, 0.0, c, active=z > theta)
    K = (np.abs(z - theta) < bandwidth / 2).astype(np.float64)
    g_f = out["g_f"]
    term = mul(g_f.magnitude * (theta / bandwidth) * K, g_f, k_store=2)
    through_f = add(term.magnitude.sum(axis=0), term, k_acc=x.shape[0], k_store=1)
    through_l0 = Bound(l0_coefficient / (x.shape[0] * bandwidth) * K.sum(axis=0), x.shape[0], 3)
    out["threshold"] = add(through_f.magnitude + through_l0.magnitude, through_f, through_l0, k_store=1)
    if parametrisation == "log_theta":
        out["threshold"] = mul(np.abs(theta) * out["threshold"].magnitude, out["threshold"], k_store=1)
    return out
