"""JumpReLU (Rajamanoharan et al. 2024, *Jumping Ahead*), JUMP-1..JUMP-8.

    f_j   = z_j · H(z_j − θ_j)                H(u) = 1[u > 0], strict; θ_j > 0 per latent
    L     = Σ_inst [ reconstruction(x, x_hat) + λ · (1/B) Σ_b Σ_j H(z_bj − θ_j) ]      (L0 penalty)

The threshold gets gradient only through straight-through pseudo-derivatives with the rectangle
kernel K(u) = 1[|u| < 1/2] (open) of bandwidth ε:

    ∂f_j/∂θ_j := −(θ_j/ε) K((z_j − θ_j)/ε)        ∂H(z_j − θ_j)/∂θ_j := −(1/ε) K((z_j − θ_j)/ε)

and z gets f's true derivative H(z − θ) (the L0 term passes none to z). With the log-θ
parametrisation (θ = exp(ℓ)), ∂L/∂ℓ = θ ∂L/∂θ.

Three named equivalences (specs/equivalences.md) have their definitions here: the penalty
λ · (L0/T − 1)² towards a target L0 `T` (`target_l0_penalty`, EQ-8), the per-example quadratic
λ (1/B) Σ_b (2/T)(L0_b − T)² (`quadratic_l0_penalty`, EQ-16) and the activation with the non-strict
step z >= θ (`threshold_at_or_above`, EQ-9).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np

from refsae._typecheck import typechecked
from refsae.conventions import OPERATION_AXES, Conventions, Ste, check_choice, check_coefficient
from refsae.oracle import _validate
from refsae.oracle._shapes import (
    DecoderWeights,
    EncoderWeights,
    InputBatch,
    InputVector,
    LatentBatch,
    LatentVector,
    Scalar,
)
from refsae.oracle.forward import decode, decoder_directions, pre_activations
from refsae.oracle.gradients import encoder_backward, gradients_given_mask, reconstruction_scale
from refsae.oracle.losses import reconstruction_loss

__all__ = [
    "jumprelu",
    "jumprelu_at_or_above",
    "jumprelu_loss_gradients",
    "jumprelu_quadratic_l0_loss_gradients",
    "jumprelu_quadratic_l0_total_loss",
    "jumprelu_target_l0_loss_gradients",
    "jumprelu_target_l0_total_loss",
    "jumprelu_total_loss",
]

EQUIVALENCE_FUNCTIONS: tuple[str, ...] = (
    "jumprelu_at_or_above",
    "jumprelu_quadratic_l0_loss_gradients",
    "jumprelu_quadratic_l0_total_loss",
    "jumprelu_target_l0_loss_gradients",
    "jumprelu_target_l0_total_loss",
)
"""Functions of `__all__` that define named equivalences (specs/equivalences.md), not operations: the
conformance suite's references only, so refsae.torch has no twin of them."""

Parametrisation = Literal["theta", "log_theta"]
PARAMETRISATIONS: tuple[str, ...] = OPERATION_AXES["parametrisation"]
STES: tuple[str, ...] = OPERATION_AXES["ste"]


def add_ste_to_input(
    grads: dict[str, np.ndarray],
    x: np.ndarray,
    W_enc: np.ndarray,
    b_dec: np.ndarray,
    g_z: np.ndarray,
    encode: str,
    ste: str,
) -> None:
    """Under `ste="also_input"` (JUMP-15) the straight-through terms g_z (the pseudo-derivatives of
    JUMP-3 and JUMP-4 with the sign of z, +(θ/ε) K g_f and +(λ/(Bε)) K) reach z too: added, through
    the encoder, to W_enc, b_enc and (tied) b_dec. Under `threshold_only` (JUMP-14) nothing."""
    check_choice("ste", ste, STES)
    if ste == "also_input":
        for k, v in encoder_backward(x, W_enc, b_dec, g_z, encode).items():
            grads[k] = grads[k] + v


def check_bandwidth(bandwidth: float) -> None:
    """The kernel's bandwidth ε is a finite number > 0 (JUMP-7)."""
    if isinstance(bandwidth, bool) or not (
        isinstance(bandwidth, int | float) and math.isfinite(bandwidth) and bandwidth > 0
    ):
        raise ValueError(f"bandwidth must be a finite number > 0, got {bandwidth!r}")


