"""Adam and the reset of chosen latents' moments, on a live `torch.optim.Adam` (OPT-1..OPT-7).

The table rows `adam_step` and `adam_reset_latents` check one step and one reset on drawn cases;
these tests follow a live optimizer over several steps, through a reset, as a training loop does.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from refsae import oracle
from refsae import torch as rt
from refsae.oracle.optimizer import PARAMETERS

D_IN, D_SAE, N_INST = 3, 5, 2


def _params(rng: np.random.Generator, inst: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    shapes = {"W_enc": (D_IN, D_SAE), "b_enc": (D_SAE,), "W_dec": (D_SAE, D_IN), "b_dec": (D_IN,)}
    return {k: rng.standard_normal((*inst, *s)) for k, s in shapes.items()}


def _live(param: dict[str, np.ndarray]) -> tuple[dict[str, torch.nn.Parameter], torch.optim.Adam]:
    live = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in param.items()}
    return live, torch.optim.Adam(list(live.values()), lr=1e-2, betas=(0.9, 0.999), eps=1e-8)


def _moments(
    optimizer: torch.optim.Optimizer, live: dict[str, torch.nn.Parameter], key: str
) -> dict[str, np.ndarray]:
    return {k: optimizer.state[p][key].numpy().copy() for k, p in live.items()}


def _step_both(
    live: dict[str, torch.nn.Parameter],
    optimizer: torch.optim.Adam,
    state: oracle.AdamUpdate,
    grad: dict[str, np.ndarray],
) -> oracle.AdamUpdate:
    for k, p in live.items():
        p.grad = torch.from_numpy(grad[k].copy())
    optimizer.step()
    return oracle.adam_step(
        state.param,
        grad,
        state.exp_avg,
        state.exp_avg_sq,
        step=state.step,
        lr=1e-2,
        betas=(0.9, 0.999),
        eps=1e-8,
    )


def _assert_close(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray], what: str) -> None:
    for k in PARAMETERS:
        scale = max(float(np.abs(expected[k]).max()), 1e-300)
        assert np.abs(actual[k] - expected[k]).max() <= 1e-12 * scale, f"{what}.{k}"


@pytest.mark.parametrize("inst", [(), (N_INST,)], ids=["no-instances", "instances"])
def test_torch_adam_follows_the_oracle_over_steps_and_through_a_reset(inst: tuple[int, ...]) -> None:
    """OPT-1, OPT-4, OPT-5, OPT-6: ten steps of a live torch.optim.Adam, a reset of some latents by
    `reset_adam_latents_` after the fifth, in float64: parameters and moments follow the oracle to
    1e-12 relative at every step, and the reset equals `adam_reset_latents` exactly."""
    rng = np.random.default_rng(1)
    param = _params(rng, inst)
    live, optimizer = _live(param)
    zeros = {k: np.zeros_like(v) for k, v in param.items()}
    state = oracle.AdamUpdate(param, zeros, zeros, 0)
    latents = rng.integers(0, 2, (*inst, D_SAE))
    for t in range(10):
        state = _step_both(
            live, optimizer, state, {k: rng.standard_normal(v.shape) for k, v in param.items()}
        )
        if t == 4:
            torch_before = [_moments(optimizer, live, key) for key in ("exp_avg", "exp_avg_sq")]
            rt.reset_adam_latents_(optimizer, live, torch.from_numpy(latents))
            exact = oracle.adam_reset_latents(
                torch_before[0], torch_before[1], latents
            )  # the reset of torch's own moments
            for key in ("exp_avg", "exp_avg_sq"):
                torch_moments = _moments(optimizer, live, key)
                for k in PARAMETERS:
                    assert np.array_equal(torch_moments[k], exact[key][k]), f"reset {key}.{k}"
            reset = oracle.adam_reset_latents(state.exp_avg, state.exp_avg_sq, latents)
            state = oracle.AdamUpdate(state.param, reset["exp_avg"], reset["exp_avg_sq"], state.step)
        _assert_close({k: p.detach().numpy() for k, p in live.items()}, state.param, f"step {t} param")
        _assert_close(_moments(optimizer, live, "exp_avg"), state.exp_avg, f"step {t} exp_avg")
        _assert_close(_moments(optimizer, live, "exp_avg_sq"), state.exp_avg_sq, f"step {t} exp_avg_sq")
        assert all(float(optimizer.state[p]["step"]) == t + 1 for p in live.values())  # OPT-6


def test_a_reset_touches_exactly_the_slices_of_the_chosen_latents_bit_for_bit() -> None:
    """OPT-4, OPT-5: after `reset_adam_latents_`, the chosen latents' column of W_enc, entry of b_enc
    and row of W_dec are zero in both moments; every other element (b_dec included), the parameters
    and the step counters are bit-identical to before."""
    rng = np.random.default_rng(2)
    param = _params(rng, (N_INST,))
    live, optimizer = _live(param)
    for p in live.values():
        p.grad = torch.randn(p.shape, dtype=torch.float64)
    optimizer.step()
    before = {key: _moments(optimizer, live, key) for key in ("exp_avg", "exp_avg_sq")}
    params_before = {k: p.detach().clone() for k, p in live.items()}
    latents = np.array([[1, 0, 0, 1, 0], [0, 0, 0, 0, 1]])
    rt.reset_adam_latents_(optimizer, live, torch.from_numpy(latents))
    for key in ("exp_avg", "exp_avg_sq"):
        after = _moments(optimizer, live, key)
        for i, j in np.ndindex(*latents.shape):
            chosen = bool(latents[i, j])
            for name, piece in (("W_enc", np.s_[i, :, j]), ("b_enc", np.s_[i, j]), ("W_dec", np.s_[i, j, :])):
                if chosen:
                    assert not after[name][piece].any(), f"{key}.{name} of latent {i},{j} not zeroed"
                else:
                    assert np.array_equal(after[name][piece], before[key][name][piece])
        assert np.array_equal(after["b_dec"], before[key]["b_dec"])
    for k, p in live.items():
        assert torch.equal(p.detach(), params_before[k])
        assert float(optimizer.state[p]["step"]) == 1.0


def test_after_a_reset_under_a_large_counter_the_first_step_is_about_3_16_lr() -> None:
    """OPT-6: the shared step counter is not reset, so a reset latent's first update is
    lr·(1 − β1)/√(1 − β2) (≈ 3.16·lr), not the lr of a fresh Adam; torch.optim.Adam agrees."""
    rng = np.random.default_rng(3)
    param = _params(rng)
    live, optimizer = _live(param)
    for p in live.values():
        p.grad = torch.randn(p.shape, dtype=torch.float64)
        optimizer.state[p] = {
            "step": torch.tensor(10_000.0),
            "exp_avg": torch.randn(p.shape, dtype=torch.float64),
            "exp_avg_sq": torch.rand(p.shape, dtype=torch.float64),
        }
    latents = np.array([0, 1, 0, 0, 0])
    rt.reset_adam_latents_(optimizer, live, torch.from_numpy(latents))
    before = live["b_enc"].detach().clone()
    optimizer.step()
    moved = (before - live["b_enc"].detach()).abs() / 1e-2
    g = live["b_enc"].grad
    assert g is not None
    beta1, beta2, t = 0.9, 0.999, 10_001
    predicted = ((1 - beta1) / (1 - beta1**t)) / (
        np.sqrt((1 - beta2) / (1 - beta2**t)) + 1e-8 / abs(float(g[1]))
    )
    assert abs(float(moved[1]) - predicted) <= 1e-9 * predicted
    assert 3.16 < predicted < 3.17


def test_float16_adam_divides_by_zero_which_is_why_the_table_leaves_it_out() -> None:
    """OPT-7: in float16, eps = 1e-8 rounds to 0 and a small g² underflows, so torch.optim.Adam turns
    a finite parameter and gradient into inf on its first step."""
    assert float(torch.tensor(1e-8, dtype=torch.float16)) == 0.0
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.float16))
    optimizer = torch.optim.Adam([p], lr=1e-3, eps=1e-8)
    p.grad = torch.full((3,), 1e-4, dtype=torch.float16)  # g² = 1e-8 underflows to 0 in float16
    optimizer.step()
    assert not bool(torch.isfinite(p).all())
    same_in_bfloat16 = torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16))
    optimizer = torch.optim.Adam([same_in_bfloat16], lr=1e-3, eps=1e-8)
    same_in_bfloat16.grad = torch.full((3,), 1e-4, dtype=torch.bfloat16)
    optimizer.step()
    assert bool(torch.isfinite(same_in_bfloat16).all())


@pytest.mark.parametrize("side", ["oracle", "torch"])
@pytest.mark.parametrize(
    "bad",
    [
        {"lr": 0.0},
        {"lr": float("nan")},
        {"betas": (1.0, 0.999)},
        {"betas": (0.9, -0.1)},
        {"eps": 0.0},
        {"weight_decay": -1.0},
        {"step": -1},
    ],
    ids=["lr-0", "lr-nan", "beta1-1", "beta2-negative", "eps-0", "weight-decay-negative", "step-negative"],
)
def test_out_of_range_hyperparameters_raise_value_error(side: str, bad: dict[str, object]) -> None:
    """OPT-3."""
    param = _params(np.random.default_rng(4))
    options: dict[str, object] = {"step": 0, "lr": 1e-3, **bad}
    if side == "oracle":
        with pytest.raises(ValueError, match=r"out of range|step counts"):
            oracle.adam_step(param, param, param, param, **options)  # type: ignore[arg-type]
    else:
        tensors = {k: torch.from_numpy(v) for k, v in param.items()}
        with pytest.raises(ValueError, match=r"out of range|step counts"):
            rt.adam_step(tensors, tensors, tensors, tensors, **options)  # type: ignore[arg-type]


def test_weight_decay_is_the_l2_form_added_to_the_gradient() -> None:
    """OPT-2: Adam with weight decay wd on gradient g equals Adam without it on g + wd·p."""
    rng = np.random.default_rng(5)
    param, grad = _params(rng), _params(rng)
    zeros = {k: np.zeros_like(v) for k, v in param.items()}
    decayed = oracle.adam_step(param, grad, zeros, zeros, step=0, lr=1e-2, weight_decay=0.1)
    folded = {k: grad[k] + 0.1 * param[k] for k in PARAMETERS}
    plain = oracle.adam_step(param, folded, zeros, zeros, step=0, lr=1e-2)
    for k in PARAMETERS:
        assert np.array_equal(decayed.param[k], plain.param[k])
