"""Data-parallel training on real process groups (DIST-1..DIST-7; specs/distributed.md): 2 and 4 gloo
ranks on loopback train on their slices, and every rank's parameters and Adam state follow the oracle's
single-process trajectory on the whole batch; the dead-latent statistics are the whole batch's; bad
configurations fail on every rank with a clear message, never a hang."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from refsae import oracle
from refsae.cases import Case
from refsae.checking import table
from refsae.checking.check import compare
from refsae.checking.rows.optimizer import ADAM_DTYPES
from refsae.conventions import Conventions
from refsae.oracle.auxk import AuxKTerm
from refsae.oracle.optimizer import PARAMETERS
from refsae.torch.distributed.launch import run_ranks
from tests import distributed_workers as workers

STEPS = 3
LR = 1e-2


def make_spec(
    seed: int,
    conventions: dict[str, Any],
    *,
    k: int | None = None,
    n_inst: int | None = None,
    batch: int = 8,
    dtype: str = "float64",
    backward: str = "fused",
) -> dict[str, Any]:
    """A random SAE (unit decoder rows) and STEPS batches, in `dtype`'s values."""
    rng = np.random.default_rng(seed)
    d_in, d_sae = 5, 12
    inst = () if n_inst is None else (n_inst,)
    W_dec = rng.standard_normal((*inst, d_sae, d_in))
    W_dec /= np.linalg.norm(W_dec, axis=-1, keepdims=True)
    param = {
        "W_enc": rng.standard_normal((*inst, d_in, d_sae)) / np.sqrt(d_in),
        "b_enc": 0.1 * rng.standard_normal((*inst, d_sae)),
        "W_dec": W_dec,
        "b_dec": 0.1 * rng.standard_normal((*inst, d_in)),
    }
    x = rng.standard_normal((STEPS, batch, *inst, d_in))
    cast = np.float32 if dtype == "float32" else np.float64
    return {
        "param": {n: v.astype(cast).astype(np.float64) for n, v in param.items()},
        "x": x.astype(cast).astype(np.float64),
        "conventions": conventions,
        "k": k,
        "l1_coefficient": 0.3,
        "lr": LR,
        "dtype": dtype,
        "backward": backward,
    }


def _oracle_step(spec: dict[str, Any], state: dict[str, Any], t: int) -> dict[str, Any]:
    return oracle.training_step(
        spec["x"][t],
        state["param"],
        state["exp_avg"],
        state["exp_avg_sq"],
        step=t,
        lr=LR,
        l1_coefficient=spec["l1_coefficient"],
        conventions=Conventions(**spec["conventions"]),
        k=spec["k"],
        batch_k=spec.get("batch_k"),
        auxk=None if spec.get("auxk") is None else AuxKTerm(**spec["auxk"]),
    )


def _close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Within 1e-9 of the array's largest magnitude (DIST-1 in float64)."""
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-300)
    error = float(np.max(np.abs(actual - expected), initial=0.0))
    assert error <= 1e-9 * scale, f"{what}: {error:.3g} against {scale:.3g}"


def follows_the_oracle(spec: dict[str, Any], result: dict[str, Any]) -> None:
    """Each recorded step is the oracle's step from the state before it (DIST-1, float64): the loss and
    every parameter and moment within 1e-9 relative, the oracle continuing from its own state."""
    state = result["states"][0]
    for t in range(STEPS):
        expected = _oracle_step(spec, state, t)
        label = (
            f"{spec['conventions']} k={spec['k']} batch_k={spec.get('batch_k')} {spec['backward']} step {t}"
        )
        _close(np.asarray(result["loss"][t]), np.asarray(expected["loss"]), f"{label} loss")
        for group in ("param", "exp_avg", "exp_avg_sq"):
            for name in PARAMETERS:
                _close(result["states"][t + 1][group][name], expected[group][name], f"{label} {group}.{name}")
        state = {g: expected[g] for g in ("param", "exp_avg", "exp_avg_sq")}


def same_on_every_rank(outcomes: list[tuple[str, Any]]) -> list[Any]:
    """The ranks' results, after asserting that none failed and that they hold the same values bit for
    bit (DIST-3: the replicas stay identical)."""
    assert all(status == "ok" for status, _ in outcomes), [r for s, r in outcomes if s != "ok"]
    results = [r for _, r in outcomes]
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            for sa, sb in zip(a["states"], b["states"], strict=True):
                for group in sa:
                    for name in PARAMETERS:
                        np.testing.assert_array_equal(sa[group][name], sb[group][name])
            assert a["loss"] == b["loss"]
    return list(results[0])


