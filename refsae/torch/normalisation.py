"""Activation normalisation in PyTorch (NORM; specs/normalisation.md): the twins of
`refsae.oracle.normalisation`, proven against it by the rows of `refsae.checking.rows.normalisation`.
CPU and CUDA, every dtype, with or without the instance axis, no Python loop over tokens; norms and
means accumulate in the dtype's accumulator (TOL-3) and are stored in the dtype.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import OPERATION_AXES, NormTarget, check_choice
from refsae.oracle.normalisation import LAYER_NORM_EPS, check_layer_norm
from refsae.torch import _validate
from refsae.torch._shapes import InputBatch, PerInstance, PerToken

__all__ = ["activation_norm_factor", "constant_norm_rescale", "layer_norm", "layer_norm_inverse"]


def _norms(x: Tensor) -> Tensor:
    return cast(Tensor, torch.linalg.vector_norm(x, dim=-1))


@typechecked
def activation_norm_factor(x: InputBatch, *, norm_target: NormTarget = "mean_norm_sqrt_d_in") -> PerInstance:
    """√d_in / mean_b ‖x_b‖ (NORM-2) or 1 / √(mean_b ‖x_b‖²) (NORM-3); `ValueError` on an all-zero
    sample (NORM-5)."""
    check_choice("norm_target", norm_target, OPERATION_AXES["norm_target"])
    _validate.check(batch=x, x=x)
    norms = _norms(x)
    if bool((norms == 0).all(dim=0).any()):
        raise ValueError("activation_norm_factor is undefined on a sample whose every token x_b is 0")
    if norm_target == "mean_norm_sqrt_d_in":
        return math.sqrt(x.shape[-1]) / norms.mean(dim=0)
    return torch.rsqrt(norms.square().mean(dim=0))


@typechecked
def constant_norm_rescale(x: InputBatch) -> tuple[InputBatch, PerToken]:
    """(a · x, a) with a_b = √d_in / ‖x_b‖, and a_b = 1 for a zero token (NORM-6, NORM-7)."""
    _validate.check(batch=x, x=x)
    norms = _norms(x)
    nonzero = norms > 0
    a = torch.where(nonzero, math.sqrt(x.shape[-1]) / torch.where(nonzero, norms, 1.0), 1.0)
    return x * a.unsqueeze(-1), a


@typechecked
def layer_norm(x: InputBatch, *, eps: float = LAYER_NORM_EPS) -> tuple[InputBatch, PerToken, PerToken]:
    """(x − μ) / (σ + ε), μ, σ per token, σ with Bessel's correction (NORM-8)."""
    check_layer_norm(x.shape[-1], eps)
    _validate.check(batch=x, x=x)
    mu = x.mean(dim=-1)
    centred = x - mu.unsqueeze(-1)
    sigma = torch.sqrt(centred.square().sum(dim=-1) / (x.shape[-1] - 1))
    return centred / (sigma + eps).unsqueeze(-1), mu, sigma


@typechecked
def layer_norm_inverse(
    y: InputBatch, mu: PerToken, sigma: PerToken, *, eps: float = LAYER_NORM_EPS
) -> InputBatch:
    """y · (σ + ε) + μ per token (NORM-9)."""
    check_layer_norm(y.shape[-1], eps)
    _validate.check(batch=y, batch_name="y", y=y, mu=mu, sigma=sigma)
    if bool((sigma < 0).any()):
        raise ValueError("sigma must be >= 0 (a standard deviation)")
    return y * (sigma + eps).unsqueeze(-1) + mu.unsqueeze(-1)
