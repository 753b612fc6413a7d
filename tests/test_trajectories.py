"""Trajectories: many steps of the torch training loop, with a resampling event, against the oracle
(STEP-6, STEP-7, RES-16).

The torch side is the loop a user writes: a live `SAE`, `torch.optim.Adam`, `train_step_`, and at
the event `dead_by_fire_fraction`, `resampling_probabilities`, `resample_anthropic`,
`reset_adam_latents_`. The oracle side runs the same schedule with its own functions. The only
shared randomness is the drawn indices (RES-16: randomness never blocks exact comparison): the
oracle's sampler draws them once and both sides use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch

from refsae import oracle
from refsae import torch as rt
from refsae.cases import Case
from refsae.checking import table
from refsae.checking.check import compare
from refsae.conventions import Conventions
from refsae.oracle.optimizer import PARAMETERS

K, EVENT = 24, 11  # steps, and the step after which latents are resampled
BATCH, D_IN, D_SAE, N_DEAD = 32, 6, 12, 3
LR, LAM = 1e-3, 0.05
C = Conventions()  # tied, constrained, sum, l1
RELATIVE = 1e-9  # STEP-6
THRESHOLD = 0.01  # dead: fired on at most 1% of the examples since the start (DEAD-2)


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """K training batches, one resampling batch, and initial parameters in which latents 0..N_DEAD-1
    are nearly dead: each fires on about two of the examples before the event (its b_enc is minus
    the third-largest of its initial pre-activations), so it is dead by the fire-fraction rule at
    THRESHOLD, yet has non-zero Adam moments for the reset to clear."""
    rng = np.random.default_rng(seed)
    batches = rng.standard_normal((K, BATCH, D_IN)) + np.linspace(-1, 1, D_IN)
    resample_batch = rng.standard_normal((BATCH, D_IN)) + np.linspace(-1, 1, D_IN)
    W_dec = oracle.renormalise_rows(rng.standard_normal((D_SAE, D_IN)))
    b_dec = batches[0].mean(axis=0)
    z0 = (batches[: EVENT + 1].reshape(-1, D_IN) - b_dec) @ W_dec.T
    b_enc = np.zeros(D_SAE)
    b_enc[:N_DEAD] = -np.sort(z0[:, :N_DEAD], axis=0)[-3]
    param = {"W_enc": W_dec.T.copy(), "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    return batches, resample_batch, param


@dataclass
class Event:
    """What the oracle decided at the resampling event."""

    dead: np.ndarray
    counts: np.ndarray
    moments_before: float
    """max |moment| over the resampled latents' slices just before the reset"""
    probabilities: np.ndarray
    chosen_rows: np.ndarray
    resampled: np.ndarray


@dataclass
class Trajectory:
    states: list[dict[str, dict[str, np.ndarray]]] = field(default_factory=list)
    event: Event | None = None