CONVENTIONS = [
    {"encode": e, "reconstruction": r, "sparsity": s, "decoder": d}
    for e, r, s, d in itertools.product(
        ("tied", "untied"), ("sum", "mean", "fvu"), ("l1", "l1_decoder_norm"), ("constrained", "normalised")
    )
]


@pytest.mark.parametrize("world_size", [2, 4])
def test_every_rank_follows_the_oracle_trajectory_on_the_whole_batch_in_float64(world_size: int) -> None:
    """DIST-1..DIST-3: for every encode, reconstruction, sparsity and decoder convention, ReLU and TopK,
    with and without instances, fused and autograd, STEPS data-parallel steps give every rank the
    oracle's parameters, Adam moments and losses on the whole batch (within 1e-9 relative), and the
    ranks agree bit for bit."""
    specs = [make_spec(i, c) for i, c in enumerate(CONVENTIONS)]
    specs += [make_spec(100 + i, c, k=3) for i, c in enumerate(CONVENTIONS[::5])]
    specs += [make_spec(200, CONVENTIONS[7], n_inst=2), make_spec(201, CONVENTIONS[2], k=2, n_inst=3)]
    specs += [make_spec(300 + i, c, backward="autograd") for i, c in enumerate(CONVENTIONS[::7])]
    results = same_on_every_rank(run_ranks(world_size, workers.trajectories, specs, timeout=300))
    for spec, result in zip(specs, results, strict=True):
        follows_the_oracle(spec, result)


def test_every_float32_step_is_inside_the_training_step_rows_bound() -> None:
    """DIST-1 in float32: each data-parallel step (4 ranks), from the state the ranks hold, is the
    oracle's step from that state within the `training_step` row's bound (TOL-4): the all_reduce adds a
    length-W sum to each length-B/W one, which the row's length-B accumulation bound covers (DIST-4)."""
    assert "float32" in ADAM_DTYPES
    specs = [make_spec(400 + i, c, dtype="float32") for i, c in enumerate(CONVENTIONS[::3])]
    results = same_on_every_rank(run_ranks(4, workers.trajectories, specs, timeout=300))
    assert 0 < worst_ratio_to_the_row_bound(specs, results) <= 1


def worst_ratio_to_the_row_bound(specs: list[dict[str, Any]], results: list[dict[str, Any]]) -> float:
    """The largest ratio of a step's error to the `training_step` row's bound (TOL-4), each recorded step
    taken from the state before it."""
    op = table.get("training_step")
    worst = 0.0
    for spec, result in zip(specs, results, strict=True):
        for t in range(STEPS):
            before, after = result["states"][t], result["states"][t + 1]
            arrays = {"x": spec["x"][t]} | {f"{g}.{n}": before[g][n] for g in before for n in PARAMETERS}
            options = {"step": t, "lr": LR, "l1_coefficient": spec["l1_coefficient"]}
            options |= {"conventions": Conventions(**spec["conventions"])}
            options |= {"betas": (0.9, 0.999), "adam_eps": 1e-8, "weight_decay": 0.0}
            case = Case(arrays, options, "float32")
            expected = op.reference(case)
            actual = {f"{g}.{n}": after[g][n] for g in after for n in PARAMETERS}
            actual["loss"] = np.asarray(result["loss"][t])
            ratio, _ = compare(op, case, expected, actual)
            worst = max(worst, ratio)
    return worst


def test_the_dead_latent_statistics_are_the_whole_batchs() -> None:
    """DIST-5: fire counts summed over the slices are DEAD-1's on the whole batch; the steps-since-fired
    counter is DEAD-3's on the whole batch (a latent that fired on one rank's slice only is reset on
    every rank)."""
    rng = np.random.default_rng(7)
    f = np.maximum(rng.standard_normal((8, 10)), 0.0) * (rng.random((8, 10)) < 0.2)
    f[:, 0] = 0.0
    f[5, 0] = 1.0  # fires on rank 1's slice only (2 ranks of 4 rows)
    steps = rng.integers(0, 9, 10)
    outcomes = run_ranks(2, workers.dead_statistics, f, steps)
    assert all(status == "ok" for status, _ in outcomes), outcomes
    for _, result in outcomes:
        np.testing.assert_array_equal(result["counts"], oracle.fire_counts(f))
        np.testing.assert_array_equal(result["steps"], oracle.update_steps_since_fired(steps, f))
    assert outcomes[0][1]["steps"][0] == 0


