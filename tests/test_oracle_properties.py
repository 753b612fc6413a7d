"""Self-consistency of the oracle: invariants that hold whatever the numbers (NOT-2, LOSS, CON, PAR, MET)."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking import strategies as rs
from refsae.checking import table
from refsae.checking.tolerances import UNIT_ROUNDOFF, allowed_error, gamma, magnitude_floor
from refsae.conventions import Conventions, EncodeConvention, SparsityConvention
from tests.strategies_local import SAECase, all_conventions, float64_sae

# Two float64 evaluations of one quantity that differ only in the order of their (at most 64-term)
# accumulations each err by γ(64, u_64) per unit of magnitude (TOL-1): together by twice that.
ORDER_ONLY = 2 * gamma(64, UNIT_ROUNDOFF["float64"])


def _close(a: np.ndarray, b: np.ndarray, magnitude: np.ndarray | float) -> bool:
    """|a − b| <= ORDER_ONLY · (1 + magnitude), element by element."""
    return bool(np.all(np.abs(np.asarray(a) - np.asarray(b)) <= ORDER_ONLY * (1 + np.asarray(magnitude))))


@given(float64_sae(max_dim=16, max_batch=16), st.sampled_from(("tied", "untied")))
def test_sum_reconstruction_loss_is_d_in_times_the_mean_loss(case: SAECase, encode: EncodeConvention) -> None:
    """LOSS-1, LOSS-2: `sum` = d_in × `mean`."""
    shape, x, p = case
    _, x_hat = oracle.forward(x, **p, encode=encode)
    s = oracle.reconstruction_loss(x, x_hat, reconstruction="sum")
    m = oracle.reconstruction_loss(x, x_hat, reconstruction="mean")
    assert _close(s, shape.d_in * m, np.abs(s))


@given(float64_sae(max_dim=16, max_batch=16), all_conventions())
def test_batched_forward_equals_the_forward_of_each_row(case: SAECase, c: Conventions) -> None:
    """NOT-1, FWD-1: rows of a batch are independent examples."""
    _, x, p = case
    f, x_hat = oracle.forward(x, **p, encode=c.encode, decoder=c.decoder, eps=c.eps)
    for b in range(x.shape[0]):
        fb, xb = oracle.forward(x[b : b + 1], **p, encode=c.encode, decoder=c.decoder, eps=c.eps)
        np.testing.assert_array_equal(fb[0], f[b])
        assert _close(xb[0], x_hat[b], np.abs(x_hat[b]) * 8)


@given(float64_sae(max_dim=16, max_batch=16), st.sampled_from(("l1", "l1_decoder_norm")))
def test_batch_losses_are_the_mean_of_per_row_losses(case: SAECase, sparsity: SparsityConvention) -> None:
    """LOSS-1, LOSS-4, LOSS-5: the batch reductions are means over examples."""
    _, x, p = case
    f, x_hat = oracle.forward(x, **p)
    rows_r = [oracle.reconstruction_loss(x[b : b + 1], x_hat[b : b + 1]) for b in range(x.shape[0])]
    rows_s = [oracle.sparsity_loss(f[b : b + 1], p["W_dec"], sparsity=sparsity) for b in range(x.shape[0])]
    R, S = oracle.reconstruction_loss(x, x_hat), oracle.sparsity_loss(f, p["W_dec"], sparsity=sparsity)
    assert _close(R, np.mean(rows_r, axis=0), np.abs(R) * x.shape[-1])
    assert _close(S, np.mean(rows_s, axis=0), np.abs(S) * f.shape[-1])


@given(
    float64_sae(max_dim=8, max_batch=8, min_batch=2, instance_axis=True, margin=1e-6),
    all_conventions(),
    st.sampled_from((0.0, 0.5)),
)
def test_instances_are_independent_saes(case: SAECase, c: Conventions, lam: float) -> None:
    """NOT-2, LOSS-6: each instance computes as if alone; loss and gradients are per-instance sums."""
    shape, x, p = case
    assume(c.reconstruction != "fvu" or float(np.min(oracle.total_variance(x))) > 0)
    f, x_hat = oracle.forward(x, **p, encode=c.encode, decoder=c.decoder, eps=c.eps)
    total = oracle.total_loss(x, **p, l1_coefficient=lam, conventions=c)
    grads = oracle.loss_gradients(x, **p, l1_coefficient=lam, conventions=c).as_dict()
    losses = []
    assert shape.n_inst is not None
    for i in range(shape.n_inst):
        xi, pi = x[:, i], {k: v[i] for k, v in p.items()}
        fi, xhi = oracle.forward(xi, **pi, encode=c.encode, decoder=c.decoder, eps=c.eps)
        np.testing.assert_array_equal(fi, f[:, i])
        assert _close(xhi, x_hat[:, i], np.abs(xhi) * 8)
        losses.append(float(oracle.total_loss(xi, **pi, l1_coefficient=lam, conventions=c)))
        gi = oracle.loss_gradients(xi, **pi, l1_coefficient=lam, conventions=c).as_dict()
        # each float64 evaluation is within the table's error bound of the exact gradient (TOL-1), so the
        # two are within twice it; the bound is built from the operands' magnitudes, as it must be where
        # an element cancels (normalised decoder: Ĝ_j/(n + eps) − W_j (W_j·Ĝ_j)/…, an element of 6e3 in
        # a row of 6e6 differed by 5.6e-9, beyond a bound built from the result's own magnitude)
        with magnitude_floor("float64"):
            case_i = Case({"x": xi, **pi}, {"l1_coefficient": lam, "conventions": c}, "float64")
            bounds = table.get("loss_gradients").bounds(case_i, gi)
        for k in gi:
            allowed = allowed_error(bounds[k], "float64")  # type: ignore[arg-type]
            assert bool(np.all(np.abs(gi[k] - grads[k][i]) <= 2 * allowed)), k
    assert _close(total, np.asarray(np.sum(losses)), abs(float(total)) * 8)


@given(st.integers(1, 8).flatmap(lambda d: rs.arrays((5, d), "float64", 2.0)))
def test_renormalised_rows_are_unit_and_renormalising_again_changes_nothing(W: np.ndarray) -> None:
    """CON-1 (unit rows, idempotent), CON-2 (a zero row stays zero)."""
    W = W.copy()
    W[0] = 0.0
    once = oracle.renormalise_rows(W)
    norms = np.linalg.norm(once, axis=-1)
    nonzero = np.any(W != 0, axis=-1)  # not the norm: it underflows for a row of 1e-300 (CON-4)
    assert np.all(np.abs(norms[nonzero] - 1) <= 8 * 2.0**-53 * W.shape[-1])
    assert np.all(once[~nonzero] == 0)
    assert _close(oracle.renormalise_rows(once), once, 1.0)


@given(
    st.integers(1, 8).flatmap(
        lambda d: st.tuples(*(rs.arrays((6, d), "float64", s) for s in (1.0, 4.0, 0.5)))
    ),
    st.floats(-3, 3),
    st.floats(-3, 3),
)
def test_parallel_removal_is_orthogonal_idempotent_and_linear(
    arrays: tuple[np.ndarray, ...], a: float, b: float
) -> None:
    """PAR-1 (orthogonal to each row, idempotent, linear), PAR-2 (rows of any norm), PAR-3 (zero rows)."""
    W, g1, g2 = arrays
    W = W.copy()
    W[0] = 0.0
    out = oracle.remove_parallel_component(W, g1)
    scale = (np.abs(W) * np.abs(g1)).sum(axis=-1)
    assert np.all(np.abs((out * W).sum(axis=-1)) <= ORDER_ONLY * 8 * (1 + scale * 4))
    assert _close(oracle.remove_parallel_component(W, out), out, np.abs(g1) * 8)
    combined = oracle.remove_parallel_component(W, a * g1 + b * g2)
    expected = a * out + b * oracle.remove_parallel_component(W, g2)
    assert _close(combined, expected, (abs(a) * np.abs(g1) + abs(b) * np.abs(g2)) * 8)
    np.testing.assert_array_equal(out[0], g1[0])


@given(
    st.integers(2, 8).flatmap(
        lambda d: st.tuples(rs.arrays((5, d), "float64", 1.0), rs.arrays((5, d), "float64", 1.0))
    )
)
def test_parallel_removal_leaves_orthogonal_gradients_unchanged(arrays: tuple[np.ndarray, ...]) -> None:
    """PAR-1: a gradient already orthogonal to every row is a fixed point."""
    W, g = arrays
    W = W + (np.linalg.norm(W, axis=-1, keepdims=True) == 0)  # no zero rows here
    orthogonal = g - ((g * W).sum(-1, keepdims=True) / (W * W).sum(-1, keepdims=True)) * W
    assert _close(oracle.remove_parallel_component(W, orthogonal), orthogonal, np.abs(g) * 8)


def test_general_parallel_removal_differs_from_the_unit_row_shortcut_on_non_unit_rows() -> None:
    """PAR-2: g − (g·w)w is only right for unit rows."""
    W, g = np.array([[2.0, 0.0]]), np.array([[1.0, 1.0]])
    general = oracle.remove_parallel_component(W, g)
    shortcut = g - (g * W).sum(-1, keepdims=True) * W
    assert general.tolist() == [[0.0, 1.0]] and shortcut.tolist() == [[-3.0, 1.0]]


@given(st.integers(2, 16).flatmap(lambda b: rs.arrays((b, 3), "float64", 2.0)))
def test_explained_variance_is_one_for_perfect_and_zero_for_the_batch_mean(x: np.ndarray) -> None:
    """MET-3: EV(x, x) = 1 and EV(x, mean_b x) = 0, per-dimension centring."""
    assume(float(oracle.total_variance(x)) > 0)
    assert float(oracle.explained_variance(x, x)) == 1.0
    mean = np.broadcast_to(x.mean(axis=0, keepdims=True), x.shape).copy()
    assert abs(float(oracle.explained_variance(x, mean))) <= ORDER_ONLY * x.size


def test_explained_variance_centres_each_dimension_by_its_own_mean() -> None:
    """MET-3: a constant offset per dimension is no variance; global centring would say otherwise."""
    x = np.array([[0.0, 10.0], [2.0, 10.0]])
    x_hat = np.array([[1.0, 10.0], [1.0, 10.0]])
    assert float(oracle.explained_variance(x, x_hat)) == 0.0


def test_l0_and_dead_fraction_count_exactly() -> None:
    """MET-1, MET-2."""
    f = np.array([[[0.0, 1.0], [2.0, 3.0]], [[0.0, 0.0], [0.0, 4.0]]])  # (batch 2, inst 2, d_sae 2)
    assert oracle.l0(f).tolist() == [0.5, 1.5]
    assert oracle.dead_fraction(np.array([[0, 5, 0, 0], [1, 1, 1, 0]])).tolist() == [0.75, 0.25]


def test_normalised_decoder_maps_a_zero_row_to_zero() -> None:
    """DEC-4: eps > 0 keeps a zero row finite."""
    W_hat = oracle.decoder_directions(np.zeros((2, 3)), decoder="normalised")
    assert W_hat.tolist() == [[0.0] * 3] * 2


def test_tied_and_untied_encoders_differ_exactly_by_the_b_dec_shift() -> None:
    """ENC-2, ENC-3: z_tied = z_untied − b_dec W_enc."""
    rng = np.random.default_rng(0)
    x, W, b, bd = rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=5), rng.normal(size=3)
    zt = oracle.pre_activations(x, W, b, bd, encode="tied")
    zu = oracle.pre_activations(x, W, b, bd, encode="untied")
    assert _close(zt, zu - bd @ W, 8 * (np.abs(zu) + np.abs(bd) @ np.abs(W)))
    assert np.all(oracle.encode(x, W, b, bd) >= 0)


def test_conventions_reject_unknown_names() -> None:
    """NOT-1: conventions are named; a typo is an error, not a silent default."""
    import pytest

    with pytest.raises(ValueError, match="expected one of sum, mean, fvu"):
        Conventions(reconstruction="summ")  # type: ignore[arg-type]


@given(st.integers(-1070, -100), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_a_tiny_row_is_still_a_direction_for_the_oracle(exponent: int, d_in: int, seed: int) -> None:
    """CON-4: a row of norm 2^-1000 renormalises to a unit row and its parallel component is removed,
    where the raw squares underflow (found by the dev profile: a row of 3.7e-161 kept 3e-4)."""
    rng = np.random.default_rng(seed)
    w = np.ldexp(rng.uniform(0.5, 1.0, size=(1, d_in)) * rng.choice([-1, 1], size=(1, d_in)), exponent)
    unit = oracle.renormalise_rows(w)
    assert _close(np.asarray(np.linalg.norm(unit)), np.asarray(1.0), 1.0)
    g = rng.normal(size=(1, d_in)) + 3 * unit  # a parallel part to remove
    out = oracle.remove_parallel_component(w, g)
    assert _close((out * unit).sum(), np.asarray(0.0), np.abs(g).sum())