def check_threshold(theta: np.ndarray, bandwidth: float | None = None) -> None:
    """θ finite and > 0; the bandwidth, when given, as `check_bandwidth` (JUMP-7)."""
    _validate.finite(theta=theta)
    if not np.all(theta > 0):
        raise ValueError("theta must be > 0 (a JumpReLU threshold is positive)")
    if bandwidth is not None:
        check_bandwidth(bandwidth)


@typechecked
def jumprelu(z: LatentBatch, theta: LatentVector) -> LatentBatch:
    """f = z · 1[z > θ], strictly: z = θ gives 0 (JUMP-1).

    >>> import numpy as np
    >>> jumprelu(np.array([[0.5, 1.0, 2.0]]), np.array([1.0, 1.0, 1.0])).tolist()
    [[0.0, 0.0, 2.0]]
    """
    _validate.nonempty_batch(z, "z")
    _validate.finite(z=z)
    check_threshold(theta)
    return np.where(z > theta, z, 0.0)


def kernel(z: np.ndarray, theta: np.ndarray, bandwidth: float) -> np.ndarray:
    """K((z − θ)/ε) = 1[|z − θ| < ε/2], the open rectangle (JUMP-4)."""
    return np.asarray(np.abs(z - theta) < bandwidth / 2, dtype=np.float64)


@typechecked
def jumprelu_total_loss(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    theta: LatentVector,
    *,
    l0_coefficient: float,
    bandwidth: float,
    conventions: Conventions = Conventions(),
) -> Scalar:
    """Σ_inst reconstruction + λ · mean over the batch of the number of active latents (JUMP-2).
    `bandwidth` only shapes the pseudo-gradients; it is checked here too, so a bad one fails early."""
    check_coefficient("l0_coefficient", l0_coefficient)
    check_threshold(theta, bandwidth)
    c = conventions
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    f = np.where(z > theta, z, 0.0)
    x_hat = decode(f, W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    l0 = (z > theta).sum(axis=(0, -1)) / x.shape[0]
    return np.asarray(
        (reconstruction_loss(x, x_hat, reconstruction=c.reconstruction) + l0_coefficient * l0).sum()
    )


@typechecked
def jumprelu_loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    theta: LatentVector,
    *,
    l0_coefficient: float,
    bandwidth: float,
    conventions: Conventions = Conventions(),
    parametrisation: Parametrisation = "theta",
    ste: Ste = "threshold_only",
) -> dict[str, np.ndarray]:
    """Gradients and the threshold's pseudo-gradient of `jumprelu_total_loss` (JUMP-3..JUMP-6):
    W_enc, b_enc, W_dec, b_dec as GRAD-1..GRAD-6 with the mask 1[z > θ] (and, under
    `ste="also_input"`, the straight-through terms at z, JUMP-15); `threshold` is ∂L/∂θ, or
    ∂L/∂log θ = θ ∂L/∂θ under `parametrisation="log_theta"`."""
    check_coefficient("l0_coefficient", l0_coefficient)
    check_threshold(theta, bandwidth)
    check_choice("parametrisation", parametrisation, PARAMETRISATIONS)
    c = conventions
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    active = z > theta
    grads = gradients_given_mask(x, W_enc, b_enc, W_dec, b_dec, z, active, 0.0, c).as_dict()
    f = np.where(active, z, 0.0)
    W_hat = decoder_directions(W_dec, decoder=c.decoder, eps=c.eps)
    x_hat = np.einsum("b...j,...ji->b...i", f, W_hat) + b_dec
    g_f = np.einsum("b...i,...ji->b...j", reconstruction_scale(x, c.reconstruction) * (x_hat - x), W_hat)
    K = kernel(z, theta, bandwidth)
    grad_theta = (g_f * (-theta / bandwidth) * K).sum(axis=0) + l0_coefficient / x.shape[0] * (
        -K / bandwidth
    ).sum(axis=0)
    g_z = g_f * (theta / bandwidth) * K + l0_coefficient / x.shape[0] * K / bandwidth
    add_ste_to_input(grads, x, W_enc, b_dec, g_z, c.encode, ste)
    grads["threshold"] = theta * grad_theta if parametrisation == "log_theta" else grad_theta
    return grads


