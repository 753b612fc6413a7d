"""Loss definitions (LOSS): reconstruction conventions `sum`, `mean`, `fvu`; sparsity `l1`,
`l1_decoder_norm`; the total loss. Per-instance results have shape `*inst` (0-d without an
instance axis); the total loss sums instances (LOSS-6).
"""

from __future__ import annotations

import numpy as np

from refsae._typecheck import typechecked
from refsae.conventions import (
    RECONSTRUCTION,
    SPARSITY,
    Conventions,
    ReconstructionConvention,
    SparsityConvention,
    check_choice,
    check_coefficient,
)
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
from refsae.oracle.forward import forward

__all__ = ["reconstruction_loss", "sparsity_loss", "total_loss", "total_variance"]


def _batch_and_dim_sum(a: np.ndarray) -> np.ndarray:
    """Σ over the batch axis (0) and the feature axis (-1): shape `*inst`."""
    return np.asarray(a.sum(axis=(0, -1)))


@typechecked
def total_variance(x: InputBatch) -> PerInstance:
    """Σ_{b,d} (x - mean_b x)², centring each dimension by its batch mean (LOSS-3, MET-3)."""
    _validate.nonempty_batch(x)
    _validate.finite(x=x)
    centred = x - x.mean(axis=0, keepdims=True)
    return _batch_and_dim_sum(centred**2)


@typechecked
def reconstruction_loss(
    x: InputBatch,
    x_hat: InputBatch,
    *,
    reconstruction: ReconstructionConvention = "sum",
) -> PerInstance:
    """Reconstruction loss under a named convention.

    - `sum` (LOSS-1): mean over batch of Σ_d (x_hat - x)².
    - `mean` (LOSS-2): mean over batch and d_in of (x_hat - x)²; equals `sum` / d_in.
    - `fvu` (LOSS-3): Σ_{b,d} (x_hat - x)² / Σ_{b,d} (x - mean_b x)²; a batch with zero total
      variance raises `ValueError` (LOSS-8).

    >>> import numpy as np
    >>> x = np.array([[0.0, 0.0], [2.0, 2.0]]); x_hat = np.array([[1.0, 0.0], [2.0, 2.0]])
    >>> float(reconstruction_loss(x, x_hat)), float(reconstruction_loss(x, x_hat, reconstruction="mean"))
    (0.5, 0.25)
    >>> float(reconstruction_loss(x, x_hat, reconstruction="fvu"))
    0.25
    """
    check_choice("reconstruction", reconstruction, RECONSTRUCTION)
    _validate.nonempty_batch(x)
    _validate.finite(x=x, x_hat=x_hat)
    squared = (x_hat - x) ** 2
    batch, d_in = x.shape[0], x.shape[-1]
    if reconstruction == "sum":
        return np.asarray(_batch_and_dim_sum(squared) / batch)
    if reconstruction == "mean":
        return np.asarray(_batch_and_dim_sum(squared) / (batch * d_in))
    variance = total_variance(x)
    if np.any(variance == 0.0):
        raise ValueError("fvu is undefined for a batch whose total variance is zero (e.g. batch of 1)")
    return np.asarray(_batch_and_dim_sum(squared) / variance)


@typechecked
def sparsity_loss(
    f: LatentBatch,
    W_dec: DecoderWeights,
    *,
    sparsity: SparsityConvention = "l1",
) -> PerInstance:
    """Sparsity penalty under a named convention.

    - `l1` (LOSS-4): mean over batch of Σ_j |f_j|.
    - `l1_decoder_norm` (LOSS-5): mean over batch of Σ_j |f_j| · ‖W_dec_j‖₂, with the norm of the
      raw parameter W_dec whatever the decoder convention.

    >>> import numpy as np
    >>> f = np.array([[1.0, 2.0]]); W_dec = np.array([[3.0, 4.0], [0.0, 0.5]])
    >>> float(sparsity_loss(f, W_dec)), float(sparsity_loss(f, W_dec, sparsity="l1_decoder_norm"))
    (3.0, 6.0)
    """
    check_choice("sparsity", sparsity, SPARSITY)
    _validate.nonempty_batch(f, "f")
    _validate.finite(f=f, W_dec=W_dec)
    magnitude = np.abs(f)
    if sparsity == "l1_decoder_norm":
        magnitude = magnitude * np.linalg.norm(W_dec, axis=-1)
    return np.asarray(_batch_and_dim_sum(magnitude) / f.shape[0])


@typechecked
def total_loss(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    l1_coefficient: float,
    conventions: Conventions = Conventions(),
) -> Scalar:
    """L = Σ_instances [reconstruction + l1_coefficient · sparsity] (LOSS-6); coefficient >= 0 (LOSS-7)."""
    check_coefficient("l1_coefficient", l1_coefficient)
    c = conventions
    f, x_hat = forward(x, W_enc, b_enc, W_dec, b_dec, encode=c.encode, decoder=c.decoder, eps=c.eps)
    per_instance = reconstruction_loss(x, x_hat, reconstruction=c.reconstruction) + l1_coefficient * (
        sparsity_loss(f, W_dec, sparsity=c.sparsity)
    )
    return np.asarray(per_instance.sum())
