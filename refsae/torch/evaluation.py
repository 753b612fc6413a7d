"""The evaluation metrics in PyTorch (EVAL; specs/evaluation.md).

Every function works on CPU and CUDA in float64, float32, bfloat16 and float16, with or without the
instance axis, with no Python loop over batch or latents; each is the twin of the function of the
same name in `refsae.oracle.evaluation` and is proven against it by the rows of
`refsae.checking.rows.evaluation`. Reductions accumulate in the dtype's accumulator (float32 for the
16-bit dtypes, TOL-3); counts and the densities are float64, as in the oracle (EVAL-6).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.oracle.evaluation import check_density
from refsae.torch import _validate
from refsae.torch._shapes import InputBatch, LatentBatch, LatentVector, PerInstance

__all__ = [
    "cosine_similarity",
    "explained_variance_per_token",
    "feature_density",
    "fraction_above",
    "l2_ratio",
    "relative_reconstruction_bias",
]


def _norms(a: Tensor, name: str, what: str) -> Tensor:
    """‖a_b‖ over the last axis; `ValueError` naming `name` where one is exactly 0."""
    norms = cast(Tensor, torch.linalg.vector_norm(a, dim=-1))
    if bool((norms == 0).any()):
        raise ValueError(f"{what} is undefined for a token whose {name} is the zero vector (‖{name}_b‖ = 0)")
    return norms


def _dots(x: Tensor, x_hat: Tensor) -> Tensor:
    """⟨x_b, x_hat_b⟩ per token, accumulated in the dtype's accumulator and stored in the dtype."""
    return torch.einsum("...d,...d->...", x, x_hat)


@typechecked
def cosine_similarity(x: InputBatch, x_hat: InputBatch) -> PerInstance:
    """Mean over the batch of ⟨x_b, x_hat_b⟩ / (‖x_b‖ ‖x_hat_b‖) (EVAL-2)."""
    _validate.check(batch=x, x=x, x_hat=x_hat)
    norms = _norms(x, "x", "cosine_similarity") * _norms(x_hat, "x_hat", "cosine_similarity")
    return (_dots(x, x_hat) / norms).mean(dim=0)


@typechecked
def l2_ratio(x: InputBatch, x_hat: InputBatch) -> PerInstance:
    """Mean over the batch of ‖x_hat_b‖ / ‖x_b‖ (EVAL-3)."""
    _validate.check(batch=x, x=x, x_hat=x_hat)
    norms: Tensor = torch.linalg.vector_norm(x_hat, dim=-1)
    return (norms / _norms(x, "x", "l2_ratio")).mean(dim=0)


@typechecked
def relative_reconstruction_bias(x: InputBatch, x_hat: InputBatch) -> PerInstance:
    """E_b ‖x_hat_b‖² / E_b ⟨x_b, x_hat_b⟩ (EVAL-4)."""
    _validate.check(batch=x, x=x, x_hat=x_hat)
    numerator = _dots(x_hat, x_hat).mean(dim=0)
    denominator = _dots(x, x_hat).mean(dim=0)
    if bool((denominator == 0).any()):
        raise ValueError("relative_reconstruction_bias is undefined where E_b ⟨x_b, x_hat_b⟩ = 0")
    return numerator / denominator


@typechecked
def explained_variance_per_token(x: InputBatch, x_hat: InputBatch) -> PerInstance:
    """Mean over the batch of 1 − ‖x_b − x_hat_b‖² / ‖x_b − μ‖² (EVAL-5)."""
    _validate.check(batch=x, x=x, x_hat=x_hat)
    centred = x - x.mean(dim=0, keepdim=True)
    spread = _dots(centred, centred)
    if bool((spread == 0).any()):
        raise ValueError(
            "explained_variance_per_token is undefined for a token equal to the batch mean "
            "(‖x_b − μ‖ = 0; e.g. a batch of 1)"
        )
    residual = x - x_hat
    return (1 - _dots(residual, residual) / spread).mean(dim=0)


@typechecked
def feature_density(f: LatentBatch) -> LatentVector:
    """Fraction of tokens with f_bj ≠ 0, per latent (EVAL-6), as float64 (a count is exact)."""
    _validate.check(batch=f, batch_name="f", f=f)
    return (f != 0).sum(dim=0).to(torch.float64) / f.shape[0]


@typechecked
def fraction_above(f: LatentBatch, *, density: float = 0.0) -> PerInstance:
    """Fraction of latents whose density exceeds `density`, strictly (EVAL-7), as float64."""
    check_density(density)
    return (feature_density(f) > density).to(torch.float64).mean(dim=-1)
