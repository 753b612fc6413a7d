"""BatchTopK (Bussmann, Leask & Nanda 2024, *BatchTopK Sparse Autoencoders*), BTOPK-1..BTOPK-7.

Training keeps the k·B largest pre-activations of the whole batch (per instance) instead of k per
example, clamped at 0: examples share a budget of k·B active latents. Inference cannot depend on the
rest of the batch, so it applies one threshold θ, estimated during training from the smallest
positive value each batch kept:

    S        = the k·B largest z_bj over (b, j)      (ties: the lower flat index b·d_sae + j first)
    f_bj     = max(z_bj, 0) if (b, j) ∈ S else 0                                        (training)
    m        = min { f_bj : (b, j) ∈ S, f_bj > 0 }   (undefined when the batch kept no positive value)
    θ       ← θ + (m − θ)/(n + 1)  ("mean", n batches so far)   or   β θ + (1 − β) m  ("ema")
    f_bj     = z_bj · 1[z_bj > θ]                                                       (inference)

Definitions of named equivalences (specs/equivalences.md): the loss and gradients of SAELens's
selection on z_j ‖W_dec_j‖ (`rescaled_by_decoder_norm`, EQ-7) and inference with z >= θ
(`threshold_at_or_above`, EQ-9).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Literal

import numpy as np
from jaxtyping import Bool

from refsae._typecheck import typechecked
from refsae.conventions import OPERATION_AXES, Conventions, check_choice, check_coefficient
from refsae.oracle import _validate
from refsae.oracle._shapes import (
    DecoderWeights,
    EncoderWeights,
    InputBatch,
    InputVector,
    LatentBatch,
    LatentVector,
    PerInstance,
    Scalar,
)
from refsae.oracle.forward import decode, pre_activations
from refsae.oracle.gradients import Gradients, gradients_given_mask
from refsae.oracle.losses import reconstruction_loss, sparsity_loss
from refsae.oracle.topk import rescaled_loss_and_gradients

__all__ = [
    "batchtopk",
    "batchtopk_inference",
    "batchtopk_inference_at_or_above",
    "batchtopk_loss_gradients",
    "batchtopk_min_positive",
    "batchtopk_rescaled_loss_gradients",
    "batchtopk_rescaled_total_loss",
    "batchtopk_total_loss",
    "batchtopk_update_threshold",
]

EQUIVALENCE_FUNCTIONS: tuple[str, ...] = (
    "batchtopk_inference_at_or_above",
    "batchtopk_rescaled_loss_gradients",
    "batchtopk_rescaled_total_loss",
)
"""Functions of `__all__` that define named equivalences (specs/equivalences.md), not operations: the
conformance suite's references only, so refsae.torch has no twin of them."""

ThresholdUpdate = Literal["mean", "ema"]
THRESHOLD_UPDATES: tuple[str, ...] = OPERATION_AXES["update"]