@typechecked
def jumprelu_at_or_above(z: LatentBatch, theta: LatentVector) -> LatentBatch:
    """f = z · 1[z >= θ]: the non-strict step, the tie equivalence `threshold_at_or_above` of `jumprelu`
    (EQ-9); it differs from JUMP-1 only where z = θ exactly (it keeps z there).

    >>> import numpy as np
    >>> jumprelu_at_or_above(np.array([[0.5, 1.0, 2.0]]), np.array([1.0, 1.0, 1.0])).tolist()
    [[0.0, 1.0, 2.0]]
    """
    _validate.nonempty_batch(z, "z")
    _validate.finite(z=z)
    check_threshold(theta)
    return np.where(z >= theta, z, 0.0)


def check_target_l0(target_l0: float) -> None:
    """The target L0 `T` of EQ-8 is a finite number > 0."""
    if isinstance(target_l0, bool) or not (
        isinstance(target_l0, int | float) and math.isfinite(target_l0) and target_l0 > 0
    ):
        raise ValueError(f"target_l0 must be a finite number > 0, got {target_l0!r}")


def _l0(
    x: np.ndarray, W_enc: np.ndarray, b_enc: np.ndarray, b_dec: np.ndarray, theta: np.ndarray, c: Conventions
) -> tuple[np.ndarray, np.ndarray]:
    """(z, L0): the pre-activations and, per instance, the mean number of active latents (JUMP-2)."""
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    return z, (z > theta).sum(axis=(0, -1)) / x.shape[0]


@typechecked
def jumprelu_target_l0_total_loss(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    theta: LatentVector,
    *,
    l0_coefficient: float,
    bandwidth: float,
    target_l0: float,
    conventions: Conventions = Conventions(),
) -> Scalar:
    """Σ_inst reconstruction + λ · (L0/T − 1)², L0 the mean number of active latents and T = `target_l0`:
    the equivalence `target_l0_penalty` of `jumprelu_total_loss` (EQ-8; JUMP-2 adds λ · L0).

    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0]]); W_enc = np.array([[1.0, 2.0], [0.0, 0.0]])  # z = (1, 2): L0 = 2
    >>> p = dict(W_enc=W_enc, b_enc=np.zeros(2), W_dec=np.zeros((2, 2)), b_dec=np.zeros(2))
    >>> float(jumprelu_target_l0_total_loss(x, **p, theta=np.full(2, 0.5), l0_coefficient=2.0,
    ...                                      bandwidth=1.0, target_l0=4))  # ‖x‖² + 2 (2/4 − 1)²
    1.5
    """
    check_coefficient("l0_coefficient", l0_coefficient)
    check_target_l0(target_l0)
    reconstruction = jumprelu_total_loss(
        x, W_enc, b_enc, W_dec, b_dec, theta, l0_coefficient=0.0, bandwidth=bandwidth, conventions=conventions
    )
    _, l0 = _l0(x, W_enc, b_enc, b_dec, theta, conventions)
    return np.asarray(reconstruction + l0_coefficient * ((l0 / target_l0 - 1.0) ** 2).sum())


@typechecked
def jumprelu_target_l0_loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    theta: LatentVector,
    *,
    l0_coefficient: float,
    bandwidth: float,
    target_l0: float,
    conventions: Conventions = Conventions(),
    parametrisation: Parametrisation = "theta",
    ste: Ste = "threshold_only",
) -> dict[str, np.ndarray]:
    """Gradients of `jumprelu_target_l0_total_loss` (EQ-8): those of JUMP-6 at λ = 0, and the threshold's
    with the penalty's term through JUMP-4's pseudo-derivative of the step at z,
    ∂/∂θ_j λ (L0/T − 1)² = (2λ/T)(L0/T − 1) · (−1/(Bε)) Σ_b K((z_bj − θ_j)/ε); times θ under log θ (JUMP-5).
    """
    check_coefficient("l0_coefficient", l0_coefficient)
    check_target_l0(target_l0)
    _, l0 = _l0(x, W_enc, b_enc, b_dec, theta, conventions)
    slope = 2.0 * l0_coefficient / target_l0 * (l0 / target_l0 - 1.0) / x.shape[0]  # ∂P/∂L0_b, every b
    params = (W_enc, b_enc, W_dec, b_dec, theta)
    return _count_penalty_gradients(
        x,
        params,
        lambda counts: np.broadcast_to(slope, counts.shape),
        bandwidth,
        conventions,
        parametrisation,
        ste,
    )


