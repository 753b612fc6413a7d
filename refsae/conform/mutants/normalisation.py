"""Mutants of the activation normalisations (specs/normalisation.md): the slips they invite."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from refsae.conform.mutants.record import Mutant


def factor_sums_norms(x: Tensor, *, norm_target: Any) -> Tensor:
    """The norms (or squared norms) summed over the batch instead of averaged."""
    norms: Tensor = torch.linalg.vector_norm(x, dim=-1)
    if norm_target == "mean_norm_sqrt_d_in":
        return math.sqrt(x.shape[-1]) / norms.sum(dim=0)
    return torch.rsqrt(norms.square().sum(dim=0))


def factor_from_first_half(x: Tensor, *, norm_target: Any) -> Tensor:
    """The estimate taken from the first half of the batch only (SAELens #467's slip)."""
    part = x[: max(1, x.shape[0] // 2)]
    norms: Tensor = torch.linalg.vector_norm(part, dim=-1)
    if bool((norms == 0).all(dim=0).any()):  # the half holds only zero tokens: use the whole batch
        norms = torch.linalg.vector_norm(x, dim=-1)
    if norm_target == "mean_norm_sqrt_d_in":
        return math.sqrt(x.shape[-1]) / norms.mean(dim=0)
    return torch.rsqrt(norms.square().mean(dim=0))


def rescale_zero_token_nan(x: Tensor) -> tuple[Tensor, Tensor]:
    """√d_in / ‖x_b‖ with no guard: a zero token gives NaN."""
    a = math.sqrt(x.shape[-1]) / torch.linalg.vector_norm(x, dim=-1)
    return x * a.unsqueeze(-1), a


def layer_norm_biased_std(x: Tensor, *, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """σ over d_in (torch.nn.LayerNorm's variance) instead of d_in − 1."""
    mu = x.mean(dim=-1)
    centred = x - mu.unsqueeze(-1)
    sigma = torch.sqrt(centred.square().mean(dim=-1))
    return centred / (sigma + eps).unsqueeze(-1), mu, sigma


def layer_norm_inverse_without_eps(y: Tensor, mu: Tensor, sigma: Tensor, *, eps: float) -> Tensor:
    """y · σ + μ: the output map forgets the ε its input map added."""
    return y * sigma.unsqueeze(-1) + mu.unsqueeze(-1)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "factor_sums_norms",
        "activation_norm_factor",
        "NORM-2",
        "the token norms summed instead of averaged",
        factor_sums_norms,
    ),
    Mutant(
        "factor_from_first_half",
        "activation_norm_factor",
        "NORM-1",
        "the factor estimated from the first half of the batch",
        factor_from_first_half,
    ),
    Mutant(
        "rescale_zero_token_nan",
        "constant_norm_rescale",
        "NORM-7",
        "a zero token divided by its norm 0 (NaN)",
        rescale_zero_token_nan,
    ),
    Mutant(
        "layer_norm_biased_std",
        "layer_norm",
        "NORM-8",
        "σ divides by d_in, not d_in − 1",
        layer_norm_biased_std,
    ),
    Mutant(
        "layer_norm_inverse_without_eps",
        "layer_norm_inverse",
        "NORM-9",
        "the output multiplied by σ instead of σ + ε",
        layer_norm_inverse_without_eps,
    ),
)
