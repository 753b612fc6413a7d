"""Weight folding in PyTorch (FOLD; specs/folding.md): the twins of `refsae.oracle.folding`, proven
against it by the rows of `refsae.checking.rows.folding`. Each returns new tensors (no in-place
update of its inputs), on CPU and CUDA, in every dtype, with or without the instance axis; the row
norms accumulate in the dtype's accumulator (TOL-3).
"""

from __future__ import annotations

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import FoldInto
from refsae.oracle.folding import check_fold
from refsae.torch import _validate
from refsae.torch._shapes import DecoderWeights, EncoderWeights, InputVector, LatentVector

__all__ = ["fold_W_dec_norm", "fold_W_dec_norm_threshold", "fold_input_scale", "fold_input_scale_threshold"]


def _row_scales(W_dec: Tensor) -> Tensor:
    """‖W_dec_j‖, and 1 for a zero row (FOLD-2)."""
    n: Tensor = torch.linalg.vector_norm(W_dec, dim=-1)
    return torch.where(n > 0, n, torch.ones_like(n))


@typechecked
def fold_W_dec_norm(
    W_enc: EncoderWeights, b_enc: LatentVector, W_dec: DecoderWeights
) -> tuple[EncoderWeights, LatentVector, DecoderWeights]:
    """(W_enc · s, b_enc · s, W_dec / s), s_j = ‖W_dec_j‖ or 1 for a zero row (FOLD-1, FOLD-2)."""
    _validate.check(W_enc=W_enc, b_enc=b_enc, W_dec=W_dec)
    s = _row_scales(W_dec)
    return W_enc * s.unsqueeze(-2), b_enc * s, W_dec / s.unsqueeze(-1)


@typechecked
def fold_W_dec_norm_threshold(W_dec: DecoderWeights, theta: LatentVector) -> LatentVector:
    """θ_j · s_j (FOLD-3)."""
    _validate.check(W_dec=W_dec, theta=theta)
    return theta * _row_scales(W_dec)


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
    """`weights`: (c·W_enc, b_enc, W_dec / c, b_dec / c); `biases`: (W_enc, b_enc / c, W_dec, b_dec / c)
    (FOLD-4..FOLD-6)."""
    check_fold(factor, fold_into)
    _validate.check(W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=b_dec)
    if fold_into == "weights":
        return W_enc * factor, b_enc.clone(), W_dec / factor, b_dec / factor
    return W_enc.clone(), b_enc / factor, W_dec.clone(), b_dec / factor


@typechecked
def fold_input_scale_threshold(
    theta: LatentVector, *, factor: float, fold_into: FoldInto = "weights"
) -> LatentVector:
    """θ under `weights`, θ / c under `biases` (FOLD-7)."""
    check_fold(factor, fold_into)
    _validate.check(theta=theta)
    return theta.clone() if fold_into == "weights" else theta / factor
