"""Exact BatchTopK across latent shards (DIST-16) and the data × shard grid (DIST-17;
specs/distributed.md): on real gloo groups, every process's gathered state follows the oracle's
single-process trajectory on the whole batch, including a BatchTopK whose k·B-th value is tied."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from refsae import oracle
from refsae.torch.distributed.launch import run_ranks
from tests import distributed_workers as workers
from tests.test_distributed import (
    CONVENTIONS,
    follows_the_oracle,
    make_spec,
    same_on_every_rank,
    tied_spec,
    worst_ratio_to_the_row_bound,
)

TIED_BATCH_K = 5  # tied_spec's first step has a positive tie at the k·B-th value for this k


def _tied_batchtopk_spec() -> dict[str, Any]:
    return tied_spec() | {"k": None, "batch_k": TIED_BATCH_K}


def _flat_order_selection(z: np.ndarray, k: int, key: np.ndarray) -> np.ndarray:
    """The k·B largest entries of z, ties broken by the smaller `key` (an int array shaped like z)."""
    order = np.lexsort((key.reshape(-1), -z.reshape(-1)))[: k * z.shape[0]]
    chosen = np.zeros(z.size, dtype=bool)
    chosen[order] = True
    return chosen.reshape(z.shape)


def test_the_tied_batchtopk_spec_is_decided_by_the_flat_index_rule() -> None:
    """BTOPK-2 across shards: on the tied spec's first batch the canonical rule (the lower flat index
    b·d_sae + j first) and the rule a naive gather gives (shard by shard: the lower shard first, then
    b, then j) select different entries, so the trajectories below test the rule; the canonical key
    reproduces the oracle's selection."""
    spec = _tied_batchtopk_spec()
    z = spec["x"][0] @ spec["param"]["W_enc"] + spec["param"]["b_enc"]  # untied: u = x
    batch, d_sae = z.shape
    b, j = np.meshgrid(np.arange(batch), np.arange(d_sae), indexing="ij")
    canonical = _flat_order_selection(z, TIED_BATCH_K, b * d_sae + j)
    np.testing.assert_array_equal(canonical, oracle.batchtopk(z, k=TIED_BATCH_K) != 0)
    m = d_sae // 2
    shard_major = _flat_order_selection(z, TIED_BATCH_K, (j // m) * batch * m + b * m + j % m)
    assert not np.array_equal(canonical & (z > 0), shard_major & (z > 0))


@pytest.mark.parametrize("world_size", [2, 4])
def test_every_latent_shard_follows_the_oracle_batchtopk_trajectory(world_size: int) -> None:
    """DIST-16, DIST-18, DIST-1: BatchTopK (k·B entries of the whole batch over all latents) on 2 and 4 latent
    shards, under every encode, reconstruction, sparsity and decoder convention, k ∈ {1, 2, 5}, and the
    tied spec: every step's loss, parameters and Adam moments, gathered, are the oracle's within 1e-9."""
    specs = [
        make_spec(700 + i, c, batch=6) | {"batch_k": (1, 2, 5)[i % 3]} for i, c in enumerate(CONVENTIONS)
    ]
    specs.append(_tied_batchtopk_spec())
    results = same_on_every_rank(run_ranks(world_size, workers.sharded_trajectories, specs, timeout=300))
    for spec, result in zip(specs, results, strict=True):
        follows_the_oracle(spec, result)


def _grid_specs() -> list[dict[str, Any]]:
    """ReLU under every convention (fvu's variance is the whole batch's), TopK, BatchTopK and the tied
    BatchTopK spec, each on the 2 × 2 grid."""
    specs = [make_spec(800 + i, c, batch=6) for i, c in enumerate(CONVENTIONS[::3])]
    specs += [make_spec(820 + i, c, batch=6, k=(1, 3)[i % 2]) for i, c in enumerate(CONVENTIONS[1::5])]
    specs += [
        make_spec(840 + i, c, batch=6) | {"batch_k": (2, 5)[i % 2]} for i, c in enumerate(CONVENTIONS[2::5])
    ]
    specs.append(_tied_batchtopk_spec())
    grids = [spec | {"grid": (2, 2)} for spec in specs]
    # one shard on 4 slices: BatchTopK's selection over the whole batch in a purely data-parallel step;
    # one slice on 4 shards: the data group is each process alone
    batch8 = [
        make_spec(860, CONVENTIONS[5], batch=8) | {"batch_k": 3},
        tied_spec() | {"k": None, "batch_k": TIED_BATCH_K},
    ]
    return grids + [spec | {"grid": grid} for spec in batch8 for grid in ((4, 1), (1, 4))]


def test_the_data_by_shard_grid_follows_the_oracle_trajectory() -> None:
    """DIST-17, DIST-1: 4 processes as 2 batch slices × 2 latent shards (`grid_groups`), and as 4 × 1 and
    1 × 4 for BatchTopK: every step's
    loss, parameters and Adam moments, gathered over each shard group, are the oracle's on the whole
    batch within 1e-9, for ReLU, TopK and BatchTopK, and the two slices' replicas of each shard agree bit
    for bit."""
    specs = _grid_specs()
    results = same_on_every_rank(run_ranks(4, workers.grid_trajectories, specs, timeout=300))
    for spec, result in zip(specs, results, strict=True):
        follows_the_oracle(spec, result)


def test_every_float32_sharded_and_grid_step_is_inside_the_training_step_rows_bound() -> None:
    """DIST-1 in float32 (ReLU, the `training_step` row's bound, TOL-4): on 4 latent shards and on the
    2 × 2 grid, each step from the state the processes hold is the oracle's step from that state within
    the row's bound: the decode's sum over the shards and the gradients' over the slices lengthen no
    accumulation beyond the row's (DIST-4)."""
    specs = [make_spec(900 + i, c, batch=8, dtype="float32") for i, c in enumerate(CONVENTIONS[::4])]
    sharded = same_on_every_rank(run_ranks(4, workers.sharded_trajectories, specs, timeout=300))
    assert 0 < worst_ratio_to_the_row_bound(specs, sharded) <= 1
    grid = [spec | {"grid": (2, 2)} for spec in specs]
    on_grid = same_on_every_rank(run_ranks(4, workers.grid_trajectories, grid, timeout=300))
    assert 0 < worst_ratio_to_the_row_bound(grid, on_grid) <= 1


def test_a_grid_that_does_not_fit_the_world_fails_on_every_process() -> None:
    """DIST-17, DIST-6: a 3 × 2 grid on 4 processes is a ValueError on every process, before any group
    is created."""
    outcomes = run_ranks(4, workers.bad_grid, (3, 2), timeout=120)
    assert all(status == "ok" for status, _ in outcomes), outcomes
    for _, message in outcomes:
        assert message == "ValueError: a 3 × 2 grid needs 6 processes, not 4"
