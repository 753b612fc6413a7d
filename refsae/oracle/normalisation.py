"""Activation normalisation (NORM; specs/normalisation.md): the input scale an SAE is trained under,
estimated from a sample of activations, and the per-token normalisations applied inside the forward
pass. x has shape (batch, [n_inst,] d_in); a factor is per instance, a per-token statistic has shape
(batch, [n_inst]).

    c = √d_in / mean_b ‖x_b‖            `mean_norm_sqrt_d_in`   (SAELens `expected_average_only_in`)
    c = 1 / √(mean_b ‖x_b‖²)            `mean_squared_norm_one` (dictionary_learning `get_norm_factor`)
    x_n = x_b · √d_in / ‖x_b‖           per token               (SAELens `constant_norm_rescale`)
    x_n = (x_b − μ_b) / (σ_b + ε)       per token, σ with 1/(d_in − 1)   (SAELens `layer_norm`)
    x̂ = y · (σ_b + ε) + μ_b             its inverse on the decoder's output y
"""

from __future__ import annotations

import math

import numpy as np

from refsae._typecheck import typechecked
from refsae.conventions import OPERATION_AXES, NormTarget, check_choice
from refsae.oracle import _validate
from refsae.oracle._shapes import InputBatch, PerInstance, PerToken

__all__ = ["activation_norm_factor", "constant_norm_rescale", "layer_norm", "layer_norm_inverse"]

LAYER_NORM_EPS = 1e-5
"""SAELens's ε of `layer_norm` (`run_time_activation_ln_in(x, eps=1e-5)`), the default here."""


@typechecked
def activation_norm_factor(x: InputBatch, *, norm_target: NormTarget = "mean_norm_sqrt_d_in") -> PerInstance:
    """The factor c by which inputs are multiplied in training, estimated from the tokens x (NORM-1):
    `mean_norm_sqrt_d_in` makes the mean norm √d_in (NORM-2), `mean_squared_norm_one` the mean
    squared norm 1 (NORM-3). The two differ by c₂/c₃ = √d_in · √(E‖x‖²) / E‖x‖ >= √d_in (NORM-4).
    A sample whose tokens are all zero has no factor: `ValueError` (NORM-5).

    >>> import numpy as np
    >>> x = np.array([[3.0, 4.0], [0.0, 1.0]])        # norms 5 and 1
    >>> round(float(activation_norm_factor(x)), 6)                                     # √2 / 3
    0.471405
    >>> round(float(activation_norm_factor(x, norm_target="mean_squared_norm_one")), 6)  # 1 / √13
    0.27735
    """
    check_choice("norm_target", norm_target, OPERATION_AXES["norm_target"])
    _validate.nonempty_batch(x)
    _validate.finite(x=x)
    norms = np.linalg.norm(x, axis=-1)
    if np.any(np.all(norms == 0.0, axis=0)):
        raise ValueError("activation_norm_factor is undefined on a sample whose every token x_b is 0")
    if norm_target == "mean_norm_sqrt_d_in":
        return np.asarray(math.sqrt(x.shape[-1]) / norms.mean(axis=0), dtype=np.float64)
    return np.asarray(1.0 / np.sqrt((norms**2).mean(axis=0)), dtype=np.float64)


@typechecked
def constant_norm_rescale(x: InputBatch) -> tuple[InputBatch, PerToken]:
    """(x_n, a): every token scaled to norm √d_in, x_n_b = a_b · x_b with a_b = √d_in / ‖x_b‖ (NORM-6);
    the decoder's output is divided by a_b. A zero token has no such scale: it keeps a_b = 1 and
    stays 0 (NORM-7).

    >>> import numpy as np
    >>> x_n, a = constant_norm_rescale(np.array([[3.0, 4.0], [0.0, 0.0]]))   # d_in = 2
    >>> np.round(x_n, 6).tolist(), np.round(a, 6).tolist()                   # a_0 = √2 / 5
    ([[0.848528, 1.131371], [0.0, 0.0]], [0.282843, 1.0])
    """
    _validate.nonempty_batch(x)
    _validate.finite(x=x)
    norms = np.linalg.norm(x, axis=-1)
    a = np.where(norms > 0, math.sqrt(x.shape[-1]) / np.where(norms > 0, norms, 1.0), 1.0)
    return x * a[..., None], np.asarray(a, dtype=np.float64)


def check_layer_norm(d_in: int, eps: float) -> None:
    """d_in >= 2 (σ divides by d_in − 1) and ε a finite number > 0 (a constant token has σ = 0, NORM-8)."""
    if d_in < 2:
        raise ValueError(f"layer_norm needs d_in >= 2 (its σ divides by d_in − 1), got d_in = {d_in}")
    if isinstance(eps, bool) or not (isinstance(eps, int | float) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")


@typechecked
def layer_norm(x: InputBatch, *, eps: float = LAYER_NORM_EPS) -> tuple[InputBatch, PerToken, PerToken]:
    """(x_n, μ, σ) per token: μ_b the mean of x_b's d_in entries, σ_b = √(Σ_i (x_bi − μ_b)² / (d_in − 1))
    (Bessel's correction, as `torch.std`), x_n_b = (x_b − μ_b) / (σ_b + ε) (NORM-8). Not
    `torch.nn.LayerNorm`, which divides by √(σ'² + ε) with σ'² = Σ (x_bi − μ_b)² / d_in.

    >>> import numpy as np
    >>> x_n, mu, sigma = layer_norm(np.array([[1.0, 3.0]]), eps=0.5)   # σ = √2
    >>> np.round(x_n, 6).tolist(), mu.tolist(), np.round(sigma, 6).tolist()
    ([[-0.522408, 0.522408]], [2.0], [1.414214])
    """
    check_layer_norm(x.shape[-1], eps)
    _validate.nonempty_batch(x)
    _validate.finite(x=x)
    mu = x.mean(axis=-1)
    centred = x - mu[..., None]
    sigma = np.sqrt((centred**2).sum(axis=-1) / (x.shape[-1] - 1))
    return centred / (sigma + eps)[..., None], mu, sigma


@typechecked
def layer_norm_inverse(
    y: InputBatch, mu: PerToken, sigma: PerToken, *, eps: float = LAYER_NORM_EPS
) -> InputBatch:
    """x̂_b = y_b · (σ_b + ε) + μ_b: the decoder's output y mapped back, the inverse of `layer_norm`
    (NORM-9), so that an SAE reconstructing x_n exactly reconstructs x exactly.

    >>> import numpy as np
    >>> x = np.array([[1.0, 3.0, 8.0]])
    >>> bool(np.allclose(layer_norm_inverse(*layer_norm(x, eps=0.5), eps=0.5), x))
    True
    """
    check_layer_norm(y.shape[-1], eps)
    _validate.nonempty_batch(y, "y")
    _validate.finite(y=y, mu=mu, sigma=sigma)
    if np.any(sigma < 0):
        raise ValueError("sigma must be >= 0 (a standard deviation)")
    return np.asarray(y * (sigma + eps)[..., None] + mu[..., None], dtype=np.float64)
