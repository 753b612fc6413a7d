"""Exact TopK and BatchTopK selections across latent shards and batch slices (DIST-10, DIST-16).

A process holds a block of the whole pre-activations: its batch rows (slice `data_rank` of the data
group, none when there is no data group) by its latents (shard `rank` of the shard group). Each process
keeps its block's own best candidates by the canonical rule, the candidates are gathered with their
global indices, and the best of the candidates by the same rule are the selection. It is exact: a
block's part of the global selection is among the block's own best (a subset's share of the n best is
within the subset's n best), and ties are broken by the global index as on one process.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from refsae.torch.sharded import best_candidates, canonical_best, shard_candidates

__all__ = ["global_batchtopk_mask", "global_topk_mask"]


def _gather(tensor: Tensor, group: dist.ProcessGroup | None) -> Tensor:
    """The processes' tensors concatenated along the last axis, in rank order."""
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, tensor.contiguous(), group=group)
    return torch.cat(parts, dim=-1)


def global_topk_mask(z: Tensor, k: int, group: dist.ProcessGroup | None = None) -> Tensor:
    """This shard's part of the canonical TopK selection of the whole pre-activations (TOPK-2, DIST-10):
    each shard's own k best (`refsae.torch.sharded.shard_candidates`), gathered with their global
    indices, then the k best of the S·k candidates by the same rule (`best_candidates`), as
    `refsae.torch.topk_sharded` does on one process (DIST-20)."""
    rank = dist.get_rank(group)
    rows, m = z.shape
    values, where = shard_candidates(z, k, rank * m)
    chosen = best_candidates(_gather(values, group), _gather(where, group), k) - rank * m
    mine = (chosen >= 0) & (chosen < m)  # outside [0, m): other shards' latents
    mask = torch.zeros_like(z, dtype=torch.bool)
    b = torch.arange(rows, device=z.device)[:, None].expand_as(chosen)
    mask[b[mine], chosen[mine]] = True
    return mask


def _best(values: Tensor, flat: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """The n best (value, global flat index) pairs by BTOPK-2's rule: value descending, the lower flat
    index first (ordered by index, then `canonical_best`)."""
    by_index = torch.argsort(flat)
    values, flat = values[by_index], flat[by_index]
    chosen = canonical_best(values[None], min(n, values.numel()))[0]
    return values[chosen], flat[chosen]


def global_batchtopk_mask(
    z: Tensor,
    k: int,
    group: dist.ProcessGroup | None = None,
    data_group: dist.ProcessGroup | None = None,
) -> Tensor:
    """This process's block of the canonical BatchTopK selection (BTOPK-2, DIST-16): the k·B largest
    entries of the whole (B, d_sae) pre-activations, the lower flat index b·d_sae + j first among equal
    values, b the row in the whole batch and j the latent. The block's own best, gathered over the shard
    group and cut to k·B, then gathered over the data group (if any) and cut again."""
    rows, m = z.shape
    shard, n_shards = dist.get_rank(group), dist.get_world_size(group)
    slice_, n_slices = (
        (0, 1) if data_group is None else (dist.get_rank(data_group), dist.get_world_size(data_group))
    )
    d_sae, n = m * n_shards, k * rows * n_slices
    flat_z = z.reshape(-1)
    local = canonical_best(flat_z[None], min(n, flat_z.numel()))[0].nonzero()[:, 0]  # ascending
    values = flat_z[local]
    flat = (slice_ * rows + local // m) * d_sae + shard * m + local % m
    values, flat = _best(_gather(values, group), _gather(flat, group), n)
    if data_group is not None:
        values, flat = _best(_gather(values, data_group), _gather(flat, data_group), n)
    b, j = flat // d_sae - slice_ * rows, flat % d_sae - shard * m
    mine = (b >= 0) & (b < rows) & (j >= 0) & (j < m)
    mask = torch.zeros_like(z, dtype=torch.bool)
    mask[b[mine], j[mine]] = True
    return mask
