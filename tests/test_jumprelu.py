"""JumpReLU beyond the table rows (JUMP-1..JUMP-8): the pseudo-derivatives against what they are
derived from, the log parametrisation against autograd, bad input. The checker's power on the rows:
the registry's mutants (`refsae.conform.mutants`), run by `tests/test_checker_power.py`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from refsae import oracle
from refsae import torch as rt
from refsae.conventions import Conventions


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


def test_a_pre_activation_equal_to_its_threshold_is_not_active() -> None:
    """JUMP-1: the step is strict, on both sides."""
    z, theta = np.array([[1.0, 1.0 + 2**-20, 1.0 - 2**-20]]), np.ones(3)
    assert oracle.jumprelu(z, theta).tolist() == [[0.0, 1.0 + 2**-20, 0.0]]
    assert rt.jumprelu(torch.from_numpy(z), torch.from_numpy(theta)).tolist() == [[0.0, 1.0 + 2**-20, 0.0]]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("side", ["oracle", "torch"])
def test_the_l0_pseudo_gradient_is_the_derivative_of_the_smoothed_step(seed: int, side: str) -> None:
    """JUMP-4: with W_dec = 0 (no reconstruction gradient reaches θ), ∂L/∂θ equals the central
    difference of λ/B Σ_b clamp((z − θ)/ε + 1/2, 0, 1), the step smoothed over the window."""
    x, params, theta = _case(seed)
    params["W_dec"] = np.zeros_like(params["W_dec"])
    lam, eps = 0.7, 0.5
    z = oracle.pre_activations(x, params["W_enc"], params["b_enc"], params["b_dec"])
    assert (np.abs(np.abs(z - theta) - eps / 2) > 1e-3).all()  # no example on a window's edge

    def smoothed(t: np.ndarray) -> float:
        return float(lam / x.shape[0] * np.clip((z - t) / eps + 0.5, 0.0, 1.0).sum())

    h = 1e-7
    expected = np.array([(smoothed(theta + h * e) - smoothed(theta - h * e)) / (2 * h) for e in np.eye(5)])
    if side == "oracle":
        got = oracle.jumprelu_loss_gradients(x, **params, theta=theta, l0_coefficient=lam, bandwidth=eps)[
            "threshold"
        ]
    else:
        t: dict[str, Any] = {k: torch.from_numpy(v) for k, v in params.items()}
        got = rt.jumprelu_loss_gradients(
            torch.from_numpy(x), **t, theta=torch.from_numpy(theta), l0_coefficient=lam, bandwidth=eps
        )["threshold"].numpy()
    assert np.abs(got - expected).max() <= 1e-6
    assert (expected != 0).any()


@pytest.mark.parametrize("seed", range(3))
def test_the_activation_pseudo_gradient_is_minus_theta_over_eps_times_the_gradient_of_f_in_the_window(
    seed: int,
) -> None:
    """JUMP-3, JUMP-6: with λ = 0, ∂L/∂θ_j = −(θ_j/ε) Σ_{b: |z_bj − θ_j| < ε/2} ∂L/∂f_bj, where ∂L/∂f is
    taken independently by torch autograd of the reconstruction loss in the latents f."""
    x, params, theta = _case(seed)
    eps = 0.5
    z = oracle.pre_activations(x, params["W_enc"], params["b_enc"], params["b_dec"])
    f = torch.from_numpy(oracle.jumprelu(z, theta)).requires_grad_(True)
    x_hat = rt.decode(f, torch.from_numpy(params["W_dec"]), torch.from_numpy(params["b_dec"]))
    rt.reconstruction_loss(torch.from_numpy(x), x_hat).sum().backward()
    assert f.grad is not None
    window = np.abs(z - theta) < eps / 2
    expected = -(theta / eps) * (f.grad.numpy() * window).sum(axis=0)
    got = oracle.jumprelu_loss_gradients(x, **params, theta=theta, l0_coefficient=0.0, bandwidth=eps)
    assert np.abs(got["threshold"] - expected).max() <= 1e-12 * max(1.0, float(np.abs(expected).max()))
    assert window.any()


def test_the_log_parametrisation_gradient_is_autograd_through_exp() -> None:
    """JUMP-5: `parametrisation="log_theta"` returns θ ∂L/∂θ, which is what autograd gives for a
    stored ℓ = log θ with θ = exp(ℓ) inside the loss."""
    x, params, theta = _case(7)
    t: dict[str, Any] = {k: torch.from_numpy(v) for k, v in params.items()}
    log_theta = torch.from_numpy(np.log(theta)).requires_grad_(True)
    loss = rt.jumprelu_total_loss(
        torch.from_numpy(x),
        **t,
        theta=log_theta.exp(),
        l0_coefficient=0.3,
        bandwidth=0.5,
        conventions=Conventions(reconstruction="mean"),
    )
    (expected,) = torch.autograd.grad(loss, [log_theta])
    got = oracle.jumprelu_loss_gradients(
        x,
        **params,
        theta=np.exp(np.log(theta)),
        l0_coefficient=0.3,
        bandwidth=0.5,
        conventions=Conventions(reconstruction="mean"),
        parametrisation="log_theta",
    )["threshold"]
    assert np.abs(got - expected.numpy()).max() <= 1e-12 * max(1.0, float(np.abs(got).max()))


@pytest.mark.parametrize("side", ["oracle", "torch"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"theta": np.array([1.0, 0.0, 1.0, 1.0, 1.0])}, "theta must be > 0"),
        ({"theta": np.array([1.0, -1.0, 1.0, 1.0, 1.0])}, "theta must be > 0"),
        ({"bandwidth": 0.0}, "bandwidth must be a finite number > 0"),
        ({"bandwidth": float("nan")}, "bandwidth must be a finite number > 0"),
        ({"l0_coefficient": -1.0}, "l0_coefficient must be a finite number >= 0"),
    ],
    ids=["theta-zero", "theta-negative", "bandwidth-zero", "bandwidth-nan", "l0-negative"],
)
def test_bad_thresholds_bandwidths_and_coefficients_raise_value_error(
    side: str, change: dict[str, Any], message: str
) -> None:
    """JUMP-7."""
    x, params, theta = _case(0)
    kwargs: dict[str, Any] = {"theta": theta, "l0_coefficient": 0.1, "bandwidth": 0.5, **change}
    with pytest.raises(ValueError, match=message):
        if side == "oracle":
            oracle.jumprelu_loss_gradients(x, **params, **kwargs)
        else:
            t: dict[str, Any] = {k: torch.from_numpy(v) for k, v in params.items()}
            kwargs["theta"] = torch.from_numpy(kwargs["theta"])
            rt.jumprelu_loss_gradients(torch.from_numpy(x), **t, **kwargs)
