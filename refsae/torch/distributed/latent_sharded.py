"""The latent-sharded training step (DIST-9..DIST-12; specs/distributed.md).

S processes each hold a contiguous slice of the latents: process r holds latents r·m … (r+1)·m − 1
(m = d_sae / S): W_enc's columns, b_enc's entries and W_dec's rows; b_dec and the batch x are the same on
every process. The encode is local; TopK is exact and global (each shard's own top k, gathered, then the
top k of the S·k candidates with TOPK-2's canonical tie rule); the decode is the shards' partial decodes
summed by an all_reduce; the backward is local but for b_dec's tied term. PAR-1, Adam and CON-1 act row by
row and element by element, so each shard applies them to its own rows; b_dec's update is the same on
every shard.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from refsae.oracle.batchtopk import check_batch_k
from refsae.oracle.optimizer import PARAMETERS
from refsae.oracle.topk import check_k
from refsae.torch.distributed.agreement import (
    check_agreement,
    optimizer_state,
    parameter_state,
    replica_fingerprint,
)
from refsae.torch.distributed.auxk import ShardedAuxK, sharded_auxk
from refsae.torch.distributed.data_parallel import whole_batch_share
from refsae.torch.distributed.selection import global_batchtopk_mask, global_topk_mask
from refsae.torch.fast.gradients import decoder_norm_gradient, normalisation_backward, row_norms
from refsae.torch.fast.topk import Bags, scatter_sum
from refsae.torch.forward import decoder_directions
from refsae.torch.losses import reconstruction_denominator
from refsae.torch.model import SAE
from refsae.torch.training import update_

__all__ = ["gather_latent_shards", "grid_groups", "latent_shard", "latent_sharded_train_step_"]

SHARDED = {"W_enc": -1, "b_enc": -1, "W_dec": -2}
"""The sharded parameters and their latent axis; b_dec is whole on every shard."""


def latent_shard(param: dict[str, Tensor], rank: int, world_size: int) -> dict[str, Tensor]:
    """Process `rank`'s slice of whole parameters (DIST-9): latents rank·m … (rank+1)·m − 1 of W_enc,
    b_enc, W_dec; b_dec whole. `ValueError` unless d_sae is divisible by the world size (every process
    finds it alike, before any collective)."""
    d_sae = param["b_enc"].shape[-1]
    if d_sae % world_size:
        raise ValueError(
            f"d_sae = {d_sae} is not divisible by the world size {world_size}: the latents split into "
            "equal shards, one per process"
        )
    m = d_sae // world_size
    out = {name: param[name].narrow(axis, rank * m, m).clone() for name, axis in SHARDED.items()}
    return out | {"b_dec": param["b_dec"].clone()}


def gather_latent_shards(shard: SAE, group: dist.ProcessGroup | None = None) -> dict[str, Tensor]:
    """The whole parameters, the shards concatenated in rank order (an all_gather each), on every
    process."""
    world = dist.get_world_size(group)
    out = {"b_dec": shard.b_dec.detach().clone()}
    for name, axis in SHARDED.items():
        local = getattr(shard, name).detach().contiguous()
        parts = [torch.empty_like(local) for _ in range(world)]
        dist.all_gather(parts, local, group=group)
        out[name] = torch.cat(parts, dim=axis)
    return out


def grid_groups(n_slices: int, n_shards: int) -> tuple[dist.ProcessGroup, dist.ProcessGroup]:
    """The data × shard grid (DIST-17) of the default group's n_slices · n_shards processes: process
    `slice · n_shards + shard` holds latent shard `shard` for batch slice `slice`. Returns this process's
    shard group (the processes of its slice, in shard order) and data group (the processes of its shard,
    in slice order). Every process must call it alike (each group is created by all processes)."""
    world, rank = dist.get_world_size(), dist.get_rank()
    if n_slices < 1 or n_shards < 1 or n_slices * n_shards != world:
        raise ValueError(f"a {n_slices} × {n_shards} grid needs {n_slices * n_shards} processes, not {world}")
    shard_groups = [dist.new_group([s * n_shards + r for r in range(n_shards)]) for s in range(n_slices)]
    data_groups = [dist.new_group([s * n_shards + r for s in range(n_slices)]) for r in range(n_shards)]
    return shard_groups[rank // n_shards], data_groups[rank % n_shards]


def _check(
    shard: SAE,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    selection: tuple[object, ...],
    group: dist.ProcessGroup | None,
    data_group: dist.ProcessGroup | None,
) -> None:
    """DIST-6 for a sharded step: the shard group agrees on x, b_dec, the sizes, the selection and the
    conventions, and on b_dec's Adam state; the data group (if any) holds replicas of one shard."""
    c = shard.config.conventions
    same = (tuple(x.shape), shard.config.d_sae, selection, str(c), shard.config.l1_coefficient)
    check_agreement(
        (*same, replica_fingerprint([x, shard.b_dec])),
        "the batch, b_dec, the shard size, k and the conventions",
        group,
    )
    check_agreement(replica_fingerprint(parameter_state(optimizer, shard.b_dec)), "b_dec's Adam state", group)
    if data_group is not None:
        tensors = [getattr(shard, n) for n in PARAMETERS] + optimizer_state(optimizer)
        check_agreement(
            (*same, replica_fingerprint(tensors)), "the shard's replicas and the sizes", data_group
        )


