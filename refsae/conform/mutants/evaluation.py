"""Mutants of the evaluation metrics (specs/evaluation.md): the formulas people write instead, among
them the two SAEBench 0.6.0 ships (conformance/sae_bench/findings.toml)."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor

from refsae.conform.mutants.record import Mutant


def _norms(a: Tensor) -> Tensor:
    return cast(Tensor, torch.linalg.vector_norm(a, dim=-1))


def explained_variance_of_squares(x: Tensor, x_hat: Tensor) -> Tensor:
    """SAEBench 0.6.0's: E[x_d²] where E[x_d] belongs, averaged over the dimensions (main.py:585-627)."""
    mean_sum_of_squares = (x**2).sum(dim=-1).mean(dim=0)
    mean_of_squares = (x**2).mean(dim=0).mean(dim=-1)
    residual = ((x - x_hat) ** 2).sum(dim=-1).mean(dim=0)
    return 1 - residual / (mean_sum_of_squares - mean_of_squares**2)


def cosine_without_x_hat_norm(x: Tensor, x_hat: Tensor) -> Tensor:
    return ((x * x_hat).sum(dim=-1) / _norms(x)).mean(dim=0)


def l2_ratio_of_means(x: Tensor, x_hat: Tensor) -> Tensor:
    return _norms(x_hat).mean(dim=0) / _norms(x).mean(dim=0)


def relative_bias_mean_of_ratios(x: Tensor, x_hat: Tensor) -> Tensor:
    return ((x_hat**2).sum(dim=-1) / (x * x_hat).sum(dim=-1)).mean(dim=0)


def explained_variance_per_token_of_totals(x: Tensor, x_hat: Tensor) -> Tensor:
    residual = ((x - x_hat) ** 2).sum(dim=(0, -1))
    return 1 - residual / ((x - x.mean(dim=0, keepdim=True)) ** 2).sum(dim=(0, -1))


def density_over_latents(f: Tensor) -> Tensor:
    return (f != 0).sum(dim=0).to(torch.float64) / f.shape[-1]


def fraction_at_or_above(f: Tensor, *, density: Any) -> Tensor:
    rho = (f != 0).sum(dim=0).to(torch.float64) / f.shape[0]
    above: Tensor = (rho >= density).to(torch.float64)
    return above.mean(dim=-1)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "explained_variance_of_squares",
        "explained_variance",
        "MET-3",
        "SAEBench 0.6.0's variance: E‖x‖² − (mean_d E[x_d²])²",
        explained_variance_of_squares,
    ),
    Mutant(
        "cosine_without_x_hat_norm",
        "cosine_similarity",
        "EVAL-2",
        "the dot product divided by ‖x‖ only",
        cosine_without_x_hat_norm,
    ),
    Mutant("l2_ratio_of_means", "l2_ratio", "EVAL-3", "mean ‖x_hat‖ / mean ‖x‖", l2_ratio_of_means),
    Mutant(
        "relative_bias_mean_of_ratios",
        "relative_reconstruction_bias",
        "EVAL-4",
        "the mean of per-token ratios, not the ratio of the means",
        relative_bias_mean_of_ratios,
    ),
    Mutant(
        "explained_variance_per_token_of_totals",
        "explained_variance_per_token",
        "EVAL-5",
        "the batch totals divided (MET-3) where the per-token ratios are averaged",
        explained_variance_per_token_of_totals,
        max_examples=300,  # bfloat16, seeds 1..20: the first flag at example 9 (median), 124 (latest)
    ),
    Mutant(
        "density_over_latents",
        "feature_density",
        "EVAL-6",
        "the count divided by d_sae instead of the batch",
        density_over_latents,
    ),
    Mutant(
        "fraction_at_or_above",
        "fraction_above",
        "EVAL-7",
        "a density equal to the threshold counted as above (>=)",
        fraction_at_or_above,
    ),
)
