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

from refsae.oracle.optimizer import PARAMETERS
from refsae.oracle.topk import check_k
from refsae.torch.distributed.agreement import check_agreement, parameter_state, replica_fingerprint
from refsae.torch.fast.gradients import decoder_norm_gradient, normalisation_backward, row_norms
from refsae.torch.forward import decoder_directions
from refsae.torch.losses import reconstruction_denominator
from refsae.torch.model import SAE
from refsae.torch.training import update_

__all__ = ["gather_latent_shards", "latent_shard", "latent_sharded_train_step_"]

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


def global_topk_mask(z: Tensor, k: int, group: dist.ProcessGroup | None = None) -> Tensor:
    """This shard's part of the canonical TopK selection of the whole pre-activations (TOPK-2, DIST-10):
    each shard's own k largest (value descending, lower index first: a stable sort), gathered with
    their global indices, then the k largest of the S·k candidates by the same rule. The candidates are
    laid out shard by shard, each in its canonical order, so a stable sort breaks ties by global index."""
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    m = z.shape[-1]
    kk = min(k, m)
    values, indices = torch.sort(z, dim=-1, descending=True, stable=True)
    values, indices = values[:, :kk].contiguous(), (indices[:, :kk] + rank * m).contiguous()
    all_values = [torch.empty_like(values) for _ in range(world)]
    all_indices = [torch.empty_like(indices) for _ in range(world)]
    dist.all_gather(all_values, values, group=group)
    dist.all_gather(all_indices, indices, group=group)
    candidates, where = torch.cat(all_values, dim=-1), torch.cat(all_indices, dim=-1)
    order = torch.sort(candidates, dim=-1, descending=True, stable=True).indices[:, :k]
    chosen = where.gather(-1, order) - rank * m  # local indices; outside [0, m) belong to other shards
    mine = (chosen >= 0) & (chosen < m)
    mask = torch.zeros_like(z, dtype=torch.bool)
    rows = torch.arange(z.shape[0], device=z.device)[:, None].expand_as(chosen)
    mask[rows[mine], chosen[mine]] = True
    return mask


def latent_sharded_train_step_(
    shard: SAE,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    *,
    k: int | None = None,
    group: dist.ProcessGroup | None = None,
    check_replicas: bool = True,
) -> Tensor:
    """STEP-1 on this process's shard of the latents (DIST-9..DIST-12): the same whole batch `x` (batch,
    d_in) on every process, ReLU or (with `k`, the whole SAE's k) TopK over all latents. Returns the
    whole loss before the step. `shard.config`'s conventions and λ are the SAE's; its d_sae is the
    shard's m. `check_replicas` checks first that the processes agree on x, b_dec, the sizes and the
    conventions, and that each holds m latents (DIST-6)."""
    world = dist.get_world_size(group)
    c, lam = shard.config.conventions, shard.config.l1_coefficient
    m = shard.config.d_sae
    if x.dim() != 2:
        raise ValueError(
            f"x has shape {tuple(x.shape)}: the latent-sharded step takes (batch, d_in), no instances"
        )
    if k is not None:
        check_k(k, m * world)
    if check_replicas:
        same = (tuple(x.shape), m, k, str(c), lam, replica_fingerprint([x, shard.b_dec]))
        check_agreement(same, "the batch, b_dec, the shard size, k and the conventions", group)
        check_agreement(
            replica_fingerprint(parameter_state(optimizer, shard.b_dec)), "b_dec's Adam state", group
        )
    with torch.no_grad():
        W_enc, b_enc, W_dec, b_dec = (getattr(shard, n).detach() for n in PARAMETERS)
        u = x - b_dec if c.encode == "tied" else x
        z = torch.addmm(b_enc, u, W_enc)
        active = z > 0 if k is None else global_topk_mask(z, k, group) & (z > 0)
        f = torch.where(active, z, torch.zeros_like(z))
        W_hat = decoder_directions(W_dec, decoder=c.decoder, eps=c.eps)
        x_hat = f @ W_hat
        norms = row_norms(W_dec) if c.sparsity == "l1_decoder_norm" else None
        f_sum = f.sum(dim=0)
        penalty = (f_sum if norms is None else f_sum * norms).sum().reshape(1)
        reduced = torch.cat([x_hat.reshape(-1), penalty])  # DIST-11: one all_reduce SUM
        dist.all_reduce(reduced, group=group)
        x_hat, penalty = reduced[:-1].view_as(x_hat) + b_dec, reduced[-1]
        batch = x.shape[0]
        denominator = reconstruction_denominator(x, c.reconstruction)
        residual = x_hat - x
        loss: Tensor = (residual * residual).sum() / denominator + lam * penalty / batch

        g = residual * (2 / denominator)
        g_f = g @ W_hat.mT + (lam / batch if norms is None else norms * (lam / batch))
        g_z = torch.where(active, g_f, torch.zeros_like(g_f))
        grads = {"W_enc": u.mT @ g_z, "b_enc": g_z.sum(dim=0), "b_dec": g.sum(dim=0)}
        if c.encode == "tied":  # − W_enc (Σ_b g_z), summed over the shards (GRAD-4, DIST-11)
            tied = W_enc @ grads["b_enc"]
            dist.all_reduce(tied, group=group)
            grads["b_dec"] -= tied
        G_hat = f.mT @ g
        grads["W_dec"] = G_hat if c.decoder == "constrained" else normalisation_backward(W_dec, G_hat, c.eps)
        if norms is not None:
            grads["W_dec"] = grads["W_dec"] + decoder_norm_gradient(W_dec, norms, f_sum, lam / batch)
    for name in PARAMETERS:
        getattr(shard, name).grad = grads[name]
    update_(optimizer, shard.W_dec, c.decoder == "constrained")  # PAR-1, Adam, CON-1 per shard (DIST-12)
    return loss
