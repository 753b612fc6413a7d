"""The oracle's analytic gradients agree with finite differences of its own total loss (GRAD-1..GRAD-6).

Step sizes stay far inside the kink margin of the strategy, so the loss is smooth along every probe.
The allowed discrepancy is derived, not tuned: the loss's float64 rounding error ε_L (from the
tolerance rule) divided by the step, plus Richardson's estimate |D(h) − D(h/2)| of the truncation
error of the central difference D(h/2).
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from refsae import oracle
from refsae.checking import bounds
from refsae.checking.tolerances import allowed_error, magnitude_floor
from refsae.conventions import Conventions
from tests.strategies_local import SAECase, all_conventions, float64_sae

PARAMS = ("W_enc", "b_enc", "W_dec", "b_dec")
MARGIN = 1e-3


def _loss(x: np.ndarray, params: dict[str, np.ndarray], lam: float, c: Conventions) -> float:
    return float(oracle.total_loss(x, **params, l1_coefficient=lam, conventions=c))


def _loss_rounding(x: np.ndarray, params: dict[str, np.ndarray], lam: float, c: Conventions) -> float:
    _, x_hat = oracle.forward(x, **params, encode=c.encode, decoder=c.decoder, eps=c.eps)
    with magnitude_floor("float64"):
        b = bounds.total_loss(
            x, params["W_enc"], params["b_enc"], params["W_dec"], params["b_dec"], x_hat, lam, c
        )
    return float(allowed_error(b, "float64"))


def _step(params: dict[str, np.ndarray], x: np.ndarray) -> float:
    """h such that h · |∂z/∂θ| stays far below the kink margin MARGIN."""
    sensitivity = 1 + np.abs(x).max() + max(float(np.abs(p).max()) for p in params.values())
    return 1e-3 * MARGIN / float(sensitivity)


def _directional(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    direction: dict[str, np.ndarray],
    h: float,
    lam: float,
    c: Conventions,
) -> float:
    plus = {k: v + h * direction[k] for k, v in params.items()}
    minus = {k: v - h * direction[k] for k, v in params.items()}
    return (_loss(x, plus, lam, c) - _loss(x, minus, lam, c)) / (2 * h)


def _agrees(
    analytic: float,
    x: np.ndarray,
    params: dict[str, np.ndarray],
    direction: dict[str, np.ndarray],
    lam: float,
    c: Conventions,
) -> tuple[bool, str]:
    h = _step(params, x)
    d_h, d_half = (_directional(x, params, direction, s, lam, c) for s in (h, h / 2))
    eps_loss = _loss_rounding(x, params, lam, c)
    allowed = 2 * eps_loss / h + abs(d_h - d_half)
    return abs(analytic - d_half) <= allowed, f"analytic {analytic!r}, FD {d_half!r}, allowed {allowed:.3g}"


@given(
    float64_sae(max_dim=4, max_batch=4, min_batch=2, margin=MARGIN),
    all_conventions(),
    st.sampled_from((0.0, 0.25, 3.0)),
)
def test_each_gradient_entry_matches_a_central_finite_difference(
    case: SAECase, c: Conventions, lam: float
) -> None:
    """GRAD-1..GRAD-6, entry by entry, every convention combination."""
    _, x, params = case
    assume(c.reconstruction != "fvu" or float(np.min(oracle.total_variance(x))) > 0)
    grads = oracle.loss_gradients(x, **params, l1_coefficient=lam, conventions=c).as_dict()
    for name in PARAMS:
        assert grads[name].shape == params[name].shape
        for index in np.ndindex(params[name].shape):
            direction = {k: np.zeros_like(v) for k, v in params.items()}
            direction[name][index] = 1.0
            ok, msg = _agrees(float(grads[name][index]), x, params, direction, lam, c)
            assert ok, f"∂L/∂{name}{list(index)} under {c.label()}: {msg}"


@given(
    float64_sae(max_dim=16, max_batch=16, min_batch=2, margin=MARGIN),
    all_conventions(),
    st.sampled_from((0.0, 0.5)),
    st.integers(0, 2**32 - 1),
)
def test_gradient_dotted_with_a_random_direction_matches_the_directional_derivative(
    case: SAECase, c: Conventions, lam: float, seed: int
) -> None:
    """The VJP check: ⟨∇L, v⟩ = d/dt L(θ + t v) for a random v over all four parameters (GRAD-1)."""
    _, x, params = case
    assume(c.reconstruction != "fvu" or float(np.min(oracle.total_variance(x))) > 0)
    rng = np.random.default_rng(seed)
    direction = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    grads = oracle.loss_gradients(x, **params, l1_coefficient=lam, conventions=c).as_dict()
    analytic = sum(float(np.sum(grads[k] * direction[k])) for k in PARAMS)
    ok, msg = _agrees(analytic, x, params, direction, lam, c)
    assert ok, f"{c.label()}: {msg}"


def test_relu_derivative_at_exactly_zero_is_zero() -> None:
    """GRAD-3: a pre-activation exactly 0 passes no gradient to W_enc or b_enc."""
    x = np.array([[1.0, 0.0]])
    W_enc = np.array([[1.0], [0.0]])
    b_enc = np.array([-1.0])  # z = 1·1 − 1 = 0 exactly
    W_dec = np.array([[1.0, 0.0]])
    b_dec = np.zeros(2)
    g = oracle.loss_gradients(
        x, W_enc, b_enc, W_dec, b_dec, l1_coefficient=1.0, conventions=Conventions(encode="untied")
    )
    assert g.b_enc.tolist() == [0.0] and g.W_enc.tolist() == [[0.0], [0.0]]


def test_normalised_decoder_gradient_at_a_zero_row_is_the_incoming_gradient_over_eps() -> None:
    """GRAD-5: where ‖W_dec_j‖ = 0, ∂L/∂W_dec_j = Ĝ_j / eps (the radial term vanishes)."""
    x = np.array([[1.0, 2.0]])
    W_enc = np.array([[1.0], [1.0]])
    b_enc = np.array([0.5])
    W_dec = np.zeros((1, 2))
    b_dec = np.zeros(2)
    c = Conventions(encode="untied", decoder="normalised", eps=0.5)
    g = oracle.loss_gradients(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient=0.0, conventions=c)
    f = oracle.encode(x, W_enc, b_enc, b_dec, encode="untied")
    g_xhat = 2.0 * (0.0 + b_dec - x)  # x_hat = b_dec because Ŵ = 0
    np.testing.assert_array_equal(g.W_dec, (f.T @ g_xhat) / c.eps)
