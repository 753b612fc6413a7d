"""Weight folding (FOLD; specs/folding.md): moving the decoder's row norms into the encoder, and an
input scale used in training into the parameters, so that the folded SAE computes the same
reconstruction from the raw input. Each function returns new arrays; none changes its inputs.
"""

from __future__ import annotations

import math

import numpy as np

from refsae._typecheck import typechecked
from refsae.conventions import OPERATION_AXES, FoldInto, check_choice
from refsae.oracle import _validate
from refsae.oracle._shapes import DecoderWeights, EncoderWeights, InputVector, LatentVector

__all__ = [
    "fold_W_dec_norm",
    "fold_W_dec_norm_clamped",
    "fold_W_dec_norm_threshold",
    "fold_input_scale",
    "fold_input_scale_threshold",
]

EQUIVALENCE_FUNCTIONS: tuple[str, ...] = ("fold_W_dec_norm_clamped",)
"""Functions of `__all__` that define named equivalences (specs/equivalences.md), not operations."""

SAELENS_NORM_CLAMP = 1e-8
"""SAELens's `get_W_dec_norm` clamps the row norms at 1e-8 (EQ-15)."""


def row_scales(W_dec: np.ndarray) -> np.ndarray:
    """s_j = ‖W_dec_j‖, and 1 for a zero row (FOLD-2): the factor each latent is folded by."""
    n = np.linalg.norm(W_dec, axis=-1)
    return np.asarray(np.where(n > 0, n, 1.0))


@typechecked
def fold_W_dec_norm(
    W_enc: EncoderWeights, b_enc: LatentVector, W_dec: DecoderWeights
) -> tuple[EncoderWeights, LatentVector, DecoderWeights]:
    """(W_enc · s, b_enc · s, W_dec / s) with s_j = ‖W_dec_j‖ (FOLD-1): unit decoder rows, the same
    reconstruction for a ReLU SAE, latents multiplied by s_j. A zero row keeps s_j = 1 (FOLD-2).

    >>> import numpy as np
    >>> W_enc, b_enc, W_dec = np.ones((2, 2)), np.array([1.0, -1.0]), np.array([[3.0, 4.0], [0.0, 0.0]])
    >>> [a.tolist() for a in fold_W_dec_norm(W_enc, b_enc, W_dec)]
    [[[5.0, 1.0], [5.0, 1.0]], [5.0, -1.0], [[0.6, 0.8], [0.0, 0.0]]]
    """
    _validate.finite(W_enc=W_enc, b_enc=b_enc, W_dec=W_dec)
    s = row_scales(W_dec)
    return W_enc * s[..., None, :], b_enc * s, W_dec / s[..., :, None]


@typechecked
def fold_W_dec_norm_clamped(
    W_enc: EncoderWeights, b_enc: LatentVector, W_dec: DecoderWeights
) -> tuple[EncoderWeights, LatentVector, DecoderWeights]:
    """SAELens's `fold_W_dec_norm` (`sae_lens/saes/sae.py`, `get_W_dec_norm`): FOLD-1 with
    s_j = max(‖W_dec_j‖, 1e-8), so a zero row's latent is multiplied by 1e-8 rather than kept (EQ-15);
    the reconstruction is the same.

    >>> import numpy as np
    >>> fold_W_dec_norm_clamped(np.ones((2, 1)), np.ones(1), np.zeros((1, 2)))[1].tolist()
    [1e-08]
    """
    _validate.finite(W_enc=W_enc, b_enc=b_enc, W_dec=W_dec)
    s = np.maximum(np.linalg.norm(W_dec, axis=-1), SAELENS_NORM_CLAMP)
    return W_enc * s[..., None, :], b_enc * s, W_dec / s[..., :, None]


@typechecked
def fold_W_dec_norm_threshold(W_dec: DecoderWeights, theta: LatentVector) -> LatentVector:
    """A JumpReLU threshold after FOLD-1: θ_j · s_j (FOLD-3), so that the same latents fire.

    >>> import numpy as np
    >>> fold_W_dec_norm_threshold(np.array([[3.0, 4.0], [0.0, 0.0]]), np.array([0.5, 0.5])).tolist()
    [2.5, 0.5]
    """
    _validate.finite(W_dec=W_dec, theta=theta)
    return np.asarray(theta * row_scales(W_dec))


def check_scale(factor: float) -> None:
    """An input scale is a finite number > 0 (FOLD-4)."""
    if (
        isinstance(factor, bool)
        or not isinstance(factor, (int, float))
        or not (math.isfinite(factor) and factor > 0)
    ):
        raise ValueError(f"factor must be a finite number > 0, got {factor!r}")


def check_fold(factor: float, fold_into: str) -> None:
    check_scale(factor)
    check_choice("fold_into", fold_into, OPERATION_AXES["fold_into"])


@typechecked
def fold_input_scale(
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    factor: float,
    fold_into: FoldInto = "weights",
) -> tuple[EncoderWeights, LatentVector, DecoderWeights, InputVector]:
    """Fold the scale c of inputs trained on as c·x, with reconstructions divided by c (FOLD-4):
    `weights` (SAELens): (c·W_enc, b_enc, W_dec / c, b_dec / c), latents unchanged (FOLD-5);
    `biases` (dictionary_learning's `scale_biases(1/c)`): (W_enc, b_enc / c, W_dec, b_dec / c),
    latents divided by c (FOLD-6). Either way x̂'(x) = x̂(c·x) / c.

    >>> import numpy as np
    >>> p = (np.ones((1, 1)), np.array([2.0]), np.ones((1, 1)), np.array([4.0]))
    >>> [a.tolist() for a in fold_input_scale(*p, factor=2.0)]
    [[[2.0]], [2.0], [[0.5]], [2.0]]
    >>> [a.tolist() for a in fold_input_scale(*p, factor=2.0, fold_into="biases")]
    [[[1.0]], [1.0], [[1.0]], [2.0]]
    """
    check_fold(factor, fold_into)
    _validate.finite(W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=b_dec)
    if fold_into == "weights":
        return W_enc * factor, b_enc.copy(), W_dec / factor, b_dec / factor
    return W_enc.copy(), b_enc / factor, W_dec.copy(), b_dec / factor


@typechecked
def fold_input_scale_threshold(
    theta: LatentVector, *, factor: float, fold_into: FoldInto = "weights"
) -> LatentVector:
    """A JumpReLU threshold after FOLD-4 (FOLD-7): unchanged under `weights` (the latents are), θ / c
    under `biases` (dictionary_learning's `scale_biases` multiplies `threshold` too).

    >>> import numpy as np
    >>> fold_input_scale_threshold(np.array([1.0]), factor=4.0, fold_into="biases").tolist()
    [0.25]
    """
    check_fold(factor, fold_into)
    _validate.finite(theta=theta)
    return theta.copy() if fold_into == "weights" else theta / factor
