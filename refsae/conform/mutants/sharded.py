"""Mutants and variants of the sharded TopK row (specs/distributed.md DIST-10, DIST-13, DIST-20).

Two variants are the field's approximations, written as a library would write them with `torch.topk`
(not through refsae's selection): OpenAI's per-shard capacity factor (EQ-17, a `convention` once the
adapter declares its capacity factor, 4, and the scope where it has a k-th candidate), and the `>=`
rule at the k-th value on exact candidates (EQ-18, a `tie`). One is a bug: the gathered candidates
carry their shard's local indices, so every shard's winners land in shard 0's latents.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from refsae.cases import Case
from refsae.conform.adapter import Domain
from refsae.conform.mutants.record import ALL_BUT_F16, Mutant
from refsae.oracle.sharded import capacity_is_defined

CAPACITY_FACTOR = 4
"""OpenAI's capacity factor of the TopK (`train.py`: 4 for TopK, 2 for AuxK)."""


def _at_or_above(z: Tensor, k: int, n_shards: int, k_in: int, *, offset: bool = True) -> Tensor:
    """Each shard's `k_in` largest by `torch.topk`, gathered; every candidate >= the k-th largest kept."""
    m = z.shape[-1] // n_shards
    if k_in < 1 or n_shards * min(k_in, m) < k:
        raise ValueError(f"no k-th candidate: {n_shards} shards of {min(k_in, m)} candidates for k = {k}")
    values, indices = [], []
    for r in range(n_shards):
        v, i = torch.topk(z[:, r * m : (r + 1) * m], min(k_in, m), dim=-1)
        values.append(v)
        indices.append(i + r * m if offset else i)
    candidates, where = torch.cat(values, -1), torch.cat(indices, -1)
    kth = torch.topk(candidates, k, dim=-1).values[:, -1:]
    kept = torch.zeros_like(z, dtype=torch.bool).scatter_(-1, where, candidates >= kth)
    return torch.where(kept, torch.relu(z), torch.zeros_like(z))


def capacity_factor(z: Tensor, *, k: int, n_shards: int) -> Tensor:
    """OpenAI's `sharded_topk`: k_in = min(k · 4 // n_shards, k) candidates per shard, then `>=`."""
    return _at_or_above(z, k, n_shards, min(k * CAPACITY_FACTOR // n_shards, k))


def at_or_above(z: Tensor, *, k: int, n_shards: int) -> Tensor:
    """Exact candidates (k per shard), then every candidate >= the k-th kept."""
    return _at_or_above(z, k, n_shards, k)


def local_indices(z: Tensor, *, k: int, n_shards: int) -> Tensor:
    """The candidates gathered with their shard's local indices: the winners all land in shard 0."""
    m = z.shape[-1] // n_shards
    values, indices = [], []
    for r in range(n_shards):
        v, i = torch.topk(z[:, r * m : (r + 1) * m], min(k, m), dim=-1)
        values.append(v)
        indices.append(i)
    chosen = torch.topk(torch.cat(values, -1), k, dim=-1).indices
    where = torch.cat(indices, -1).gather(-1, chosen)
    kept = torch.zeros_like(z, dtype=torch.bool).scatter_(-1, where, True)
    return torch.where(kept, torch.relu(z), torch.zeros_like(z))


def _has_kth_candidate(case: Case) -> bool:
    o: dict[str, Any] = dict(case.options)
    return capacity_is_defined(o["k"], case.arrays["z"].shape[-1], o["n_shards"], CAPACITY_FACTOR)


HAS_KTH_CANDIDATE = Domain(
    "has_kth_candidate",
    "OpenAI's sharded_topk needs k candidates: k · 4 // n_shards >= 1 and n_shards · min(k_in, m) >= k "
    "(its global top-k fails otherwise)",
    ("topk_sharded",),
    _has_kth_candidate,
)

MUTANTS = (
    Mutant(
        "topk_sharded_capacity_factor",
        "topk_sharded",
        "DIST-10",
        "each shard keeps only its k · 4 // n_shards largest, then every candidate >= the k-th (OpenAI's "
        "capacity factor 4, declared)",
        capacity_factor,
        dtypes=ALL_BUT_F16,
        verdict="convention",
        domains=(HAS_KTH_CANDIDATE,),
        equivalence_parameters={"capacity_factor": CAPACITY_FACTOR},
    ),
    Mutant(
        "topk_sharded_at_or_above",
        "topk_sharded",
        "DIST-10",
        "every candidate >= the k-th kept: more than k latents at a positive tie",
        at_or_above,
        dtypes=ALL_BUT_F16,
        verdict="tie",
    ),
    Mutant(
        "topk_sharded_local_indices",
        "topk_sharded",
        "DIST-10",
        "the gathered candidates carry their shard's local indices (the shard offset forgotten)",
        local_indices,
        dtypes=ALL_BUT_F16,
        output="f",
    ),
)
