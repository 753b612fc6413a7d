"""Matryoshka SAEs (Bussmann, Nabeshima, Karvonen & Nanda 2025, *Learning Multi-Level Features with
Matryoshka Sparse Autoencoders*; Nabeshima 2024), MAT-1..MAT-8 (specs/matryoshka.md).

The latents are ordered; widths m_1 < m_2 < … < m_n = d_sae name nested prefixes ("levels"), and each
prefix must reconstruct x on its own. With one set of latents f (for BatchTopK: the whole batch's
selection, computed once on every latent, MAT-4) and Ŵ the decoder directions (DEC-2, DEC-3):

    x̂_i = Σ_{j < m_i} f_j Ŵ_j + b_dec                      (MAT-2; x̂_n is the SAE's x̂)
    L   = Σ_i w_i R(x, x̂_i)    w_i = 1 (`summed`, MAT-5) or 1/n (`averaged`, MAT-6)    (MAT-3)

R is LOSS-1..LOSS-3's reconstruction loss, per instance; L is summed over instances (LOSS-6). The
gradient is linear in the levels (MAT-7): level i's loss is the full loss of the latents f ⊙ 1[j < m_i],
so ∂L = Σ_i w_i · GRAD(mask ∧ j < m_i), which is how this module computes it (no autodiff).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Literal

import numpy as np
from jaxtyping import Float64

from refsae._typecheck import typechecked
from refsae.conventions import (
    DEFAULT_EPS,
    OPERATION_AXES,
    Conventions,
    DecoderConvention,
    ReconstructionConvention,
    check_choice,
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
from refsae.oracle.batchtopk import check_batch_k, selected
from refsae.oracle.forward import decode, pre_activations
from refsae.oracle.gradients import Gradients, gradients_given_mask
from refsae.oracle.losses import reconstruction_loss

__all__ = [
    "matryoshka_batchtopk_loss_gradients",
    "matryoshka_batchtopk_total_loss",
    "matryoshka_decode",
    "matryoshka_reconstruction_loss",
]

Levels = Literal["summed", "averaged"]
LEVELS: tuple[str, ...] = OPERATION_AXES["levels"]

LevelReconstructions = Float64[np.ndarray, "levels batch *inst d_in"]


def check_widths(widths: Sequence[int], d_sae: int) -> tuple[int, ...]:
    """`widths` is a non-empty sequence of integers 1 <= m_1 < … < m_n = d_sae (MAT-1); returned as a
    tuple. A library whose last width may stay below d_sae appends d_sae (its adapter says so)."""
    if isinstance(widths, str | bytes) or not isinstance(widths, Sequence) or len(widths) == 0:
        raise ValueError(f"widths must be a non-empty sequence of integers, got {widths!r}")
    if any(isinstance(m, bool) or not isinstance(m, int | np.integer) for m in widths):
        raise ValueError(f"widths must be integers, got {widths!r}")
    w = tuple(int(m) for m in widths)
    if w[0] < 1 or any(a >= b for a, b in pairwise(w)):
        raise ValueError(f"widths must increase strictly from >= 1, got {w}")
    if w[-1] != d_sae:
        raise ValueError(f"the last width must be d_sae = {d_sae} (the whole SAE), got {w}")
    return w


def level_weights(n_levels: int, levels: str) -> tuple[float, ...]:
    """w_i: 1 for every level (`summed`, MAT-5) or 1/n (`averaged`, MAT-6)."""
    check_choice("levels", levels, LEVELS)
    return (1.0,) * n_levels if levels == "summed" else (1.0 / n_levels,) * n_levels


def prefix_mask(d_sae: int, width: int) -> np.ndarray:
    """1[j < width] over the latent axis."""
    return np.arange(d_sae) < width


@typechecked
def matryoshka_decode(
    f: LatentBatch,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    widths: Sequence[int],
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> LevelReconstructions:
    """x̂_i = Σ_{j < m_i} f_j Ŵ_j + b_dec for each level, stacked on a leading axis (MAT-2); the last is
    DEC-1's x̂.

    >>> import numpy as np
    >>> W_dec = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> matryoshka_decode(np.array([[2.0, 3.0, 4.0]]), W_dec, np.zeros(2), widths=(1, 3)).tolist()
    [[[2.0, 0.0]], [[6.0, 7.0]]]
    """
    w = check_widths(widths, f.shape[-1])
    return np.stack(
        [
            decode(np.where(prefix_mask(f.shape[-1], m), f, 0.0), W_dec, b_dec, decoder=decoder, eps=eps)
            for m in w
        ]
    )


@typechecked
def matryoshka_reconstruction_loss(
    x: InputBatch,
    f: LatentBatch,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    widths: Sequence[int],
    levels: Levels = "summed",
    reconstruction: ReconstructionConvention = "sum",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> Scalar:
    """Σ_inst Σ_i w_i R(x, x̂_i) for given latents, whatever activation made them (MAT-3, MAT-5, MAT-6).

    >>> import numpy as np
    >>> x, W_dec = np.array([[2.0, 3.0]]), np.eye(2)
    >>> f = np.array([[2.0, 3.0]])       # level 1 misses x's second coordinate: R = 9; level 2: 0
    >>> float(matryoshka_reconstruction_loss(x, f, W_dec, np.zeros(2), widths=(1, 2)))
    9.0
    >>> float(matryoshka_reconstruction_loss(x, f, W_dec, np.zeros(2), widths=(1, 2), levels="averaged"))
    4.5
    """
    _validate.finite(x=x)
    x_hats = matryoshka_decode(f, W_dec, b_dec, widths=widths, decoder=decoder, eps=eps)
    weights = level_weights(len(x_hats), levels)
    per_instance = sum(
        w * reconstruction_loss(x, x_hat, reconstruction=reconstruction)
        for w, x_hat in zip(weights, x_hats, strict=True)
    )
    return np.asarray(np.sum(per_instance))


def _batchtopk_mask(
    x: np.ndarray, W_enc: np.ndarray, b_enc: np.ndarray, b_dec: np.ndarray, k: int, encode: str
) -> tuple[np.ndarray, np.ndarray]:
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=encode)  # type: ignore[arg-type]
    check_batch_k(k, z.shape[-1])
    return z, selected(z, k) & (z > 0.0)


@typechecked
def matryoshka_batchtopk_total_loss(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    k: int,
    widths: Sequence[int],
    levels: Levels = "summed",
    conventions: Conventions = Conventions(),
) -> Scalar:
    """MAT-3's loss with BatchTopK training latents (BTOPK-1), selected once over all d_sae latents
    (MAT-4): the Matryoshka BatchTopK SAE of SAELens and dictionary_learning."""
    c = conventions
    check_widths(widths, W_enc.shape[-1])
    z, active = _batchtopk_mask(x, W_enc, b_enc, b_dec, k, c.encode)
    f = np.where(active, z, 0.0)
    return matryoshka_reconstruction_loss(
        x,
        f,
        W_dec,
        b_dec,
        widths=widths,
        levels=levels,
        reconstruction=c.reconstruction,
        decoder=c.decoder,
        eps=c.eps,
    )


@typechecked
def matryoshka_batchtopk_loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    k: int,
    widths: Sequence[int],
    levels: Levels = "summed",
    conventions: Conventions = Conventions(),
) -> Gradients:
    """Gradients of `matryoshka_batchtopk_total_loss` (MAT-7): Σ_i w_i times GRAD-1..GRAD-5 for the
    mask 1[(b, j) selected ∧ z > 0 ∧ j < m_i]; the selection passes no gradient (BTOPK-3)."""
    c = conventions
    w = check_widths(widths, W_enc.shape[-1])
    z, active = _batchtopk_mask(x, W_enc, b_enc, b_dec, k, c.encode)
    total: dict[str, np.ndarray] = {}
    for weight, m in zip(level_weights(len(w), levels), w, strict=True):
        level = gradients_given_mask(
            x, W_enc, b_enc, W_dec, b_dec, z, active & prefix_mask(z.shape[-1], m), 0.0, c
        ).as_dict()
        total = {n: total.get(n, 0.0) + weight * g for n, g in level.items()}
    return Gradients(**total)
