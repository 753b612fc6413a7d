"""JumpReLU's tanh and pre-activation penalties beyond the table rows (JUMP-9..JUMP-12): the gradients
against central differences of the oracle's loss where they are true derivatives, the threshold's
straight-through part against its formula, the edges, and bad input on both sides. The rows are proved
against the oracle by `tests/test_torch_matches_oracle.py`; the checker's power on them by the mutants
of `refsae.conform.mutants.jumprelu_penalties`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from refsae import oracle
from refsae import torch as rt
from refsae.cases import Case
from refsae.checking import table
from refsae.checking.rows.jumprelu import target_l0_bounds
from refsae.checking.tolerances import Bound
from refsae.conventions import Conventions
from tests.float64_agreement import agree

SIDES = ("oracle", "torch")


def _case(seed: int) -> tuple[np.ndarray, dict[str, Any], np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((16, 3))
    params = {
        "W_enc": rng.standard_normal((3, 5)),
        "b_enc": 0.1 * rng.standard_normal(5),
        "W_dec": rng.standard_normal((5, 3)),
        "b_dec": 0.1 * rng.standard_normal(3),
    }
    return x, params, np.abs(rng.standard_normal(5)) + 0.2


def _row_bounds(row: str, x: np.ndarray, arrays: dict[str, Any], **options: Any) -> dict[str, Bound]:
    """The row's own error bounds (TOL-4) at float64 on this case: the magnitudes and rounding chains
    two float64 computations of its outputs are compared under."""
    case = Case({"x": x, **arrays}, {"conventions": Conventions(), **options}, "float64")
    out = {k: np.asarray(v) for k, v in getattr(oracle, row)(x, **arrays, **options).items()}
    return {k: b for k, b in table.get(row).bounds(case, out).items() if b is not None}


def _within(a: np.ndarray, b: np.ndarray, *bounds: Bound) -> bool:
    """`agree` under the sum of the bounds' magnitudes and the longest of their chains."""
    magnitude = np.sum([np.asarray(bound.magnitude) for bound in bounds], axis=0)
    return agree(a, b, magnitude, max(bound.k_acc + bound.k_store for bound in bounds))


def _central(loss: Any, params: dict[str, Any], name: str, h: float = 1e-6) -> np.ndarray:
    grad: np.ndarray = np.zeros_like(params[name])
    for index in np.ndindex(params[name].shape):
        up, down = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in params.items()}
        up[name][index] += h
        down[name][index] -= h
        grad[index] = (loss(up) - loss(down)) / (2 * h)
    return grad


@pytest.mark.parametrize("seed", range(3))
def test_the_tanh_penalty_gradients_of_the_parameters_are_the_derivatives_of_the_loss(seed: int) -> None:
    """JUMP-10: away from the jumps, W_enc, b_enc, W_dec, b_dec get the true derivative of JUMP-9's loss."""
    x, params, theta = _case(seed)
    options: dict[str, Any] = {"l0_coefficient": 0.7, "bandwidth": 0.5, "tanh_scale": 4.0}
    z = oracle.pre_activations(x, params["W_enc"], params["b_enc"], params["b_dec"])
    assert np.abs(z - theta).min() > 1e-4  # no example at a jump: the loss is smooth there

    def loss(p: dict[str, Any]) -> float:
        return float(oracle.jumprelu_tanh_total_loss(x, **p, theta=theta, **options))

    got = oracle.jumprelu_tanh_loss_gradients(x, **params, theta=theta, **options)
    for name in params:
        assert np.abs(got[name] - _central(loss, params, name)).max() <= 1e-6


