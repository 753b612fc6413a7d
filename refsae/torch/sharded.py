"""TopK over latent shards on one process (DIST-10, DIST-20): the selection of the latent-sharded step
without its communication.

`refsae.torch.distributed` selects across processes in three steps: each shard keeps its own best
candidates (`shard_candidates`), the processes gather them, and the best of the gathered candidates are
the selection (`best_candidates`). `topk_sharded` runs the same two functions on the `n_shards` blocks
of one (batch, d_sae) tensor, the gather being the concatenation in shard order that `all_gather` lays
out, so that the table's row `topk_sharded` checks the step's selection against the oracle in every
dtype.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.oracle.sharded import check_n_shards
from refsae.oracle.topk import check_k
from refsae.torch import _validate

__all__ = ["best_candidates", "canonical_best", "shard_candidates", "topk_sharded"]


def canonical_best(z: Tensor, n: int) -> Tensor:
    """Mask of the `n` best entries of each row of z (rows, length), value descending and the lower
    position first among equal values (TOPK-2, BTOPK-2), without sorting the row: `torch.topk`'s n-th
    value v is exact whatever its own tie order; every entry above v is taken, and of the entries equal
    to v the first ones in position order, as many as are missing."""
    kth = torch.topk(z, n, dim=-1, sorted=False).values.amin(dim=-1, keepdim=True)
    above = z > kth
    equal = z == kth
    missing = n - above.sum(dim=-1, keepdim=True)
    return above | (equal & (torch.cumsum(equal, dim=-1) <= missing))


@typechecked
def shard_candidates(
    z: Float[Tensor, "rows m"], k: int, offset: int
) -> tuple[Float[Tensor, "rows kk"], Int[Tensor, "rows kk"]]:
    """A shard's candidates (DIST-10): the values of its own `min(k, m)` best pre-activations by the
    canonical rule and their global indices (`offset` + the local index), in ascending index order."""
    rows, m = z.shape
    kk = min(k, m)
    local = canonical_best(z, kk).nonzero()[:, 1].view(rows, kk)  # row-major: ascending index
    return z.gather(-1, local), local + offset


@typechecked
def best_candidates(
    values: Float[Tensor, "rows c"], where: Int[Tensor, "rows c"], k: int
) -> Int[Tensor, "rows selected"]:
    """The global indices of the k best gathered candidates (DIST-10): by value, the lower index first
    among equal values, which is the lower position since `where` ascends along each row (each shard's
    candidates ascend and the shards come in rank order)."""
    return where[canonical_best(values, k)].view(values.shape[0], k)


@typechecked
def topk_sharded(z: Float[Tensor, "batch d_sae"], *, k: int, n_shards: int) -> Float[Tensor, "batch d_sae"]:
    """The TopK latents of z split in `n_shards` contiguous shards, selected as the latent-sharded step
    selects them (each shard's candidates, concatenated in shard order, the best of them), on one
    process: TOPK-3's dense TopK of the whole z with TOPK-2's canonical ties (DIST-10, DIST-20)."""
    d_sae = z.shape[-1]
    check_k(k, d_sae)
    check_n_shards(n_shards, d_sae)
    _validate.check(batch=z, batch_name="z", z=z)
    m = d_sae // n_shards
    parts = [shard_candidates(z[:, r * m : (r + 1) * m], k, r * m) for r in range(n_shards)]
    values = torch.cat([v for v, _ in parts], dim=-1)
    where = torch.cat([w for _, w in parts], dim=-1)
    selected = torch.zeros_like(z, dtype=torch.bool).scatter_(-1, best_candidates(values, where, k), True)
    return torch.where(selected, torch.relu(z), torch.zeros_like(z))
