"""Dead-latent detection in PyTorch (DEAD-1..DEAD-5), one function per `refsae.oracle.dead` function.

Counts and steps are int64 tensors, dead masks bool; nothing rounds, so every result equals the
oracle's exactly. No Python loop over batch or latents.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Int, Int64
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.oracle.dead import check_count, check_threshold
from refsae.torch import _validate
from refsae.torch._shapes import LatentBatch

__all__ = ["dead_by_fire_fraction", "dead_by_steps", "fire_counts", "update_steps_since_fired"]


def _same_device(**tensors: Tensor) -> None:
    """Integer and floating inputs of one call live on one device (NOT-7)."""
    (name0, t0), *rest = tensors.items()
    for name, t in rest:
        if t.device != t0.device:
            raise ValueError(f"{name} is on {t.device} but {name0} is on {t0.device}: one device per call")


@typechecked
def fire_counts(f: LatentBatch) -> Int64[Tensor, "*inst d_sae"]:
    """`#{b : f_bj > 0}` per latent (DEAD-1)."""
    _validate.check(batch=f, batch_name="f", f=f)
    return (f > 0).sum(dim=0)


@typechecked
def dead_by_fire_fraction(
    fire_counts: Int[Tensor, "*inst d_sae"], n_examples: int, threshold: float
) -> Bool[Tensor, "*inst d_sae"]:
    """`fire_counts / n_examples <= threshold`, the quotient in float64 (DEAD-2)."""
    check_count("n_examples", n_examples, 1)
    check_threshold(threshold)
    if bool((fire_counts < 0).any()):
        raise ValueError("fire_counts must be >= 0")
    if bool((fire_counts > n_examples).any()):
        raise ValueError(f"fire_counts must be <= n_examples ({n_examples}): a latent fires once per example")
    return fire_counts.to(torch.float64) / n_examples <= threshold


@typechecked
def update_steps_since_fired(
    steps_since: Int[Tensor, "*inst d_sae"], f: LatentBatch
) -> Int64[Tensor, "*inst d_sae"]:
    """0 where the latent fired on any example of the batch, `steps_since + 1` elsewhere (DEAD-3)."""
    _validate.check(batch=f, batch_name="f", f=f)
    _same_device(f=f, steps_since=steps_since)
    if bool((steps_since < 0).any()):
        raise ValueError("steps_since must be >= 0")
    steps = steps_since.to(torch.int64)
    return torch.where((f > 0).any(dim=0), torch.zeros_like(steps), steps + 1)


@typechecked
def dead_by_steps(steps_since: Int[Tensor, "*inst d_sae"], n: int) -> Bool[Tensor, "*inst d_sae"]:
    """`steps_since > n` (DEAD-4)."""
    check_count("n", n, 0)
    if bool((steps_since < 0).any()):
        raise ValueError("steps_since must be >= 0")
    return steps_since > n