def _count_penalty_gradients(
    x: np.ndarray,
    params: tuple[np.ndarray, ...],
    slope: Callable[[np.ndarray], np.ndarray],
    bandwidth: float,
    c: Conventions,
    parametrisation: Parametrisation,
    ste: Ste,
) -> dict[str, np.ndarray]:
    """JUMP-6's gradients at λ = 0 plus a penalty P of the per-example counts L0_b = Σ_j H(z_bj − θ_j),
    given `slope(L0)` = ∂P/∂L0_b (shape (B, *inst)): ∂P/∂θ_j = Σ_b ∂P/∂L0_b · (−1/ε) K((z_bj − θ_j)/ε)
    (JUMP-4), the same with + at z under `ste="also_input"` (JUMP-15), times θ under log θ (JUMP-5)."""
    W_enc, b_enc, W_dec, b_dec, theta = params
    check_choice("parametrisation", parametrisation, PARAMETRISATIONS)
    grads = jumprelu_loss_gradients(
        x, W_enc, b_enc, W_dec, b_dec, theta, l0_coefficient=0.0, bandwidth=bandwidth, conventions=c, ste=ste
    )
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    per_example = slope((z > theta).sum(axis=-1))[..., None]
    K = kernel(z, theta, bandwidth)
    grad_theta = grads["threshold"] - (per_example * K).sum(axis=0) / bandwidth
    add_ste_to_input(grads, x, W_enc, b_dec, per_example * K / bandwidth, c.encode, ste)
    grads["threshold"] = theta * grad_theta if parametrisation == "log_theta" else grad_theta
    return grads


@typechecked
def jumprelu_quadratic_l0_total_loss(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    theta: LatentVector,
    *,
    l0_coefficient: float,
    bandwidth: float,
    target_l0: float,
    conventions: Conventions = Conventions(),
) -> Scalar:
    """Σ_inst reconstruction + λ (1/B) Σ_b (2/T)(L0_b − T)², L0_b the number of active latents of example
    b and T = `target_l0`: the equivalence `quadratic_l0_penalty` of `jumprelu_total_loss` (EQ-16; SAELens's
    `jumprelu_sparsity_loss_mode="quadratic"`, Gemma Scope 2). EQ-8 squares the batch's mean L0 instead.

    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.0, 0.0]]); W_enc = np.array([[1.0, 2.0], [0.0, 0.0]])
    >>> p = dict(W_enc=W_enc, b_enc=np.zeros(2), W_dec=np.zeros((2, 2)), b_dec=np.zeros(2))
    >>> float(jumprelu_quadratic_l0_total_loss(x, **p, theta=np.full(2, 0.5), l0_coefficient=1.0,
    ...     bandwidth=1.0, target_l0=1, conventions=Conventions(encode="untied")))  # ½‖x‖² + mean(2, 2)
    2.5
    """
    check_coefficient("l0_coefficient", l0_coefficient)
    check_target_l0(target_l0)
    reconstruction = jumprelu_total_loss(
        x, W_enc, b_enc, W_dec, b_dec, theta, l0_coefficient=0.0, bandwidth=bandwidth, conventions=conventions
    )
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=conventions.encode)
    counts = (z > theta).sum(axis=-1)
    penalty = (2.0 / target_l0 * (counts - target_l0) ** 2).sum(axis=0) / x.shape[0]
    return np.asarray(reconstruction + l0_coefficient * penalty.sum())


@typechecked
def jumprelu_quadratic_l0_loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    theta: LatentVector,
    *,
    l0_coefficient: float,
    bandwidth: float,
    target_l0: float,
    conventions: Conventions = Conventions(),
    parametrisation: Parametrisation = "theta",
    ste: Ste = "threshold_only",
) -> dict[str, np.ndarray]:
    """Gradients of `jumprelu_quadratic_l0_total_loss` (EQ-16): JUMP-6's at λ = 0 and the penalty's through
    JUMP-4's step at z, ∂/∂θ_j = Σ_b (λ/B)(4/T)(L0_b − T) · (−1/ε) K((z_bj − θ_j)/ε) (times θ under log θ;
    at z too under `ste="also_input"`)."""
    check_coefficient("l0_coefficient", l0_coefficient)
    check_target_l0(target_l0)
    scale = l0_coefficient * 4.0 / (target_l0 * x.shape[0])
    params = (W_enc, b_enc, W_dec, b_dec, theta)
    return _count_penalty_gradients(
        x, params, lambda counts: scale * (counts - target_l0), bandwidth, conventions, parametrisation, ste
    )
