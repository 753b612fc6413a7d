"""The Gated SAE beyond the table rows (GATE-1..GATE-8): the shared matrix, the strict gate, which
term trains which parameter, central differences, bad input. The checker's power on the rows: the
registry's mutants (`refsae.conform.mutants`), run by `tests/test_checker_power.py`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from refsae import oracle
from refsae import torch as rt
from refsae.checking.rows.gated import gated_loss_gradients_bound, gated_pre_activations_bound
from refsae.checking.tolerances import allowed_error
from refsae.conventions import Conventions

NAMES = ("W_enc", "b_gate", "r_mag", "b_mag", "W_dec", "b_dec")


def _case(seed: int, batch: int = 6, d_in: int = 3, d_sae: int = 5) -> tuple[np.ndarray, dict[str, Any]]:
    """A small case whose π_gate and π_mag are all at least 0.05 away from 0 (redrawn until so)."""
    rng = np.random.default_rng(seed)
    while True:
        x = rng.standard_normal((batch, d_in))
        p: dict[str, Any] = {
            "W_enc": rng.standard_normal((d_in, d_sae)) * 0.7,
            "b_gate": rng.standard_normal(d_sae) * 0.3,
            "r_mag": rng.standard_normal(d_sae) * 0.5,
            "b_mag": rng.standard_normal(d_sae) * 0.3,
            "W_dec": rng.standard_normal((d_sae, d_in)) * 0.6,
            "b_dec": rng.standard_normal(d_in) * 0.2,
        }
        pi_gate, pi_mag = oracle.gated_pre_activations(
            x, p["W_enc"], p["b_gate"], p["r_mag"], p["b_mag"], p["b_dec"]
        )
        if min(np.abs(pi_gate).min(), np.abs(pi_mag).min()) > 0.05 and (pi_gate > 0).any():
            return x, p


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)


def test_the_magnitude_path_is_the_shared_matrix_rescaled_per_latent() -> None:
    """GATE-1: π_mag equals u (W_enc ⊙ exp(r_mag)) + b_mag computed with a separate matrix, and
    π_gate uses W_enc itself; torch agrees."""
    x, p = _case(0)
    pi_gate, pi_mag = oracle.gated_pre_activations(
        x, p["W_enc"], p["b_gate"], p["r_mag"], p["b_mag"], p["b_dec"]
    )
    u = x - p["b_dec"]
    # allowed: the rows' own bounds (refsae/checking/rows/gated.py), in float64 (TOL-1, TOL-5)
    b_gate, b_mag, _, _ = gated_pre_activations_bound(
        x, p["W_enc"], p["b_gate"], p["r_mag"], p["b_mag"], p["b_dec"], "tied"
    )
    gate_allowed, mag_allowed = allowed_error(b_gate, "float64"), allowed_error(b_mag, "float64")
    assert np.all(np.abs(pi_mag - (u @ (p["W_enc"] * np.exp(p["r_mag"])) + p["b_mag"])) <= mag_allowed)
    assert np.all(np.abs(pi_gate - (u @ p["W_enc"] + p["b_gate"])) <= gate_allowed)
    t = {k: _t(v) for k, v in p.items()}
    _, tm = rt.gated_pre_activations(_t(x), t["W_enc"], t["b_gate"], t["r_mag"], t["b_mag"], t["b_dec"])
    assert np.all(np.abs(tm.numpy() - pi_mag) <= mag_allowed)


@pytest.mark.parametrize("side", ["oracle", "torch"])
def test_a_gate_exactly_at_zero_is_closed(side: str) -> None:
    """GATE-2: π_gate = 0 closes the gate even though π_mag > 0; f is ReLU(π_mag) behind an open gate."""
    x, W = np.array([[1.0, 2.0]]), np.eye(2)
    args = (x, W, np.array([-1.0, 0.5]), np.zeros(2), np.array([1.0, -3.0]), np.zeros(2))
    if side == "oracle":
        f, pi_gate = oracle.gated_encode(*args, encode="untied")
    else:
        ft, gt = rt.gated_encode(*(_t(a) for a in args), encode="untied")
        f, pi_gate = ft.numpy(), gt.numpy()
    assert pi_gate.tolist() == [[0.0, 2.5]]
    assert f.tolist() == [[0.0, 0.0]]  # latent 0: gate at 0; latent 1: gate open, π_mag = −1


CONVENTIONS = [
    Conventions(),
    Conventions(encode="untied", reconstruction="mean", sparsity="l1_decoder_norm"),
    Conventions(decoder="normalised", reconstruction="fvu", sparsity="l1_decoder_norm"),
]


@pytest.mark.parametrize("aux_decoder", ["detached", "attached"])
@pytest.mark.parametrize("c", CONVENTIONS, ids=lambda c: c.label())
def test_gated_gradients_match_central_differences(c: Conventions, aux_decoder: str) -> None:
    """GATE-6: the oracle's hand-derived gradient of every parameter entry matches the central
    difference of `gated_total_loss` (step 1e-6, to 1e-6 relative); under `attached` the auxiliary
    term's decoder gradient is included (a finite difference cannot detach, so `detached` is checked
    on the gate path only: the decoder's difference includes the auxiliary term)."""
    x, p = _case(1)
    kw: dict[str, Any] = {"l1_coefficient": 0.3, "conventions": c, "aux_decoder": aux_decoder}
    grads = oracle.gated_loss_gradients(x, **p, **kw)
    h = 1e-6
    names = NAMES if aux_decoder == "attached" else NAMES[:4]
    for name in names:
        for index in np.ndindex(p[name].shape):
            plus: dict[str, Any] = {n: v.copy() for n, v in p.items()}
            minus: dict[str, Any] = {n: v.copy() for n, v in p.items()}
            plus[name][index] += h
            minus[name][index] -= h
            fd = (
                float(oracle.gated_total_loss(x, **plus, **kw))
                - float(oracle.gated_total_loss(x, **minus, **kw))
            ) / (2 * h)
            assert abs(fd - grads[name][index]) <= 1e-6 * max(1.0, abs(fd)), f"{name}{index}"


