"""AuxK across latent shards and batch slices (DIST-19; specs/distributed.md, AUXK-10).

The dead set is global: each process holds the dead mask of its own latents, and the number of dead
latents n is their sum over the shard group. Each example's auxiliary selection is the canonical top
min(k_aux, n) among the dead latents of all shards (DIST-10's exact selection, alive latents at −∞);
the auxiliary decode ê is the shards' sparse partial decodes summed by one all_reduce; the residual
e = x − x̂ is the step's own (detached); D is the whole batch's (its variance over the data group).
The gradients are AUXK-8's, pulled back through z to W_enc and b_enc on each shard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from refsae.oracle.auxk import AuxKOptions
from refsae.torch.distributed.data_parallel import whole_batch_variance
from refsae.torch.distributed.selection import global_topk_mask
from refsae.torch.fast.topk import Bags, scatter_sum

__all__ = ["ShardedAuxK"]


@dataclass(frozen=True)
class ShardedAuxK:
    """The AuxK term α · L_aux of a latent-sharded step (DIST-19): this process's part of the dead mask
    (its m latents), k_aux and AUXK's options (the residual is detached)."""

    coefficient: float
    dead: Tensor
    k_aux: int
    values: str = "relu"
    aux_decode: str = "without_b_dec"
    scale: str = "unscaled"
    normalisation: str = "residual_variance"

    def __post_init__(self) -> None:
        if not (isinstance(self.coefficient, int | float) and math.isfinite(self.coefficient)):
            raise ValueError(f"the AuxK coefficient must be a finite number, got {self.coefficient!r}")
        AuxKOptions(self.k_aux, self.values, self.aux_decode, self.scale, self.normalisation)  # type: ignore[arg-type]
        if self.dead.dim() != 1 or not bool(((self.dead == 0) | (self.dead == 1)).all()):
            raise ValueError("dead must be a 0/1 or boolean mask of this shard's latents, shape (m,)")

    def settings(self) -> tuple[object, ...]:
        """What every process of a shard group must agree on (DIST-6)."""
        return (self.coefficient, self.k_aux, self.values, self.aux_decode, self.scale, self.normalisation)


@dataclass
class AuxKParts:
    """α · L_aux (this slice's part) and its gradient contributions on this shard."""

    loss: Tensor
    W_enc: Tensor
    b_enc: Tensor
    G_hat: Tensor
    b_dec: Tensor


def sharded_auxk(
    aux: ShardedAuxK,
    x: Tensor,
    x_hat: Tensor,
    z: Tensor,
    u: Tensor,
    W_hat: Tensor,
    b_dec: Tensor,
    batch: int,
    group: dist.ProcessGroup | None,
    data_group: dist.ProcessGroup | None,
) -> AuxKParts | None:
    """AUXK-1..AUXK-8 on the whole batch and all latents, this process's part (DIST-19); None where no
    latent of any shard is dead (AUXK-6: the loss is exactly 0)."""
    dead = aux.dead.to(device=z.device, dtype=torch.bool)
    n_dead = dead.sum().reshape(1)
    dist.all_reduce(n_dead, group=group)
    n = int(n_dead)
    if n == 0:
        return None
    candidates = torch.where(dead, z, torch.full_like(z, -math.inf))
    mask = global_topk_mask(candidates, min(aux.k_aux, n), group)
    if aux.values == "relu":
        mask &= z > 0  # a selected negative gives 0 and passes nothing (AUXK-3)
    b, j = mask.nonzero(as_tuple=True)
    bags = Bags(j, b, x.shape[0], z.shape[-1])
    a = z[b, j]
    e_hat = bags.forward(W_hat, a)
    dist.all_reduce(e_hat, group=group)
    if aux.aux_decode == "with_b_dec":
        e_hat = e_hat + b_dec
    e = x - x_hat
    s = min(n / aux.k_aux, 1.0) if aux.scale == "dead_fraction" else 1.0
    if aux.normalisation == "sum":
        D: Tensor | float = float(batch)
    else:
        t = e if aux.normalisation == "residual_variance" else x
        D = (
            whole_batch_variance(t, batch, data_group)
            if data_group is not None
            else ((t - t.mean(0)) ** 2).sum()
        )
        if float(D) == 0.0:
            raise ValueError(
                f"the {aux.normalisation} normaliser is zero (e.g. a batch of 1): AuxK is undefined"
            )
    diff = e_hat - e
    alpha = aux.coefficient
    g = diff * (2 * s / D)
    g_a = bags.per_sample_gradient(g, W_hat)
    return AuxKParts(
        loss=alpha * s * (diff * diff).sum() / D,
        W_enc=alpha * bags.weight_gradient(u, g_a).mT,
        b_enc=alpha * scatter_sum(z[0], j, g_a),
        G_hat=alpha * bags.weight_gradient(g, a),
        b_dec=alpha * g.sum(dim=0) if aux.aux_decode != "without_b_dec" else torch.zeros_like(b_dec),
    )