def test_a_bad_configuration_fails_on_every_rank_with_a_clear_message() -> None:
    """DIST-6: unequal slices (B not divisible by the world size), replicas that differ by 1e-12, and a
    batch the loss is undefined on raise the same `ValueError` on every rank, and the group goes on to the
    next case (no rank is left waiting: the harness's timeout would fail the test); a good case after
    them runs."""
    spec = make_spec(9, CONVENTIONS[0] | {"reconstruction": "fvu"})
    x = spec["x"][0]
    cases = [
        (spec, [x[:4], x[4:7]]),
        (spec | {"perturb_rank": 1}, [x[:4], x[4:8]]),
        (spec, [np.ones_like(x[:4]), np.ones_like(x[4:8])]),
        (spec, [x[:4], x[4:8]]),
    ]
    messages = (
        "disagree on the batch slice",
        "disagree on the replicas' parameters",
        "fvu is undefined",
    )
    outcomes = run_ranks(2, workers.steps, cases, timeout=120)
    assert all(status == "ok" for status, _ in outcomes), outcomes
    for _, results in outcomes:
        for result, message in zip(results, messages, strict=False):
            assert result.startswith("ValueError") and message in result, result
        assert results[-1].startswith("loss ")
    assert outcomes[0][1][-1] == outcomes[1][1][-1]


def test_a_step_communicates_what_the_model_on_the_spec_page_says() -> None:
    """DIST-8: one all_reduce of n_inst (2 d_in d_sae + d_sae + d_in) + 1 elements; under fvu two more, of
    n_inst d_in and n_inst elements, before it."""
    specs = [
        make_spec(11, CONVENTIONS[0]),
        make_spec(12, CONVENTIONS[8], n_inst=3),
        make_spec(13, CONVENTIONS[4], k=3),
    ]
    assert [s["conventions"]["reconstruction"] for s in specs] == ["sum", "fvu", "mean"]
    outcomes = run_ranks(2, workers.communication, specs)
    assert all(status == "ok" for status, _ in outcomes), outcomes
    d_in, d_sae = 5, 12
    for _, counts in outcomes:
        assert counts[0] == [2 * d_in * d_sae + d_sae + d_in + 1]
        assert counts[1] == [3 * d_in, 3, 3 * (2 * d_in * d_sae + d_sae + d_in) + 1]
        assert counts[2] == [2 * d_in * d_sae + d_sae + d_in + 1]


