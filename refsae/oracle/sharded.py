"""TopK over latent shards (specs/distributed.md DIST-10, DIST-13, DIST-20).

A latent-sharded SAE splits its d_sae latents into `n_shards` contiguous shards of m = d_sae / n_shards
latents, shard r holding latents r·m … (r + 1)·m − 1. Its TopK must be the TopK of the whole
pre-activations: TOPK-3's `topk(z, k)`, ties included (TOPK-2's canonical rule by the global index),
whatever the number of shards (DIST-10). That is `topk_sharded`, the definition the table's row
`topk_sharded` checks implementations against on one process.

The approximations the field uses are named here too, as references of equivalences (EQ-17, EQ-18) and
not as operations (refsae.torch, which implements the specification, has no twin of them):

- `topk_shard_capacity`: OpenAI's capacity factor (`sparse_autoencoder/train.py`, `sharded_topk`):
  each shard keeps only its `k_in = min(int(k · capacity_factor // n_shards), k)` largest, and every
  gathered candidate `>=` the k-th largest candidate is kept (DIST-13);
- `topk_sharded_at_or_above`: the exact candidates with that `>=` rule alone: more than k latents where
  a positive value ties at the k-th (DIST-13).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float64

from refsae._typecheck import typechecked
from refsae.oracle import _validate
from refsae.oracle.topk import check_k, topk, topk_select

__all__ = ["topk_shard_capacity", "topk_sharded", "topk_sharded_at_or_above"]

EQUIVALENCE_FUNCTIONS: tuple[str, ...] = ("topk_shard_capacity", "topk_sharded_at_or_above")
"""Functions of `__all__` that define named approximations (EQ-17, EQ-18), not operations: references
only, so refsae.torch has no twin of them."""

ShardedLatents = Float64[np.ndarray, "batch d_sae"]
"""Pre-activations or latents of a latent-sharded SAE: no instance axis (DIST-12)."""


def check_n_shards(n_shards: int, d_sae: int) -> None:
    """`n_shards` is an integer >= 1 dividing d_sae (DIST-9)."""
    if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1 or d_sae % n_shards:
        raise ValueError(f"n_shards must be an integer >= 1 dividing d_sae = {d_sae}, got {n_shards!r}")


def _validate_z(z: np.ndarray, k: int, n_shards: int) -> None:
    check_k(k, z.shape[-1])
    check_n_shards(n_shards, z.shape[-1])
    _validate.nonempty_batch(z, "z")
    _validate.finite(z=z)


@typechecked
def topk_sharded(z: ShardedLatents, *, k: int, n_shards: int) -> ShardedLatents:
    """The TopK latents of z split in `n_shards` contiguous shards (DIST-10, DIST-20): TOPK-3's dense
    TopK of the whole z, the same for every number of shards. `ValueError` for a k outside 1 … d_sae, an
    n_shards that does not divide d_sae, an empty batch or a non-finite z.

    >>> import numpy as np
    >>> z = np.array([[5.0, 4.0, 0.1, 0.2]])
    >>> topk_sharded(z, k=2, n_shards=2).tolist()   # both of the two largest are in shard 0
    [[5.0, 4.0, 0.0, 0.0]]
    """
    _validate_z(z, k, n_shards)
    return topk(z, k=k)


def _capacity(k: int, n_shards: int, capacity_factor: float) -> int:
    return min(int(k * capacity_factor // n_shards), k)


@typechecked
def topk_shard_capacity(
    z: ShardedLatents, *, k: int, n_shards: int, capacity_factor: float = 4
) -> ShardedLatents:
    """The TopK latents of OpenAI's sharded training (`sparse_autoencoder/train.py`, `sharded_topk`), on one
    process (DIST-13, EQ-17): the latents in `n_shards` contiguous equal shards; each shard keeps its own
    `k_in = min(int(k · capacity_factor // n_shards), k)` largest z (TOPK-2's canonical rule); the k-th
    largest of the gathered candidates is the threshold, and every candidate `>=` it is kept (ties keep
    more than k); then ReLU. It equals `topk_sharded` exactly when no shard holds more than `k_in` of an
    example's k largest and no positive value ties at the k-th. `ValueError` for a d_sae not divisible
    by `n_shards`, and where `k_in` is 0 or the shards' candidates number fewer than k (no k-th
    candidate: `train.py`'s global top-k fails there too).

    >>> import numpy as np
    >>> z = np.array([[5.0, 4.0, 0.1, 0.2]])      # the two largest are both in shard 0 of 2
    >>> topk_shard_capacity(z, k=2, n_shards=2, capacity_factor=1).tolist()   # k_in = 1 per shard
    [[5.0, 0.0, 0.0, 0.2]]
    """
    _validate_z(z, k, n_shards)
    k_in = _capacity(k, n_shards, capacity_factor)
    if k_in < 1:
        raise ValueError(
            f"k · capacity_factor // n_shards = {k} · {capacity_factor} // {n_shards} is 0: no shard keeps a "
            "candidate"
        )
    m = z.shape[-1] // n_shards
    if n_shards * min(k_in, m) < k:
        raise ValueError(f"{n_shards} shards of {min(k_in, m)} candidates cannot hold k = {k}")
    kept = np.zeros(z.shape, dtype=bool)
    candidates = []
    for r in range(n_shards):
        part = z[..., r * m : (r + 1) * m]
        _, local = topk_select(part, k=min(k_in, m))
        np.put_along_axis(kept[..., r * m : (r + 1) * m], local, True, axis=-1)
        candidates.append(np.take_along_axis(part, local, axis=-1))
    threshold = -np.sort(-np.concatenate(candidates, axis=-1), axis=-1)[..., k - 1 : k]
    return np.asarray(np.where(kept & (z >= threshold), np.maximum(z, 0.0), 0.0))


def capacity_is_defined(k: int, d_sae: int, n_shards: int, capacity_factor: float) -> bool:
    """Whether `topk_shard_capacity` has a k-th candidate: `k_in >= 1` and the shards' candidates hold k."""
    k_in = _capacity(k, n_shards, capacity_factor)
    return k_in >= 1 and n_shards * min(k_in, d_sae // n_shards) >= k


@typechecked
def topk_sharded_at_or_above(z: ShardedLatents, *, k: int, n_shards: int) -> ShardedLatents:
    """Every shard's exact candidates (its own k largest), and every candidate `>=` the k-th largest
    candidate kept (DIST-13, EQ-18): `topk_sharded` except where a positive value ties at the k-th, where
    all the tied latents are kept (more than k). `topk_shard_capacity` with `k_in = k`.

    >>> import numpy as np
    >>> topk_sharded_at_or_above(np.array([[3.0, 2.0, 2.0, 1.0]]), k=2, n_shards=2).tolist()
    [[3.0, 2.0, 2.0, 0.0]]
    """
    return topk_shard_capacity(z, k=k, n_shards=n_shards, capacity_factor=n_shards)