def latent_sharded_train_step_(
    shard: SAE,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    *,
    k: int | None = None,
    batch_k: int | None = None,
    auxk: ShardedAuxK | None = None,
    group: dist.ProcessGroup | None = None,
    data_group: dist.ProcessGroup | None = None,
    check_replicas: bool = True,
) -> Tensor:
    """STEP-1 on this process's shard of the latents (DIST-9..DIST-12): the same batch `x` (batch, d_in)
    on every process of the shard `group`; ReLU, TopK over all latents (with `k`, the whole SAE's k) or
    BatchTopK over the whole batch and all latents (with `batch_k`, DIST-16). With a `data_group` (the
    processes holding this shard for other slices of the batch: DIST-17's grid, `grid_groups`), `x` is
    this process's slice of the whole batch and the step is the whole batch's. With `auxk`, the loss
    gains AuxK's term over the global dead set (DIST-19, AUXK-10). Returns the whole loss
    before the step. `shard.config`'s conventions and λ are the SAE's; its d_sae is the shard's m.
    `check_replicas` checks first that the processes agree (DIST-6)."""
    world = dist.get_world_size(group)
    c, lam = shard.config.conventions, shard.config.l1_coefficient
    m = shard.config.d_sae
    if x.dim() != 2:
        raise ValueError(
            f"x has shape {tuple(x.shape)}: the latent-sharded step takes (batch, d_in), no instances"
        )
    if k is not None and batch_k is not None:
        raise ValueError("give k (TopK) or batch_k (BatchTopK), not both")
    if k is not None:
        check_k(k, m * world)
    if batch_k is not None:
        check_batch_k(batch_k, m * world)
    if check_replicas:  # first, so that a wrong dead mask on one process fails on every one (DIST-6)
        settings = None if auxk is None else (*auxk.settings(), tuple(auxk.dead.shape))
        _check(shard, optimizer, x, (k, batch_k, settings), group, data_group)
    if auxk is not None and auxk.dead.shape != shard.b_enc.shape:
        raise ValueError(f"auxk.dead has shape {tuple(auxk.dead.shape)}: it is this shard's, ({m},)")
    if data_group is None:
        batch, denominator = x.shape[0], reconstruction_denominator(x, c.reconstruction)
    else:
        share = whole_batch_share(x, c.reconstruction, data_group)  # DIST-2's share of the whole batch
        batch, denominator = share.batch, share.denominator
    with torch.no_grad():
        W_enc, b_enc, W_dec, b_dec = (getattr(shard, n).detach() for n in PARAMETERS)
        u = x - b_dec if c.encode == "tied" else x
        z = torch.addmm(b_enc, u, W_enc)
        if k is not None:
            active = global_topk_mask(z, k, group) & (z > 0)
        elif batch_k is not None:
            active = global_batchtopk_mask(z, batch_k, group, data_group) & (z > 0)
        else:
            active = z > 0
        W_hat = decoder_directions(W_dec, decoder=c.decoder, eps=c.eps)
        norms = row_norms(W_dec) if c.sparsity == "l1_decoder_norm" else None
        sparse = k is not None or batch_k is not None  # DIST-18: the selected entries only
        if sparse:
            b, j = active.nonzero(as_tuple=True)  # row-major: the bags in batch order
            bags = Bags(j, b, x.shape[0], m)
            f = z[b, j]
            x_hat = bags.forward(W_hat, f)
            f_sum = scatter_sum(b_enc, j, f)
        else:
            f = torch.where(active, z, torch.zeros_like(z))
            x_hat = f @ W_hat
            f_sum = f.sum(dim=0)
        penalty = (f_sum if norms is None else f_sum * norms).sum().reshape(1)
        reduced = torch.cat([x_hat.reshape(-1), penalty])  # DIST-11: one all_reduce SUM
        dist.all_reduce(reduced, group=group)
        x_hat, penalty = reduced[:-1].view_as(x_hat) + b_dec, reduced[-1]
        residual = x_hat - x
        loss: Tensor = (residual * residual).sum() / denominator + lam * penalty / batch

        g = residual * (2 / denominator)
        if sparse:
            g_z = bags.per_sample_gradient(g, W_hat) + (
                lam / batch if norms is None else norms[j] * (lam / batch)
            )
            grads = {
                "W_enc": bags.weight_gradient(u, g_z).mT.contiguous(),
                "b_enc": scatter_sum(b_enc, j, g_z),
            }
            G_hat = bags.weight_gradient(g, f)
        else:
            g_f = g @ W_hat.mT + (lam / batch if norms is None else norms * (lam / batch))
            g_z = torch.where(active, g_f, torch.zeros_like(g_f))
            grads = {"W_enc": u.mT @ g_z, "b_enc": g_z.sum(dim=0)}
            G_hat = f.mT @ g
        grads["b_dec"] = g.sum(dim=0)
        if auxk is not None:  # DIST-19
            parts = sharded_auxk(auxk, x, x_hat, z, u, W_hat, b_dec, batch, group, data_group)
            if parts is not None:
                loss = loss + parts.loss
                grads["W_enc"] = grads["W_enc"] + parts.W_enc
                grads["b_enc"] = grads["b_enc"] + parts.b_enc
                grads["b_dec"] = grads["b_dec"] + parts.b_dec
                G_hat = G_hat + parts.G_hat
        if c.encode == "tied":  # − W_enc (Σ_b g_z), summed over the shards (GRAD-4, DIST-11)
            tied = W_enc @ grads["b_enc"]
            dist.all_reduce(tied, group=group)
            grads["b_dec"] -= tied
        grads["W_dec"] = G_hat if c.decoder == "constrained" else normalisation_backward(W_dec, G_hat, c.eps)
        if norms is not None:
            grads["W_dec"] = grads["W_dec"] + decoder_norm_gradient(W_dec, norms, f_sum, lam / batch)
        if data_group is not None:  # DIST-17: the slices' gradients and losses summed
            flat = torch.cat([grads[n].reshape(-1) for n in PARAMETERS] + [loss.reshape(1).to(x.dtype)])
            dist.all_reduce(flat, group=data_group)
            sizes = [grads[n].numel() for n in PARAMETERS]
            for name, part in zip(PARAMETERS, torch.split(flat[:-1], sizes), strict=True):
                grads[name] = part.view_as(grads[name])
            loss = flat[-1]
    for name in PARAMETERS:
        getattr(shard, name).grad = grads[name]
    update_(optimizer, shard.W_dec, c.decoder == "constrained")  # PAR-1, Adam, CON-1 per shard (DIST-12)
    return loss
