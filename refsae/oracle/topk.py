"""TopK activation (Gao et al. 2024, *Scaling and evaluating sparse autoencoders*), TOPK-1..TOPK-7.

Per example (and per instance), keep the k largest pre-activations and clamp them at 0; every other
latent is 0. The oracle is the dense formulation: latents `f` of shape (batch, *inst, d_sae).
Selections are canonical (TOPK-2): by value, descending, the lower index first among equal values.

    selected_b = the k indices of the largest z_bj        (ties: lower j first)
    f_bj       = max(z_bj, 0) if j ∈ selected_b else 0

SAELens's TopK and BatchTopK training SAEs select on z_j ‖W_dec_j‖ and decode f_j / ‖W_dec_j‖: the
equivalence `rescaled_by_decoder_norm` (EQ-7), defined here (`rescaled_loss_and_gradients`).
"""

from __future__ import annotations

from collections.abc import Callable

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
from refsae.oracle.gradients import Gradients, gradients_given_mask, reconstruction_scale
from refsae.oracle.losses import reconstruction_loss, sparsity_loss

__all__ = [
    "decode_sparse",
    "topk",
    "topk_encode",
    "topk_encode_sparse",
    "topk_loss_gradients",
    "topk_rescaled_loss_gradients",
    "topk_rescaled_total_loss",
    "topk_select",
    "topk_total_loss",
]

EQUIVALENCE_FUNCTIONS: tuple[str, ...] = (
    "topk_rescaled_loss_gradients",
    "topk_rescaled_total_loss",
)
"""Functions of `__all__` that define named equivalences (specs/equivalences.md), not operations:
references only, so refsae.torch has no twin of them."""


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


def rescaled_loss_and_gradients(
    x: np.ndarray,
    W_enc: np.ndarray,
    b_enc: np.ndarray,
    W_dec: np.ndarray,
    b_dec: np.ndarray,
    selected: Callable[[np.ndarray], np.ndarray],
    l1_coefficient: float,
    c: Conventions,
) -> tuple[np.ndarray, Gradients]:
    """The loss and its exact gradients when latents are selected and valued on h = z ⊙ n, n_j = ‖W_dec_j‖,
    and decoded as f_j / n_j (EQ-7; `selected(h)` is the selection mask). The chain rule, written as
    autograd runs it through SAELens's `hidden_pre * W_dec.norm(dim=-1)` and
    `feature_acts * (1 / W_dec.norm(dim=-1)) @ W_dec`, both paths through n included:

        h = z n,   f = h ⊙ 1[selected(h) ∧ h > 0],   a = f / n,   x_hat = a W_dec + b_dec
        g_a = g_xhat W_decᵀ,   g_f = g_a / n + λ ∂S/∂f,   g_h = g_f ⊙ active,   g_z = g_h n
        ∂L/∂n_j = Σ_b [g_h z − f g_a / n²]_bj (+ λ/B Σ_b |f_bj| under l1_decoder_norm)
        ∂L/∂W_dec_j = Σ_b a_bj g_xhat_b + ∂L/∂n_j · W_dec_j / n_j

    and ∂L/∂W_enc, ∂L/∂b_enc, ∂L/∂b_dec from g_z as GRAD-1..GRAD-4. The sparsity term S (the row's
    `sparsity` convention, λ = `l1_coefficient`) penalises f, the latents the library returns. The
    decoder convention of `c` is not used: the decode is f / n through the raw W_dec. A zero row (n_j = 0)
    is never active and contributes nothing (SAELens gives NaN there)."""
    batch = x.shape[0]
    n = np.linalg.norm(W_dec, axis=-1)
    safe = np.where(n > 0, n, 1.0)
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    h = z * n
    active = selected(h) & (h > 0.0)
    f = np.where(active, h, 0.0)
    a = f / safe
    x_hat = np.einsum("b...j,...ji->b...i", a, W_dec) + b_dec
    loss = reconstruction_loss(x, x_hat, reconstruction=c.reconstruction) + l1_coefficient * sparsity_loss(
        f, W_dec, sparsity=c.sparsity
    )

    g_xhat = reconstruction_scale(x, c.reconstruction) * (x_hat - x)
    g_a = np.einsum("b...i,...ji->b...j", g_xhat, W_dec)
    dS_df = np.sign(f) / batch * (n if c.sparsity == "l1_decoder_norm" else 1.0)
    g_h = np.where(active, g_a / safe + l1_coefficient * dS_df, 0.0)
    g_z = g_h * n
    g_n = (g_h * z - f * g_a / safe**2).sum(axis=0)
    if c.sparsity == "l1_decoder_norm":
        g_n = g_n + l1_coefficient / batch * np.abs(f).sum(axis=0)
    u = x - b_dec if c.encode == "tied" else x
    grad_b_enc = g_z.sum(axis=0)
    grad_b_dec = g_xhat.sum(axis=0)
    if c.encode == "tied":
        grad_b_dec = grad_b_dec - np.einsum("...j,...ij->...i", grad_b_enc, W_enc)
    grad_W_dec = np.einsum("b...j,b...i->...ji", a, g_xhat) + (g_n / safe)[..., None] * W_dec
    grads = Gradients(
        W_enc=np.einsum("b...i,b...j->...ij", u, g_z), b_enc=grad_b_enc, W_dec=grad_W_dec, b_dec=grad_b_dec
    )
    return np.asarray(loss.sum()), grads


def _topk_mask(k: int) -> Callable[[np.ndarray], np.ndarray]:
    def mask(h: np.ndarray) -> np.ndarray:
        _, indices = topk_select(h, k=k)
        chosen = np.zeros(h.shape, dtype=bool)
        np.put_along_axis(chosen, indices, True, axis=-1)
        return chosen

    return mask


@typechecked
def topk_rescaled_total_loss(
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
    """`topk_total_loss` under the equivalence `rescaled_by_decoder_norm` (EQ-7): the k largest
    z_j ‖W_dec_j‖ per example selected, f_j = max(z_j ‖W_dec_j‖, 0) decoded as f_j / ‖W_dec_j‖, i.e.
    x_hat = Σ_selected max(z_j, 0) W_dec_j + b_dec.

    >>> import numpy as np   # z = (1, 1.5), norms (2, 1): latent 0 is selected (2 > 1.5)
    >>> x = np.array([[1.0, 1.5]]); W_dec = np.diag([2.0, 1.0])
    >>> float(topk_rescaled_total_loss(x, np.eye(2), np.zeros(2), W_dec, np.zeros(2), k=1))
    3.25
    """
    check_coefficient("l1_coefficient", l1_coefficient)
    check_k(k, W_dec.shape[-2])
    mask = _topk_mask(k)
    return rescaled_loss_and_gradients(x, W_enc, b_enc, W_dec, b_dec, mask, l1_coefficient, conventions)[0]


@typechecked
def topk_rescaled_loss_gradients(
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
    """Gradients of `topk_rescaled_total_loss` (EQ-7), through both uses of ‖W_dec_j‖."""
    check_coefficient("l1_coefficient", l1_coefficient)
    check_k(k, W_dec.shape[-2])
    mask = _topk_mask(k)
    return rescaled_loss_and_gradients(x, W_enc, b_enc, W_dec, b_dec, mask, l1_coefficient, conventions)[1]