def check_batch_k(k: int, d_sae: int) -> None:
    """`k` (active latents per example, on average) is an integer in 1 … d_sae (BTOPK-1)."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= d_sae:
        raise ValueError(f"k must be an integer in 1 … d_sae = {d_sae}, got {k!r}")


def check_update_options(n_batches: int, update: str, beta: float) -> None:
    """`update` is `mean` or `ema`, `n_batches` an integer >= 0, `beta` finite in [0, 1) (BTOPK-7)."""
    check_choice("update", update, THRESHOLD_UPDATES)
    if isinstance(n_batches, bool) or not isinstance(n_batches, int) or n_batches < 0:
        raise ValueError(f"n_batches must be an integer >= 0, got {n_batches!r}")
    if isinstance(beta, bool) or not (
        isinstance(beta, int | float) and math.isfinite(beta) and 0 <= beta < 1
    ):
        raise ValueError(f"beta must be a finite number in [0, 1), got {beta!r}")


def selected(z: np.ndarray, k: int) -> np.ndarray:
    """The canonical batch selection: per instance, the k·B largest entries of z over (b, j), the
    lower flat index b·d_sae + j first among equal values (BTOPK-2)."""
    batch, d_sae = z.shape[0], z.shape[-1]
    flat = np.moveaxis(z, 0, -2).reshape(*z.shape[1:-1], batch * d_sae)  # (*inst, B·d_sae), b-major
    order = np.argsort(-flat, axis=-1, kind="stable")[..., : k * batch]
    chosen = np.zeros(flat.shape, dtype=bool)
    np.put_along_axis(chosen, order, True, axis=-1)
    return np.moveaxis(chosen.reshape(*z.shape[1:-1], batch, d_sae), -2, 0)


@typechecked
def batchtopk(z: LatentBatch, *, k: int) -> LatentBatch:
    """Training latents: max(z, 0) at the k·B largest entries of the batch, 0 elsewhere (BTOPK-1).

    >>> import numpy as np
    >>> batchtopk(np.array([[3.0, 2.0, 1.0], [0.5, 4.0, -1.0]]), k=1).tolist()   # 2 of 6 kept
    [[3.0, 0.0, 0.0], [0.0, 4.0, 0.0]]
    >>> batchtopk(np.array([[3.0, 2.5, 1.0], [0.5, 0.25, -1.0]]), k=1).tolist()  # both in row 0
    [[3.0, 2.5, 0.0], [0.0, 0.0, 0.0]]
    """
    check_batch_k(k, z.shape[-1])
    _validate.nonempty_batch(z, "z")
    _validate.finite(z=z)
    return np.where(selected(z, k), np.maximum(z, 0.0), 0.0)


@typechecked
def batchtopk_min_positive(f: LatentBatch) -> tuple[PerInstance, Bool[np.ndarray, "*inst"]]:
    """(m, has): the smallest positive latent of the batch per instance, and whether there is one;
    m = 0 where there is none (an all-zero batch), never NaN or inf (BTOPK-4).

    >>> import numpy as np
    >>> m, has = batchtopk_min_positive(np.array([[0.0, 3.0], [0.5, 0.0]]))
    >>> float(m), bool(has)
    (0.5, True)
    """
    _validate.nonempty_batch(f, "f")
    _validate.finite(f=f)
    positive = f > 0
    has = positive.any(axis=(0, -1))
    smallest = np.where(positive, f, np.inf).min(axis=(0, -1))
    return np.where(has, smallest, 0.0), np.asarray(has)


@typechecked
def batchtopk_update_threshold(
    threshold: PerInstance | float,
    f: LatentBatch,
    *,
    n_batches: int,
    update: ThresholdUpdate = "mean",
    beta: float = 0.99,
) -> PerInstance:
    """The threshold estimate after one more training batch `f` (BTOPK-4, BTOPK-5). `mean`: the
    running mean of the batches' minima, `n_batches` the number of minima averaged so far (the
    first becomes the estimate itself); `ema`: β θ + (1 − β) m. An instance whose batch kept no
    positive latent keeps its estimate (and does not count as a batch).

    >>> import numpy as np
    >>> f = np.array([[0.0, 3.0], [0.5, 0.0]])
    >>> batchtopk_update_threshold(np.array(1.0), f, n_batches=1).tolist()   # (1 + 0.5)/2
    0.75
    >>> batchtopk_update_threshold(np.array(1.0), f, n_batches=0).tolist()   # the first batch
    0.5
    """
    check_update_options(n_batches, update, beta)
    threshold = np.asarray(threshold, dtype=np.float64)  # a NumPy scalar is a 0-d threshold
    if threshold.shape != f.shape[1:-1]:
        raise ValueError(f"threshold has shape {threshold.shape}; one per instance is {f.shape[1:-1]}")
    _validate.finite(threshold=threshold)
    m, has = batchtopk_min_positive(f)
    new = (
        threshold + (m - threshold) / (n_batches + 1)
        if update == "mean"
        else beta * threshold + (1 - beta) * m
    )
    return np.where(has, new, threshold)


@typechecked
def batchtopk_inference(z: LatentBatch, threshold: PerInstance | float) -> LatentBatch:
    """Inference latents: z · 1[z > θ], strictly, with one θ per instance (BTOPK-6): a JumpReLU whose
    thresholds all equal θ (JUMP-1). A θ <= 0 keeps every positive z (and no other)."""
    _validate.nonempty_batch(z, "z")
    threshold = np.asarray(threshold, dtype=np.float64)  # a NumPy scalar is a 0-d threshold
    if threshold.shape != z.shape[1:-1]:
        raise ValueError(f"threshold has shape {threshold.shape}; one per instance is {z.shape[1:-1]}")
    _validate.finite(z=z, threshold=threshold)
    theta = np.maximum(threshold, 0.0)[..., None]
    return np.where(z > theta, z, 0.0)


def _latents(
    x: np.ndarray, W_enc: np.ndarray, b_enc: np.ndarray, b_dec: np.ndarray, k: int, c: Conventions
) -> tuple[np.ndarray, np.ndarray]:
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    check_batch_k(k, z.shape[-1])
    return z, selected(z, k) & (z > 0.0)


@typechecked
def batchtopk_total_loss(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    k: int,
    l1_coefficient: float = 0.0,
    conventions: Conventions = Conventions(),
) -> Scalar:
    """LOSS-6 with BatchTopK training latents (BTOPK-3)."""
    check_coefficient("l1_coefficient", l1_coefficient)
    c = conventions
    z, active = _latents(x, W_enc, b_enc, b_dec, k, c)
    f = np.where(active, z, 0.0)
    x_hat = decode(f, W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    per_instance = reconstruction_loss(x, x_hat, reconstruction=c.reconstruction) + l1_coefficient * (
        sparsity_loss(f, W_dec, sparsity=c.sparsity)
    )
    return np.asarray(per_instance.sum())


@typechecked
def batchtopk_loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    k: int,
    l1_coefficient: float = 0.0,
    conventions: Conventions = Conventions(),
) -> Gradients:
    """Gradients of `batchtopk_total_loss`: GRAD-1..GRAD-6 with the mask 1[(b, j) selected ∧ z > 0]
    (BTOPK-3); the selection passes no gradient."""
    check_coefficient("l1_coefficient", l1_coefficient)
    z, active = _latents(x, W_enc, b_enc, b_dec, k, conventions)
    return gradients_given_mask(x, W_enc, b_enc, W_dec, b_dec, z, active, l1_coefficient, conventions)


@typechecked
def batchtopk_inference_at_or_above(z: LatentBatch, threshold: PerInstance | float) -> LatentBatch:
    """z · 1[z >= max(θ, 0)]: the tie equivalence `threshold_at_or_above` of `batchtopk_inference`
    (EQ-9); it differs from BTOPK-6 only where z = θ > 0 exactly (it keeps z there).

    >>> import numpy as np
    >>> batchtopk_inference_at_or_above(np.array([[0.5, 1.0, 2.0]]), np.array(1.0)).tolist()
    [[0.0, 1.0, 2.0]]
    """
    _validate.nonempty_batch(z, "z")
    threshold = np.asarray(threshold, dtype=np.float64)
    if threshold.shape != z.shape[1:-1]:
        raise ValueError(f"threshold has shape {threshold.shape}; one per instance is {z.shape[1:-1]}")
    _validate.finite(z=z, threshold=threshold)
    return np.where(z >= np.maximum(threshold, 0.0)[..., None], z, 0.0)


@typechecked
def batchtopk_rescaled_total_loss(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    k: int,
    l1_coefficient: float = 0.0,
    conventions: Conventions = Conventions(),
) -> Scalar:
    """`batchtopk_total_loss` under `rescaled_by_decoder_norm` (EQ-7): the k·B largest z_bj ‖W_dec_j‖ of
    the batch selected (BTOPK-2's order), f = max(z ‖W_dec_j‖, 0) decoded as f_j / ‖W_dec_j‖."""
    check_coefficient("l1_coefficient", l1_coefficient)
    check_batch_k(k, W_dec.shape[-2])
    mask = partial(selected, k=k)
    return rescaled_loss_and_gradients(x, W_enc, b_enc, W_dec, b_dec, mask, l1_coefficient, conventions)[0]


@typechecked
def batchtopk_rescaled_loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    k: int,
    l1_coefficient: float = 0.0,
    conventions: Conventions = Conventions(),
) -> Gradients:
    """Gradients of `batchtopk_rescaled_total_loss` (EQ-7), through both uses of ‖W_dec_j‖."""
    check_coefficient("l1_coefficient", l1_coefficient)
    check_batch_k(k, W_dec.shape[-2])
    mask = partial(selected, k=k)
    return rescaled_loss_and_gradients(x, W_enc, b_enc, W_dec, b_dec, mask, l1_coefficient, conventions)[1]
