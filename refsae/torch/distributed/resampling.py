"""Resampling across data-parallel processes (DIST-15; specs/distributed.md, RES-16).

A resampling event on W processes must be the single-process event on the whole batch. The
probabilities are the whole batch's (RES-2 normalises over the batch), so the per-example losses are
gathered; every process draws the same indices into the whole batch, from generators in the same
state (checked); each chosen input reaches every process from the one that holds it (one all_reduce
SUM in which every entry has exactly one non-zero term, so it is exact); then every replica applies
the same update (RES-10) and resets the same Adam moments (OPT-4), and the replicas stay identical.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from jaxtyping import Bool, Float, Int64, Shaped
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.oracle.optimizer import PARAMETERS
from refsae.oracle.resampling import ResamplingLoss
from refsae.torch._shapes import InputBatch
from refsae.torch.distributed.agreement import check_agreement, replica_fingerprint, whole_batch_size
from refsae.torch.model import SAE
from refsae.torch.optimizer import reset_adam_latents_
from refsae.torch.resample_update import resample_anthropic
from refsae.torch.resampling import per_example_loss, probabilities_from_loss, sample_examples

__all__ = [
    "data_parallel_chosen_inputs",
    "data_parallel_resample_",
    "data_parallel_resampling_probabilities",
]


@typechecked
def data_parallel_resampling_probabilities(
    sae: SAE, x: InputBatch, *, loss: ResamplingLoss = "total", group: dist.ProcessGroup | None = None
) -> Float[Tensor, "whole_batch *inst"]:  # noqa: F821 (jaxtyping dims, not names)
    """RES-2's probabilities over the whole batch, from this process's slice `x`: the slices'
    per-example losses (RES-1, with the SAE's λ) gathered in rank order, then normalised; the same
    tensor on every process (DIST-15)."""
    whole_batch_size(x, group)
    with torch.no_grad():
        f, x_hat = sae(x)
        ell = per_example_loss(x, x_hat, f, l1_coefficient=sae.config.l1_coefficient, loss=loss)
    parts = [torch.empty_like(ell) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, ell.contiguous(), group=group)
    return probabilities_from_loss(torch.cat(parts))


@typechecked
def data_parallel_chosen_inputs(
    x: InputBatch, rows: Int64[Tensor, "*inst n"], *, group: dist.ProcessGroup | None = None
) -> Float[Tensor, "*inst n d_in"]:
    """The whole batch's inputs at `rows` (indices into the whole batch, per instance), on every
    process: each process fills the rows it holds, zeros elsewhere, and one all_reduce SUM combines
    them exactly (DIST-15). Every process must pass the same `rows` (checked)."""
    batch = whole_batch_size(x, group)
    check_agreement(replica_fingerprint([rows]), "the chosen rows", group)
    if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= batch):
        raise ValueError(f"rows must index the whole batch, 0 <= row < {batch}")
    start = dist.get_rank(group) * x.shape[0]
    owned = (rows >= start) & (rows < start + x.shape[0])
    local = (rows - start).clamp(0, x.shape[0] - 1)
    picked = x.movedim(0, -2).gather(-2, local[..., None].expand(*local.shape, x.shape[-1]))
    out = torch.where(owned[..., None], picked, torch.zeros_like(picked)).contiguous()
    dist.all_reduce(out, group=group)
    return out


def _state_of(generator: torch.Generator) -> str:
    return replica_fingerprint([generator.get_state()])


@typechecked
def data_parallel_resample_(
    sae: SAE,
    optimizer: torch.optim.Optimizer,
    x: InputBatch,
    dead: Shaped[Tensor, "*inst d_sae"],
    *,
    generator: torch.Generator,
    loss: ResamplingLoss = "total",
    centred: bool = False,
    encoder_scale: float = 0.2,
    group: dist.ProcessGroup | None = None,
) -> Bool[Tensor, "*inst d_sae"]:
    """RES-16's resampling event on this process's slice `x` of the whole batch, equal to the event on
    the whole batch (DIST-15): the whole batch's probabilities, one draw (with replacement, RES-4) per
    dead latent from `generator` (the k-th dead latent of an instance gets its k-th draw), the chosen
    inputs gathered, Anthropic's update (RES-10..RES-14; `centred`, `encoder_scale`) applied in place
    and the Adam moments of the resampled latents reset (OPT-4, OPT-6). Returns the `resampled` mask.

    Every process must pass the same `dead` (e.g. from `data_parallel_fire_counts`) and a generator
    in the same state, or every process raises the same `ValueError` (DIST-6); every generator then
    advances alike. The window's fire counts are the caller's to restart (RES-16)."""
    dead = dead.to(torch.bool)
    check_agreement(
        (replica_fingerprint([dead]), _state_of(generator)), "the dead mask and the generator's state", group
    )
    n = int(dead.sum(dim=-1).max()) if dead.numel() else 0
    if n == 0:
        return torch.zeros_like(dead)
    p = data_parallel_resampling_probabilities(sae, x, loss=loss, group=group)
    rows = sample_examples(p, n, replacement=True, generator=generator)
    drawn = data_parallel_chosen_inputs(x, rows, group=group)  # (*inst, n, d_in)
    order = (dead.to(torch.int64).cumsum(dim=-1) - 1).clamp(min=0)  # the k-th dead latent: draw k
    chosen = drawn.gather(-2, order[..., None].expand(*order.shape, x.shape[-1]))
    live = {name: getattr(sae, name) for name in PARAMETERS}
    update = resample_anthropic(
        {name: t.detach() for name, t in live.items()},
        dead,
        chosen,
        centred=centred,
        encoder_scale=encoder_scale,
    )
    with torch.no_grad():
        for name, t in live.items():
            t.copy_(update["param"][name])
    reset_adam_latents_(optimizer, live, update["resampled"])
    resampled: Tensor = update["resampled"]
    return resampled
