"""The metrics in PyTorch: L0, dead fraction, explained variance (MET).

Every function works on CPU and CUDA in float64, float32, bfloat16 and float16, with or without
the instance axis, with no Python loop over batch or latents; each is the twin of the function of
the same name in `refsae.oracle.metrics` and is proven against it by the rows of
`refsae.checking.rows.metrics`.
"""

from __future__ import annotations

import torch
from jaxtyping import Int
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.torch import _validate
from refsae.torch._shapes import InputBatch, LatentBatch, PerInstance
from refsae.torch.losses import reconstruction_loss

__all__ = ["dead_fraction", "explained_variance", "l0"]


@typechecked
def l0(f: LatentBatch) -> PerInstance:
    """Mean over the batch of the number of non-zero latents (MET-1), as float64 (a count is exact)."""
    _validate.check(batch=f, batch_name="f", f=f)
    return (f != 0).sum(dim=(0, -1)).to(torch.float64) / f.shape[0]


@typechecked
def dead_fraction(fire_counts: Int[Tensor, "*inst d_sae"]) -> PerInstance:
    """Fraction of latents with fire count 0 (MET-2), as float64."""
    if fire_counts.shape[-1] == 0:
        raise ValueError("fire_counts has no latents (d_sae = 0)")
    if bool((fire_counts < 0).any()):
        raise ValueError("fire_counts must be >= 0")
    return (fire_counts == 0).to(torch.float64).mean(dim=-1)


@typechecked
def explained_variance(x: InputBatch, x_hat: InputBatch) -> PerInstance:
    """1 − FVU with per-dimension centring (MET-3)."""
    return 1 - reconstruction_loss(x, x_hat, reconstruction="fvu")