@pytest.mark.parametrize("seed", range(3))
def test_the_tanh_penalty_reaches_the_threshold_through_the_window_also_from_inactive_latents(
    seed: int,
) -> None:
    """JUMP-10, JUMP-3: the penalty's part of ∂L/∂θ_j (the gradient less the reconstruction's, JUMP-6)
    is −(θ_j/ε) Σ_{b in the window} (λ/B) c s_j sech²(c f_bj s_j), inactive examples counting (λ/B) c s_j."""
    x, params, theta = _case(seed)
    lam, eps, c = 0.7, 0.5, 4.0
    base = oracle.jumprelu_loss_gradients(x, **params, theta=theta, l0_coefficient=0.0, bandwidth=eps)
    got = oracle.jumprelu_tanh_loss_gradients(
        x, **params, theta=theta, l0_coefficient=lam, bandwidth=eps, tanh_scale=c
    )
    z = oracle.pre_activations(x, params["W_enc"], params["b_enc"], params["b_dec"])
    f, s = np.where(z > theta, z, 0.0), np.linalg.norm(params["W_dec"], axis=-1)
    window = np.abs(z - theta) < eps / 2
    slope = lam / x.shape[0] * c * s / np.cosh(c * f * s) ** 2
    expected = -(theta / eps) * (slope * window).sum(axis=0)
    options = {"l0_coefficient": lam, "bandwidth": eps}
    tanh = _row_bounds("jumprelu_tanh_loss_gradients", x, {**params, "theta": theta}, **options, tanh_scale=c)
    step = _row_bounds("jumprelu_loss_gradients", x, {**params, "theta": theta}, **options)
    assert _within(got["threshold"] - base["threshold"], expected, tanh["threshold"], step["threshold"])
    assert (window & (z <= theta)).any()  # an inactive example in a window contributes


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("log_theta", [False, True])
def test_the_pre_activation_penalty_gradients_are_exact_derivatives_including_the_threshold(
    seed: int, log_theta: bool
) -> None:
    """JUMP-12: every gradient, θ's too, is the central difference of JUMP-11's penalty (log θ: JUMP-5)."""
    x, params, theta = _case(seed)
    dead = np.array([1, 0, 1, 1, 0])
    options: dict[str, Any] = {"pre_act_coefficient": 0.3}

    def penalty(p: dict[str, Any]) -> float:
        t = np.exp(p["log_theta"]) if log_theta else p["theta"]
        rest = {k: v for k, v in p.items() if k not in ("theta", "log_theta")}
        return float(oracle.jumprelu_pre_act_penalty(x, **rest, theta=t, dead=dead, **options))

    stored: dict[str, Any] = {
        **params,
        ("log_theta" if log_theta else "theta"): np.log(theta) if log_theta else theta,
    }
    got = oracle.jumprelu_pre_act_penalty_gradients(
        x, **params, theta=theta, dead=dead, parametrisation="log_theta" if log_theta else "theta", **options
    )
    for name in params:
        assert np.abs(got[name] - _central(penalty, stored, name)).max() <= 1e-6
    expected = _central(penalty, stored, "log_theta" if log_theta else "theta")
    assert np.abs(got["threshold"] - expected).max() <= 1e-6 and (expected != 0).any()


@pytest.mark.parametrize("side", SIDES)
def test_no_dead_latent_means_no_pre_activation_penalty_and_no_gradient(side: str) -> None:
    """JUMP-11, JUMP-12: d = 0 everywhere gives 0 and zero gradients."""
    x, params, theta = _case(0)
    dead = np.zeros(5, dtype=np.int64)
    if side == "oracle":
        value = oracle.jumprelu_pre_act_penalty(x, **params, theta=theta, dead=dead, pre_act_coefficient=1.0)
        grads = oracle.jumprelu_pre_act_penalty_gradients(
            x, **params, theta=theta, dead=dead, pre_act_coefficient=1.0
        )
    else:
        t = {k: torch.from_numpy(v) for k, v in params.items()}
        args: dict[str, Any] = {**t, "theta": torch.from_numpy(theta), "dead": torch.from_numpy(dead)}
        value = rt.jumprelu_pre_act_penalty(torch.from_numpy(x), **args, pre_act_coefficient=1.0).numpy()
        grads = {
            k: v.numpy()
            for k, v in rt.jumprelu_pre_act_penalty_gradients(
                torch.from_numpy(x), **args, pre_act_coefficient=1.0
            ).items()
        }
    assert float(value) == 0.0 and all(np.all(g == 0.0) for g in grads.values())


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    ("name", "options", "dead", "message"),
    [
        (
            "jumprelu_tanh_total_loss",
            {"l0_coefficient": 1.0, "bandwidth": 0.5, "tanh_scale": 0.0},
            None,
            "tanh_scale",
        ),
        ("jumprelu_tanh_total_loss", {"l0_coefficient": -1.0, "bandwidth": 0.5}, None, "l0_coefficient"),
        (
            "jumprelu_pre_act_penalty",
            {"pre_act_coefficient": float("inf")},
            [0, 1, 0, 0, 1],
            "pre_act_coefficient",
        ),
        ("jumprelu_pre_act_penalty", {"pre_act_coefficient": 1.0}, [0, 2, 0, 0, 1], "dead must be a 0/1"),
    ],
)
def test_bad_options_and_masks_are_rejected_by_name(
    side: str, name: str, options: dict[str, Any], dead: list[int] | None, message: str
) -> None:
    """JUMP-7's rules for the new options (JUMP-9 tanh_scale > 0, JUMP-11 λ_p and the 0/1 dead mask)."""
    x, params, theta = _case(1)
    arrays: dict[str, Any] = {**params, "theta": theta}
    if dead is not None:
        arrays["dead"] = np.array(dead)
    with pytest.raises(ValueError, match=message):
        if side == "oracle":
            getattr(oracle, name)(x, **arrays, **options)
        else:
            getattr(rt, name)(
                torch.from_numpy(x), **{k: torch.from_numpy(v) for k, v in arrays.items()}, **options
            )


