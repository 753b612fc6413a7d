"""Resampling in PyTorch (RES-1..RES-5): the per-example loss, the probabilities and the sampler.

The probabilities are computed in the inputs' dtype and checked against the oracle by the operation
table; the sampler (`torch.multinomial` with an explicit `torch.Generator`) is checked in
distribution by the statistical tests of `tests/test_resampling_sampler.py`. No Python loop over
batch, instances or latents.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int64
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import check_choice, check_coefficient
from refsae.oracle.resampling import RESAMPLING_LOSS, ResamplingLoss
from refsae.torch import _validate
from refsae.torch._shapes import InputBatch, LatentBatch

__all__ = ["per_example_loss", "resampling_probabilities", "sample_examples"]


@typechecked
def per_example_loss(
    x: InputBatch,
    x_hat: InputBatch,
    f: LatentBatch,
    *,
    l1_coefficient: float,
    loss: ResamplingLoss = "total",
) -> Float[Tensor, "batch *inst"]:  # noqa: F821 (jaxtyping dims, not names)
    """`Σ_d (x_hat − x)²` (+ `λ Σ_j |f_j|` under `total`) per example (RES-1)."""
    check_choice("loss", loss, RESAMPLING_LOSS)
    check_coefficient("l1_coefficient", l1_coefficient)
    _validate.check(batch=x, x=x, x_hat=x_hat, f=f)
    reconstruction = ((x_hat - x) ** 2).sum(dim=-1)
    if loss == "reconstruction":
        return reconstruction
    return reconstruction + l1_coefficient * f.abs().sum(dim=-1)


@typechecked
def resampling_probabilities(
    x: InputBatch,
    x_hat: InputBatch,
    f: LatentBatch,
    *,
    l1_coefficient: float,
    loss: ResamplingLoss = "total",
) -> Float[Tensor, "batch *inst"]:  # noqa: F821 (jaxtyping dims, not names)
    """`(ℓ_b/m)² / Σ_c (ℓ_c/m)²`, `m = max_c ℓ_c`, per instance (RES-2); uniform on zero loss (RES-3)."""
    return probabilities_from_loss(per_example_loss(x, x_hat, f, l1_coefficient=l1_coefficient, loss=loss))


def probabilities_from_loss(ell: Tensor) -> Tensor:
    """RES-2 and RES-3 from the per-example losses `ell` (batch, *inst): `(ℓ_b/m)² / Σ_c (ℓ_c/m)²`."""
    if not bool(torch.isfinite(ell).all()):
        raise ValueError(
            f"the per-example loss overflows in {ell.dtype}; rescale the inputs or use a wider dtype"
        )
    m = ell.amax(dim=0, keepdim=True)
    positive = m > 0
    q = torch.where(positive, ell / torch.where(positive, m, torch.ones_like(m)), torch.ones_like(ell))
    squares = q * q
    return squares / squares.sum(dim=0, keepdim=True)


@typechecked
def sample_examples(
    probabilities: Float[Tensor, "batch *inst"],  # noqa: F821 (jaxtyping dims, not names)
    n: int,
    *,
    replacement: bool,
    generator: torch.Generator,
) -> Int64[Tensor, "*inst n_samples"]:
    """`n` batch indices per instance drawn from `probabilities` by `torch.multinomial` (RES-4, RES-5):
    independent draws with replacement, successive draws without."""
    if isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    _validate.check(batch=probabilities, batch_name="probabilities", probabilities=probabilities)
    if generator.device != probabilities.device:
        raise ValueError(
            f"generator is on {generator.device} but probabilities is on {probabilities.device}: "
            "one device per call"
        )
    batch, inst = probabilities.shape[0], tuple(probabilities.shape[1:])
    rows = probabilities.to(torch.float64).movedim(0, -1).reshape(-1, batch)
    if bool((rows < 0).any()):
        raise ValueError("probabilities must be >= 0")
    if bool((rows.sum(dim=-1) <= 0).any()):
        raise ValueError("every instance needs an example with probability > 0")
    if not replacement:
        positive = int((rows > 0).sum(dim=-1).min())
        if n > positive:
            raise ValueError(
                f"cannot draw n={n} examples without replacement: an instance has only {positive} "
                "examples with probability > 0 (draw with replacement instead)"
            )
    if n == 0:
        return torch.zeros((*inst, 0), dtype=torch.int64, device=probabilities.device)
    drawn = torch.multinomial(rows, n, replacement=replacement, generator=generator)
    return drawn.reshape(*inst, n)
