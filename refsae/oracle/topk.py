"""TopK activation (Gao et al. 2024, *Scaling and evaluating sparse autoencoders*), TOPK-1..TOPK-7.

Per example (and per instance), keep the k largest pre-activations and clamp them at 0; every other
latent is 0. The oracle is the dense formulation: latents `f` of shape (batch, *inst, d_sae).
Selections are canonical (TOPK-2): by value, descending, the lower index first among equal values.

    selected_b = the k indices of the largest z_bj        (ties: lower j first)
    f_bj       = max(z_bj, 0) if j ∈ selected_b else 0
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float64, Int64

from refsae._typecheck import typechecked
from refsae.conventions import (
    DEFAULT_EPS,
    Conventions,
    DecoderConvention,
    EncodeConvention,
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
    Scalar,
)
from refsae.oracle.forward import decode, pre_activations
from refsae.oracle.gradients import Gradients, gradients_given_mask
from refsae.oracle.losses import reconstruction_loss, sparsity_loss

__all__ = [
    "decode_sparse",
    "topk",
    "topk_encode",
    "topk_encode_sparse",
    "topk_loss_gradients",
    "topk_select",
    "topk_total_loss",
]


def check_k(k: int, d_sae: int) -> None:
    """`k` is an integer in 1 … d_sae (TOPK-1)."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= d_sae:
        raise ValueError(f"k must be an integer in 1 … d_sae = {d_sae}, got {k!r}")


@typechecked
def topk_select(
    z: LatentBatch, *, k: int
) -> tuple[Float64[np.ndarray, "batch *inst k"], Int64[np.ndarray, "batch *inst k"]]:
    """The canonical selection (TOPK-1, TOPK-2): the k largest z per example, in descending order of
    value, the lower index first among equal values; returns their values (not clamped) and indices.

    >>> import numpy as np
    >>> values, indices = topk_select(np.array([[1.0, 3.0, 3.0, -2.0]]), k=2)
    >>> values.tolist(), indices.tolist()
    ([[3.0, 3.0]], [[1, 2]])
    """
    check_k(k, z.shape[-1])
    _validate.nonempty_batch(z, "z")
    _validate.finite(z=z)
    order = np.argsort(-z, axis=-1, kind="stable")[..., :k]  # stable: equal values keep index order
    return np.take_along_axis(z, order, axis=-1), order.astype(np.int64)


@typechecked
def topk(z: LatentBatch, *, k: int) -> LatentBatch:
    """Dense TopK latents: `max(z, 0)` at the canonical selection, 0 elsewhere (TOPK-1, TOPK-3).

    >>> import numpy as np
    >>> topk(np.array([[1.0, 3.0, -1.0, 2.0], [-1.0, -2.0, -3.0, 0.5]]), k=2).tolist()
    [[0.0, 3.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.5]]
    """
    values, indices = topk_select(z, k=k)
    f = np.zeros_like(z)
    np.put_along_axis(f, indices, np.maximum(values, 0.0), axis=-1)
    return f


def _active(z: np.ndarray, k: int) -> np.ndarray:
    """The latents that carry a value and a gradient: selected and z > 0 (TOPK-5)."""
    _, indices = topk_select(z, k=k)
    selected = np.zeros(z.shape, dtype=bool)
    np.put_along_axis(selected, indices, True, axis=-1)
    return selected & (z > 0.0)


@typechecked
def topk_encode(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    b_dec: InputVector,
    *,
    k: int,
    encode: EncodeConvention = "tied",
) -> LatentBatch:
    """f = TopK_k(z) with z the pre-activations of ENC-2/ENC-3 (TOPK-3)."""
    return topk(pre_activations(x, W_enc, b_enc, b_dec, encode=encode), k=k)


@typechecked
def topk_encode_sparse(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    b_dec: InputVector,
    *,
    k: int,
    encode: EncodeConvention = "tied",
) -> tuple[Float64[np.ndarray, "batch *inst k"], Int64[np.ndarray, "batch *inst k"]]:
    """(max(values, 0), indices) of the canonical selection of the pre-activations (TOPK-3): the
    sparse form of `topk_encode`, what `decode_sparse` takes."""
    values, indices = topk_select(pre_activations(x, W_enc, b_enc, b_dec, encode=encode), k=k)
    return np.maximum(values, 0.0), indices


@typechecked
def decode_sparse(
    values: Float64[np.ndarray, "batch *inst k"],
    indices: Int64[np.ndarray, "batch *inst k"],
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> InputBatch:
    """x_hat from a sparse code: Σ_i values_bi Ŵ_{indices_bi} + b_dec (TOPK-4). The oracle scatters
    into the dense f (adding values that share an index) and decodes it (DEC-1); indices must lie in
    0 … d_sae − 1.

    >>> import numpy as np
    >>> decode_sparse(np.array([[2.0, 1.0]]), np.array([[1, 0]]), np.array([[1.0, 0.0], [0.0, 3.0]]),
    ...               np.zeros(2)).tolist()
    [[1.0, 6.0]]
    """
    d_sae = W_dec.shape[-2]
    if indices.size and (indices.min() < 0 or indices.max() >= d_sae):
        raise ValueError(f"indices must lie in 0 … d_sae − 1 = {d_sae - 1}")
    _validate.finite(values=values)
    f = np.zeros((*values.shape[:-1], d_sae))
    batch_and_inst = np.indices(values.shape[:-1])
    np.add.at(f, (*batch_and_inst[..., None], indices), values)
    return decode(f, W_dec, b_dec, decoder=decoder, eps=eps)


@typechecked
def topk_total_loss(
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
    """LOSS-6 with TopK latents: Σ_instances reconstruction + λ · sparsity (λ = 0 by default: the
    TopK constraint replaces the penalty, TOPK-6)."""
    check_coefficient("l1_coefficient", l1_coefficient)
    c = conventions
    f = topk_encode(x, W_enc, b_enc, b_dec, k=k, encode=c.encode)
    x_hat = decode(f, W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    per_instance = reconstruction_loss(x, x_hat, reconstruction=c.reconstruction) + l1_coefficient * (
        sparsity_loss(f, W_dec, sparsity=c.sparsity)
    )
    return np.asarray(per_instance.sum())


@typechecked
def topk_loss_gradients(
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
    """Gradients of `topk_total_loss` (TOPK-5): GRAD-1..GRAD-6 with the ReLU mask 1[z > 0] replaced by
    1[j selected ∧ z > 0]; the selection itself is piecewise constant and passes no gradient."""
    check_coefficient("l1_coefficient", l1_coefficient)
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=conventions.encode)
    return gradients_given_mask(x, W_enc, b_enc, W_dec, b_dec, z, _active(z, k), l1_coefficient, conventions)