def _gradients(side: str, name: str, x: np.ndarray, params: dict[str, Any], **options: Any) -> dict[str, Any]:
    if side == "oracle":
        out: dict[str, Any] = getattr(oracle, name)(x, **params, **options)
        return out
    tensors = {k: torch.from_numpy(v) for k, v in params.items()}
    return {k: v.numpy() for k, v in getattr(rt, name)(torch.from_numpy(x), **tensors, **options).items()}


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("jumprelu_loss_gradients", {"l0_coefficient": 0.7, "bandwidth": 0.5}),
        ("jumprelu_tanh_loss_gradients", {"l0_coefficient": 0.7, "bandwidth": 0.5, "tanh_scale": 4.0}),
    ],
)
def test_passing_the_estimate_to_the_input_adds_minus_the_threshold_gradient_to_b_enc(
    side: str, name: str, options: dict[str, Any]
) -> None:
    """JUMP-14, JUMP-15: the thresholds' gradient is the same under both; `also_input` adds to ∂L/∂b_enc
    exactly −∂L/∂θ (each example's estimate at z is minus its part of θ's), and nothing to W_dec."""
    x, params, theta = _case(2)
    arrays = {**params, "theta": theta}
    only = _gradients(side, name, x, arrays, **options, ste="threshold_only")
    also = _gradients(side, name, x, arrays, **options, ste="also_input")
    assert np.array_equal(also["threshold"], only["threshold"])  # the same operations under both
    assert np.array_equal(also["W_dec"], only["W_dec"])
    b = _row_bounds(name, x, arrays, **options, ste="also_input")
    assert _within(also["b_enc"] - only["b_enc"], -only["threshold"], b["b_enc"], b["threshold"])
    assert np.abs(only["threshold"]).max() > 0


def test_the_target_l0_penalty_passes_its_step_estimate_to_the_input_too() -> None:
    """JUMP-15 with EQ-8: the same identity for the target-L0 penalty's gradients."""
    x, params, theta = _case(0)
    options: dict[str, Any] = {"l0_coefficient": 0.7, "bandwidth": 0.5, "target_l0": 2.0}
    only = oracle.jumprelu_target_l0_loss_gradients(x, **params, theta=theta, **options)
    also = oracle.jumprelu_target_l0_loss_gradients(x, **params, theta=theta, **options, ste="also_input")
    case = Case(
        {"x": x, **params, "theta": theta},
        {"conventions": Conventions(), **options, "ste": "also_input"},
        "float64",
    )
    out = {k: np.asarray(v) for k, v in also.items()}
    op = table.get("jumprelu_loss_gradients")
    b = target_l0_bounds(op, case, out, {"target_l0": options["target_l0"]})  # EQ-8's own bounds
    assert b["b_enc"] is not None and b["threshold"] is not None
    assert _within(also["b_enc"] - only["b_enc"], -only["threshold"], b["b_enc"], b["threshold"])
