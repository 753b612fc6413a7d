"""Resampling across data-parallel processes (DIST-15; specs/distributed.md): the schedule of
tests/test_trajectories.py (24 steps, a resampling event after step 11 that revives nearly dead
latents) run on 2 and 4 gloo ranks follows the oracle's single-process trajectory on the whole batch,
with the same chosen inputs; generators in different states fail on every rank."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from refsae import torch as rt
from refsae.oracle.optimizer import PARAMETERS
from refsae.torch.distributed.launch import run_ranks
from tests import distributed_workers as workers
from tests import test_trajectories as schedule

SEED = 11


def _torch_draw(p: np.ndarray, n: int) -> np.ndarray:
    """torch's sampler (RES-4) on the oracle's probabilities, from a generator seeded with SEED: what
    every rank draws from the whole batch's probabilities, if they are the oracle's."""
    generator = torch.Generator().manual_seed(SEED)
    rows = rt.sample_examples(torch.from_numpy(p), n, replacement=True, generator=generator)
    return rows.numpy()


def _spec(seeds: list[int]) -> dict[str, Any]:
    batches, resample_batch, param = schedule._data()
    conventions = schedule.C
    return {
        "param": param,
        "x": batches,
        "resample_x": resample_batch,
        "conventions": {
            f: getattr(conventions, f) for f in ("encode", "reconstruction", "sparsity", "decoder")
        },
        "k": None,
        "l1_coefficient": schedule.LAM,
        "lr": schedule.LR,
        "dtype": "float64",
        "backward": "fused",
        "event": schedule.EVENT,
        "threshold": schedule.THRESHOLD,
        "seeds": seeds,
    }


@pytest.mark.parametrize("world_size", [2, 4])
def test_every_rank_follows_the_oracle_trajectory_through_a_resampling_event(world_size: int) -> None:
    """DIST-15, DIST-1, RES-16: every rank finds the oracle's dead latents, resamples exactly the
    oracle's latents from the inputs the oracle chose (the same draws from the whole batch's
    probabilities), and after every one of the 24 steps holds the oracle's parameters and Adam moments
    within 1e-9 relative; the ranks agree bit for bit."""
    reference = schedule.oracle_trajectory(draw=_torch_draw)
    assert reference.event is not None and reference.event.resampled.any()
    outcomes = run_ranks(world_size, workers.resampling_trajectory, _spec([SEED] * world_size), timeout=300)
    assert all(status == "ok" for status, _ in outcomes), outcomes
    results = [r for _, r in outcomes]
    for result in results:
        np.testing.assert_array_equal(result["dead"], reference.event.dead)
        np.testing.assert_array_equal(result["resampled"], reference.event.resampled)
        for k, (actual, expected) in enumerate(zip(result["states"], reference.states, strict=True)):
            for group in expected:
                for name in PARAMETERS:
                    scale = max(float(np.abs(expected[group][name]).max()), 1e-300)
                    error = float(np.abs(actual[group][name] - expected[group][name]).max())
                    assert error <= 1e-9 * scale, f"step {k} {group}.{name}: {error:.3g} against {scale:.3g}"
        for a, b in zip(result["states"], results[0]["states"], strict=True):
            for group in a:
                for name in PARAMETERS:
                    np.testing.assert_array_equal(a[group][name], b[group][name])


def test_the_event_changes_the_trajectory_so_the_comparison_can_fail() -> None:
    """DIST-15: other draws (another seed) give another trajectory after the event, farther from the
    reference than DIST-1's 1e-9, so the test above tells one draw from another."""
    reference = schedule.oracle_trajectory(draw=_torch_draw)
    other = schedule.oracle_trajectory(
        draw=lambda p, n: rt.sample_examples(
            torch.from_numpy(p), n, replacement=True, generator=torch.Generator().manual_seed(SEED + 1)
        ).numpy()
    )
    assert not np.array_equal(reference.event.chosen_rows, other.event.chosen_rows)  # type: ignore[union-attr]
    after = schedule.EVENT
    W_dec, W_dec_other = reference.states[after]["param"]["W_dec"], other.states[after]["param"]["W_dec"]
    assert np.abs(W_dec - W_dec_other).max() > 1e-3


def test_generators_in_different_states_fail_on_every_rank() -> None:
    """DIST-15, DIST-6: a rank whose generator is seeded differently would draw other inputs; every rank
    raises the same ValueError instead (and none hangs)."""
    outcomes = run_ranks(2, workers.resampling_trajectory, _spec([SEED, SEED + 1]), timeout=120)
    assert all(status == "ok" for status, _ in outcomes), outcomes
    errors = [r["error"] for _, r in outcomes]
    assert errors[0] == errors[1] and "disagree on the dead mask and the generator's state" in errors[0]