def _grad(loss: torch.Tensor, leaf: torch.Tensor) -> np.ndarray:
    (g,) = torch.autograd.grad(loss, [leaf], allow_unused=True, retain_graph=True)
    return np.zeros(leaf.shape) if g is None else g.numpy()


@pytest.mark.parametrize("seed", range(3))
def test_each_term_trains_only_its_own_path(seed: int) -> None:
    """GATE-4, GATE-5: the decoder's gradient (detached, untied) is that of the main reconstruction
    alone; the magnitude path's (r_mag, b_mag) too; the gate bias's is that of λ·S + the auxiliary
    reconstruction alone: the step passes nothing from the main reconstruction to the gate."""
    x, p = _case(10 + seed)
    c = Conventions(encode="untied", sparsity="l1_decoder_norm")
    grads = oracle.gated_loss_gradients(x, **p, l1_coefficient=0.4, conventions=c)
    t = {k: _t(v).requires_grad_(True) for k, v in p.items()}
    pi_gate, pi_mag = rt.gated_pre_activations(
        _t(x), t["W_enc"], t["b_gate"], t["r_mag"], t["b_mag"], t["b_dec"], encode="untied"
    )
    f = (pi_gate > 0).double() * torch.relu(pi_mag)
    main = rt.reconstruction_loss(_t(x), rt.decode(f, t["W_dec"], t["b_dec"])).sum()
    a = torch.relu(pi_gate)
    gate_terms = 0.4 * rt.sparsity_loss(a, t["W_dec"].detach(), sparsity="l1_decoder_norm").sum()
    gate_terms = (
        gate_terms
        + rt.reconstruction_loss(_t(x), rt.decode(a, t["W_dec"].detach(), t["b_dec"].detach())).sum()
    )
    params = tuple(p[n] for n in NAMES)
    bound = gated_loss_gradients_bound(x, params, 0.4, c, "detached")  # the row's bounds (GATE-8)
    for name in ("b_dec", "r_mag", "b_mag"):
        allowed = allowed_error(bound[name], "float64")
        assert np.all(np.abs(grads[name] - _grad(main, t[name])) <= allowed), name
    allowed = allowed_error(bound["b_gate"], "float64")
    assert np.all(np.abs(grads["b_gate"] - _grad(gate_terms, t["b_gate"])) <= allowed)
    assert np.abs(grads["b_gate"]).max() > 0 and np.abs(grads["b_mag"]).max() > 0


@pytest.mark.parametrize("side", ["oracle", "torch"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"l1_coefficient": -1.0}, "l1_coefficient must be a finite number >= 0"),
        ({"l1_coefficient": float("nan")}, "l1_coefficient must be a finite number >= 0"),
        ({"aux_decoder": "frozen"}, "aux_decoder"),
    ],
    ids=["lambda-negative", "lambda-nan", "aux-decoder-unknown"],
)
def test_bad_coefficients_and_aux_decoder_names_raise(
    side: str, change: dict[str, Any], message: str
) -> None:
    """GATE-7 (beartype rejects an unknown `Literal` first, with the same names in its message)."""
    import jaxtyping

    x, p = _case(2)
    kwargs: dict[str, Any] = {"l1_coefficient": 0.1, "aux_decoder": "detached", **change}
    with pytest.raises((ValueError, jaxtyping.TypeCheckError), match=message):
        if side == "oracle":
            oracle.gated_loss_gradients(x, **p, **kwargs)
        else:
            tensors: dict[str, Any] = {k: _t(v) for k, v in p.items()}
            rt.gated_loss_gradients(_t(x), **tensors, **kwargs)
