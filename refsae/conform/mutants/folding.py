"""Mutants of the weight folds (specs/folding.md): the slips a fold invites."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from refsae.conform.mutants.record import Mutant


def _norms(W_dec: Tensor) -> Tensor:
    n: Tensor = torch.linalg.vector_norm(W_dec, dim=-1)
    return torch.where(n > 0, n, torch.ones_like(n))


def fold_forgets_b_enc(W_enc: Tensor, b_enc: Tensor, W_dec: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    s = _norms(W_dec)
    return W_enc * s.unsqueeze(-2), b_enc.clone(), W_dec / s.unsqueeze(-1)


def fold_scales_encoder_rows(W_enc: Tensor, b_enc: Tensor, W_dec: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The norms applied along W_enc's d_in axis (a transposed layout's slip); square shapes only differ."""
    s = _norms(W_dec)
    d_in = W_enc.shape[-2]
    rows = (
        s[..., :d_in]
        if s.shape[-1] >= d_in
        else torch.nn.functional.pad(s, (0, d_in - s.shape[-1]), value=1.0)
    )
    return W_enc * rows.unsqueeze(-1), b_enc * s, W_dec / s.unsqueeze(-1)


def fold_zero_rows_to_nan(W_enc: Tensor, b_enc: Tensor, W_dec: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    s: Tensor = torch.linalg.vector_norm(W_dec, dim=-1)
    return W_enc * s.unsqueeze(-2), b_enc * s, W_dec / s.unsqueeze(-1)


def threshold_divided_by_norm(W_dec: Tensor, theta: Tensor) -> Tensor:
    return theta / _norms(W_dec)


def scale_b_dec_multiplied(
    W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, *, factor: float, fold_into: Any
) -> tuple[Tensor, ...]:
    if fold_into == "weights":
        return W_enc * factor, b_enc.clone(), W_dec / factor, b_dec * factor
    return W_enc.clone(), b_enc / factor, W_dec.clone(), b_dec * factor


def threshold_left_under_biases(theta: Tensor, *, factor: float, fold_into: Any) -> Tensor:
    return theta.clone()


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "fold_forgets_b_enc",
        "fold_W_dec_norm",
        "FOLD-1",
        "b_enc not multiplied by the norms",
        fold_forgets_b_enc,
    ),
    Mutant(
        "fold_scales_encoder_rows",
        "fold_W_dec_norm",
        "FOLD-1",
        "the norms applied along W_enc's input axis",
        fold_scales_encoder_rows,
    ),
    Mutant(
        "fold_zero_rows_to_nan",
        "fold_W_dec_norm",
        "FOLD-2",
        "divides a zero row by its norm 0 (NaN)",
        fold_zero_rows_to_nan,
    ),
    Mutant(
        "threshold_divided_by_norm",
        "fold_W_dec_norm_threshold",
        "FOLD-3",
        "θ divided by the norm instead of multiplied",
        threshold_divided_by_norm,
    ),
    Mutant(
        "scale_b_dec_multiplied",
        "fold_input_scale",
        "FOLD-4",
        "b_dec multiplied by c instead of divided",
        scale_b_dec_multiplied,
    ),
    Mutant(
        "threshold_left_under_biases",
        "fold_input_scale_threshold",
        "FOLD-7",
        "θ left unchanged when the scale goes into the biases",
        threshold_left_under_biases,
        unseen_by_selftest="a library with a fixed fold_into=biases is what exposes it; the canonical "
        "adapter's fold_into is detected, and `weights` leaves θ unchanged: another named convention",
    ),
)