def test_the_torchrun_example_trains_on_two_processes() -> None:
    """DIST-7, README: `torchrun --standalone --nproc-per-node 2 examples/train_data_parallel.py` runs, and
    the whole batch's loss goes down."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += [str(root / "examples" / "train_data_parallel.py"), "--steps", "21"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    losses = [float(v) for v in re.findall(r"loss ([0-9.]+)", done.stdout)]
    assert len(losses) == 2 and losses[1] < losses[0], done.stdout


@pytest.mark.parametrize("reconstruction", ["sum", "mean", "fvu"])
@pytest.mark.parametrize("k", [None, 3])
def test_the_slices_shares_sum_to_the_whole_batchs_loss_and_gradients(
    reconstruction: str, k: int | None
) -> None:
    """DIST-2 without processes: the fused cores given each slice's `Share` (the whole batch's B and D)
    return losses and gradients whose sums over 4 slices are the whole batch's, with instances and the
    decoder-norm penalty (the summation tree of DIST-4 within float64's rounding)."""
    import torch

    from refsae.torch.fast.gradients import Share, fused_loss_and_gradients
    from refsae.torch.fast.topk import topk_fused_loss_and_gradients
    from refsae.torch.losses import reconstruction_denominator

    spec = make_spec(21, {"reconstruction": reconstruction, "sparsity": "l1_decoder_norm"}, n_inst=2, k=k)
    c = Conventions(**spec["conventions"])
    x = torch.from_numpy(spec["x"][0])
    p = [torch.from_numpy(spec["param"][n]) for n in PARAMETERS]

    def run(xs: torch.Tensor, share: Share | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if k is None:
            return fused_loss_and_gradients(xs, *p, l1_coefficient=0.3, conventions=c, share=share)
        return topk_fused_loss_and_gradients(xs, *p, k=k, l1_coefficient=0.3, conventions=c, share=share)

    whole_loss, whole = run(x, None)
    share = Share(x.shape[0], reconstruction_denominator(x, reconstruction))
    parts = [run(x[r * 2 : (r + 1) * 2], share) for r in range(4)]
    _close(sum(float(part[0]) for part in parts) * np.ones(1), float(whole_loss) * np.ones(1), "loss")
    for name in PARAMETERS:
        total = np.sum([part[1][name].numpy() for part in parts], axis=0)
        _close(total, whole[name].numpy(), name)


def tied_spec() -> dict[str, Any]:
    """An SAE whose second half of latents copies the first (W_enc columns, b_enc; W_dec rows differ), on
    integer inputs with dyadic weights, so that every pre-activation is computed exactly and each value
    occurs twice, once in each half: with k odd a tie straddles the k-th value, and TOPK-2's canonical
    rule (the lower index) picks the first half's copy."""
    spec = make_spec(31, {"encode": "untied"}, k=3)
    rng = np.random.default_rng(31)
    W_enc = rng.integers(-4, 5, (5, 6)) / 4.0
    spec["param"]["W_enc"] = np.concatenate([W_enc, W_enc], axis=1)
    spec["param"]["b_enc"] = np.tile(rng.integers(-2, 3, 6) / 8.0, 2)
    spec["x"] = rng.integers(-3, 4, spec["x"].shape).astype(np.float64)
    return spec


@pytest.mark.parametrize("world_size", [2, 4])
def test_every_latent_shard_follows_the_oracle_trajectory_in_float64(world_size: int) -> None:
    """DIST-9, DIST-10, DIST-11, DIST-12, DIST-18: the SAE's latents split over 2 or 4 processes
    (W_enc's columns, b_enc, W_dec's rows; b_dec whole), STEPS sharded steps on the whole batch give,
    gathered, the oracle's parameters, Adam moments and losses (within 1e-9 relative): ReLU and TopK (an
    exact global selection, decoded sparsely)
    under every encode, reconstruction, sparsity and decoder convention, and a TopK whose k-th value is
    tied across shards."""
    specs = [make_spec(500 + i, c, batch=6) for i, c in enumerate(CONVENTIONS[::2])]
    specs += [
        make_spec(600 + i, c, batch=6, k=k)
        for i, (c, k) in enumerate(zip(CONVENTIONS[1::2], itertools.cycle((1, 3, 7)), strict=False))
    ]
    specs.append(tied_spec())
    outcomes = run_ranks(world_size, workers.sharded_trajectories, specs, timeout=300)
    results = same_on_every_rank(outcomes)
    for spec, result in zip(specs, results, strict=True):
        for name in PARAMETERS:
            np.testing.assert_array_equal(result["states"][0]["param"][name], spec["param"][name])
        follows_the_oracle(spec, result)


def test_the_tie_rule_decides_the_tied_spec() -> None:
    """The tied case of the test above is a real test of TOPK-2 across shards: the rule that takes the
    higher index first gives another step."""
    spec = tied_spec()
    z = spec["x"][0] @ spec["param"]["W_enc"] + spec["param"]["b_enc"]
    ordered = -np.sort(-z, axis=-1)
    assert np.any((ordered[:, 2] == ordered[:, 3]) & (ordered[:, 2] > 0))  # a positive tie at the k-th value
    canonical = oracle.topk(z, k=3)
    flipped = oracle.topk(z[:, ::-1], k=3)[:, ::-1]  # the higher index first
    assert not np.array_equal(canonical, flipped)


def test_a_bad_sharded_configuration_fails_on_every_rank() -> None:
    """DIST-6, DIST-9: a d_sae not divisible by the world size, and a batch that differs across the
    shards, raise the same `ValueError` on every process; a good step after them runs."""
    spec = make_spec(41, CONVENTIONS[0], batch=6)
    outcomes = run_ranks(2, workers.sharded_errors, spec, timeout=120)
    assert all(status == "ok" for status, _ in outcomes), outcomes
    for _, (divisible, differs, good) in outcomes:
        assert divisible.startswith("ValueError") and "not divisible by the world size 2" in divisible
        assert differs.startswith("ValueError") and "disagree on the batch" in differs
        assert good.startswith("loss ")


def test_a_sharded_step_communicates_what_the_model_on_the_spec_page_says() -> None:
    """DIST-12, DIST-14, DIST-16: the decode's all_reduce of B·d_in + 1 elements; under TopK first two
    all_gathers of B·min(k, m) elements, under BatchTopK of min(k·B, B·m); under `tied` one more
    all_reduce of d_in: the model the benchmark's byte counts are compared with."""
    batch, d_in, m = 6, 5, 6  # d_sae 12 over 2 processes
    specs = [
        make_spec(51, {"encode": "untied"}, batch=batch),
        make_spec(52, {"encode": "tied"}, batch=batch, k=3),
        make_spec(53, {"encode": "untied"}, batch=batch, k=8),
        make_spec(54, {"encode": "untied"}, batch=batch) | {"batch_k": 2},
    ]
    outcomes = run_ranks(2, workers.sharded_communication, specs)
    assert all(status == "ok" for status, _ in outcomes), outcomes
    decode = ("all_reduce", batch * d_in + 1)
    for _, calls in outcomes:
        assert calls[0] == [decode]
        assert calls[1] == [("all_gather", batch * 3)] * 2 + [decode, ("all_reduce", d_in)]
        assert calls[2] == [("all_gather", batch * min(8, m))] * 2 + [decode]
        assert calls[3] == [("all_gather", min(2 * batch, batch * m))] * 2 + [decode]  # DIST-16


@pytest.mark.parametrize(("n_shards", "capacity_factor"), [(16, 2), (32, 4), (64, 4)])
def test_the_capacity_factor_changes_topk_exactly_where_a_shard_holds_more_than_k_in(
    n_shards: int, capacity_factor: int
) -> None:
    """DIST-13: on Gaussian pre-activations (no ties), OpenAI's per-shard selection equals the exact TopK
    on the examples where no shard holds more than k_in of the k largest, and differs on every other
    one; both kinds occur."""
    rng = np.random.default_rng(n_shards * capacity_factor)
    k, d_sae = 32, 512
    z = rng.standard_normal((400, d_sae))
    k_in = min(k * capacity_factor // n_shards, k)
    approx = oracle.topk_shard_capacity(z, k=k, n_shards=n_shards, capacity_factor=capacity_factor)
    exact = oracle.topk(z, k=k)
    _, chosen = oracle.topk_select(z, k=k)
    per_shard = np.stack([np.bincount(row // (d_sae // n_shards), minlength=n_shards) for row in chosen])
    overflow = (per_shard > k_in).any(axis=1)
    differs = (approx != exact).any(axis=1)
    np.testing.assert_array_equal(differs, overflow)
    assert 0 < overflow.mean() < 1


def test_the_capacity_factor_loses_a_latent_and_the_at_or_above_rule_keeps_more_than_k() -> None:
    """DIST-13: the counterexample of the spec page (the two largest in one shard, one candidate per
    shard), and a tie at the k-th value kept twice (`>=`): three latents for k = 2."""
    z = np.array([[5.0, 4.0, 0.1, 0.2]])
    approx = oracle.topk_shard_capacity(z, k=2, n_shards=2, capacity_factor=1)
    assert approx.tolist() == [[5.0, 0.0, 0.0, 0.2]] and oracle.topk(z, k=2).tolist() == [
        [5.0, 4.0, 0.0, 0.0]
    ]
    tied = np.array([[3.0, 2.0, 2.0, 1.0]])
    kept = oracle.topk_shard_capacity(tied, k=2, n_shards=2, capacity_factor=2)
    assert kept.tolist() == [[3.0, 2.0, 2.0, 0.0]] and int((kept > 0).sum()) == 3
    with pytest.raises(ValueError, match="no shard keeps a candidate"):
        oracle.topk_shard_capacity(z, k=1, n_shards=2, capacity_factor=1)
    with pytest.raises(ValueError, match="dividing d_sae"):
        oracle.topk_shard_capacity(z, k=1, n_shards=3)