def _chosen(x: np.ndarray, dead: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The (d_sae, d_in) array of chosen inputs: the k-th dead latent gets x[rows[k]]."""
    chosen = np.zeros((dead.shape[-1], x.shape[-1]))
    chosen[np.flatnonzero(dead)] = x[rows]
    return chosen


def _oracle_draw(p: np.ndarray, n: int) -> np.ndarray:
    return oracle.sample_examples(p, n, replacement=True, generator=np.random.default_rng(7))


def oracle_trajectory(seed: int = 0, draw: Any = _oracle_draw) -> Trajectory:
    """The schedule in the oracle; `draw(p, n)` draws the n chosen rows from the probabilities p."""
    batches, resample_batch, param = _data(seed)
    m = {k: np.zeros_like(v) for k, v in param.items()}
    v = {k: np.zeros_like(a) for k, a in param.items()}
    counts = np.zeros(D_SAE, dtype=np.int64)
    out = Trajectory()
    for k in range(K):
        x = batches[k]
        counts += oracle.fire_counts(oracle.encode(x, param["W_enc"], param["b_enc"], param["b_dec"]))
        step = oracle.training_step(x, param, m, v, step=k, lr=LR, l1_coefficient=LAM, conventions=C)
        param, m, v = step["param"], step["exp_avg"], step["exp_avg_sq"]
        if k == EVENT:
            dead = oracle.dead_by_fire_fraction(counts, BATCH * (k + 1), THRESHOLD)
            f, x_hat = oracle.forward(resample_batch, *(param[n] for n in PARAMETERS))
            p = oracle.resampling_probabilities(resample_batch, x_hat, f, l1_coefficient=LAM)
            rows = draw(p, int(dead.sum()))
            update = oracle.resample_anthropic(param, dead, _chosen(resample_batch, dead, rows))
            param = update["param"]
            reset = oracle.adam_reset_latents(m, v, update["resampled"])
            m, v = reset["exp_avg"], reset["exp_avg_sq"]
            cleared = max(
                float(np.abs(np.where(reset[g][n] == 0, old[n], 0.0)).max())
                for g, old in (("exp_avg", step["exp_avg"]), ("exp_avg_sq", step["exp_avg_sq"]))
                for n in PARAMETERS
            )
            out.event = Event(dead, counts.copy(), cleared, p, rows, update["resampled"])
            counts[:] = 0
        out.states.append({"param": dict(param), "exp_avg": dict(m), "exp_avg_sq": dict(v)})
    return out


def torch_trajectory(event: Event, dtype: torch.dtype, seed: int = 0, on_step: Any = None) -> Trajectory:
    """The user's loop. `on_step(k, state_before, x, result)` sees every step (STEP-7)."""
    batches, resample_batch, param = _data(seed)
    sae = rt.SAE(rt.SAEConfig(d_in=D_IN, d_sae=D_SAE, l1_coefficient=LAM, conventions=C, dtype=dtype))
    with torch.no_grad():
        for n in PARAMETERS:
            getattr(sae, n).copy_(torch.from_numpy(param[n]))
    live = {n: getattr(sae, n) for n in PARAMETERS}
    optimizer = torch.optim.Adam(sae.parameters(), lr=LR)
    counts = torch.zeros(D_SAE, dtype=torch.int64)
    out = Trajectory()

    def state() -> dict[str, dict[str, np.ndarray]]:
        s = {"param": {n: p.detach().double().numpy().copy() for n, p in live.items()}}
        for key in ("exp_avg", "exp_avg_sq"):
            s[key] = {
                n: (
                    optimizer.state[p][key].double().numpy().copy()
                    if p in optimizer.state
                    else np.zeros(p.shape)
                )
                for n, p in live.items()
            }
        return s

    for k in range(K):
        x = torch.from_numpy(batches[k]).to(dtype)
        before = state()
        with torch.no_grad():
            counts += rt.fire_counts(sae.encode(x))
        rt.train_step_(sae, optimizer, x)
        if on_step is not None:
            on_step(k, before, x, state())
        if k == EVENT:
            dead = rt.dead_by_fire_fraction(counts, BATCH * (k + 1), THRESHOLD)
            assert np.array_equal(dead.numpy(), event.dead), "the dead masks differ (DEAD-5)"
            xr = torch.from_numpy(resample_batch).to(dtype)
            with torch.no_grad():
                f, x_hat = sae(xr)
                p = rt.resampling_probabilities(xr, x_hat, f, l1_coefficient=LAM)
                chosen = torch.from_numpy(_chosen(resample_batch, event.dead, event.chosen_rows)).to(dtype)
                update = rt.resample_anthropic({n: t.detach() for n, t in live.items()}, dead, chosen)
                for n in PARAMETERS:
                    live[n].copy_(update["param"][n])
            rt.reset_adam_latents_(optimizer, live, update["resampled"])
            out.event = Event(
                dead.numpy(),
                counts.numpy().copy(),
                0.0,
                p.double().numpy(),
                event.chosen_rows,
                update["resampled"].numpy(),
            )
            counts.zero_()
        out.states.append(state())
    return out


@pytest.fixture(scope="module")
def reference() -> Trajectory:
    return oracle_trajectory()


def test_the_schedule_contains_a_resampling_event_that_revives_the_dead_latents(
    reference: Trajectory,
) -> None:
    """RES-16: the event finds exactly the nearly dead latents (they did fire, so their moments are
    not zero and the reset matters), resamples all of them, and they fire afterwards: the trajectory
    tests below do cover a resampling and a reset."""
    assert reference.event is not None
    assert reference.event.dead.tolist() == [True] * N_DEAD + [False] * (D_SAE - N_DEAD)
    assert (reference.event.counts[:N_DEAD] > 0).all()
    assert reference.event.moments_before > 1e-6
    assert np.array_equal(reference.event.resampled, reference.event.dead)
    batches, _, _ = _data()
    p = reference.states[EVENT + 1]["param"]
    fired = oracle.fire_counts(oracle.encode(batches[EVENT + 1], p["W_enc"], p["b_enc"], p["b_dec"]))
    assert (fired[:N_DEAD] > 0).all()


def test_a_float64_torch_trajectory_with_resampling_matches_the_oracle_to_1e_9(reference: Trajectory) -> None:
    """STEP-6, RES-16: after every one of K = 24 steps (a resampling event after step 12), every
    parameter and moment of the torch loop is within 1e-9 · max|oracle| of the oracle's; the fire
    counts and dead masks agree exactly and the probabilities to float64 roundoff."""
    assert reference.event is not None
    run = torch_trajectory(reference.event, torch.float64)
    assert run.event is not None
    assert np.array_equal(run.event.counts, reference.event.counts)
    assert np.abs(run.event.probabilities - reference.event.probabilities).max() <= 1e-12
    assert np.array_equal(run.event.resampled, reference.event.resampled)
    for k, (mine, theirs) in enumerate(zip(run.states, reference.states, strict=True)):
        for group in ("param", "exp_avg", "exp_avg_sq"):
            for n in PARAMETERS:
                e, a = theirs[group][n], mine[group][n]
                scale = float(np.abs(e).max())
                assert np.abs(a - e).max() <= RELATIVE * scale, f"step {k}: {group}.{n}"


def test_resampling_is_reproducible_bit_for_bit_in_torch_and_to_1e_12_against_the_oracle() -> None:
    """RES-16: the same parameters, inputs and chosen indices give bit-identical parameters when the
    torch update runs twice, and the oracle's within 1e-12 relative."""
    rng = np.random.default_rng(11)
    param = {
        "W_enc": rng.standard_normal((D_IN, D_SAE)),
        "b_enc": rng.standard_normal(D_SAE),
        "W_dec": rng.standard_normal((D_SAE, D_IN)),
        "b_dec": rng.standard_normal(D_IN),
    }
    dead = rng.integers(0, 2, D_SAE).astype(bool)
    x = rng.standard_normal((BATCH, D_IN))
    rows = oracle.sample_examples(
        np.full(BATCH, 1.0 / BATCH), int(dead.sum()), replacement=True, generator=np.random.default_rng(3)
    )
    chosen = _chosen(x, dead, rows)
    tensors = {n: torch.from_numpy(a) for n, a in param.items()}
    runs = [
        rt.resample_anthropic(tensors, torch.from_numpy(dead), torch.from_numpy(chosen), centred=True)
        for _ in range(2)
    ]
    expected = oracle.resample_anthropic(param, dead, chosen, centred=True)["param"]
    for n in PARAMETERS:
        first, second = (r["param"][n] for r in runs)
        assert torch.equal(first, second), n
        scale = float(np.abs(expected[n]).max())
        assert np.abs(first.numpy() - expected[n]).max() <= 1e-12 * scale, n


def test_every_float32_step_is_within_the_tolerance_rule_of_the_oracle_from_the_same_state(
    reference: Trajectory,
) -> None:
    """STEP-7: a float32 trajectory is bounded step by step: each step, from the float32 state it
    starts at, lands within the `training_step` row's allowed error of the oracle's step from that
    state. The drift from the float64 trajectory is measured and printed (not a tuned bound)."""
    assert reference.event is not None
    op = table.get("training_step")
    worst: list[float] = []

    def on_step(
        k: int,
        before: dict[str, dict[str, np.ndarray]],
        x: torch.Tensor,
        after: dict[str, dict[str, np.ndarray]],
    ) -> None:
        arrays = {"x": x.double().numpy(), **{f"{g}.{n}": before[g][n] for g in before for n in PARAMETERS}}
        case = Case(
            arrays,
            {
                "step": k,
                "lr": LR,
                "l1_coefficient": LAM,
                "conventions": C,
                "betas": (0.9, 0.999),
                "adam_eps": 1e-8,
                "weight_decay": 0.0,
            },
            "float32",
        )
        actual = {f"{g}.{n}": after[g][n] for g in after for n in PARAMETERS}
        actual["loss"] = op.reference(case)["loss"]  # the loop does not return its loss; compare the state
        worst.append(compare(op, case, op.reference(case), actual)[0])

    run = torch_trajectory(reference.event, torch.float32, on_step=on_step)
    assert len(worst) == K and max(worst) <= 1.0
    drift = max(
        float(
            np.abs(run.states[-1]["param"][n] - reference.states[-1]["param"][n]).max()
            / np.abs(reference.states[-1]["param"][n]).max()
        )
        for n in PARAMETERS
    )
    print(
        f"float32 trajectory: worst local ratio {max(worst):.3g}; relative drift after {K} steps {drift:.3g}"
    )
