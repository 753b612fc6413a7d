"""The public strategies do what they promise (STR-1..STR-10)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from refsae.cases import Case
from refsae.checking import bounds, profiles, table
from refsae.checking import strategies as rs
from refsae.checking.cases import variance_is_certain
from refsae.checking.check import check
from refsae.checking.implementations import TorchImplementation
from refsae.checking.rows.losses import loss_cases
from refsae.checking.rows.metrics import explained_variance_cases
from refsae.checking.tolerances import DTYPES, allowed_error


@given(st.sampled_from(DTYPES), st.data())
def test_arrays_hold_values_exactly_representable_in_their_dtype(dtype: str, data: st.DataObject) -> None:
    """STR-1: rounding again into the dtype changes nothing."""
    shape = data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple))
    a = data.draw(rs.arrays(shape, dtype, data.draw(rs.scales(dtype))))
    assert a.dtype == np.float64 and a.shape == shape
    np.testing.assert_array_equal(rs.round_to(a, dtype), a)
    assert np.all(np.isfinite(a))


@given(st.sampled_from(DTYPES), st.data())
def test_hypothesis_torch_tensors_come_with_every_degree_of_freedom_pinned(
    dtype: str, data: st.DataObject
) -> None:
    """STR-2: cpu, strided, no grad, contiguous; finite elements within the bound."""
    t = data.draw(rs.torch_tensors(dtype, (3, 4), bound=2.0))
    assert t.device.type == "cpu" and t.layout == torch.strided and not t.requires_grad
    assert t.is_contiguous() and t.dtype == rs.TORCH_DTYPES[dtype]
    assert bool(torch.isfinite(t).all()) and float(t.abs().max()) <= 2.0


@given(rs.shapes())
def test_shapes_stay_within_their_bounds(shape: rs.Shape) -> None:
    """STR-5."""
    assert 1 <= shape.batch <= 64 and 1 <= shape.d_in <= 64 and 1 <= shape.d_sae <= 64
    assert shape.n_inst is None or 1 <= shape.n_inst <= 3


@given(st.sampled_from(DTYPES), st.data())
def test_decoder_rows_are_never_degenerate(dtype: str, data: st.DataObject) -> None:
    """STR-6."""
    shape = data.draw(rs.shapes(max_dim=16))
    params = data.draw(rs.sae_params(shape, dtype))
    assert np.all(np.linalg.norm(params["W_dec"], axis=-1) > 0)


@given(st.sampled_from(DTYPES), st.data())
def test_gradient_cases_keep_every_pre_activation_beyond_its_margin(dtype: str, data: st.DataObject) -> None:
    """STR-7, TOL-6: |z| exceeds twice the allowed error of z, so the ReLU mask is certain."""
    case = data.draw(loss_cases(dtype, kink_margin=True))
    a, c = case.arrays, case.options["conventions"]
    u = a["x"] - a["b_dec"] if c.encode == "tied" else a["x"]
    z = np.einsum("b...i,...ij->b...j", u, a["W_enc"]) + a["b_enc"]
    z_bound = bounds.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], c.encode)
    assert np.all(np.abs(z) > 2 * allowed_error(z_bound, dtype))


def test_kink_margin_moves_b_enc_out_of_every_forbidden_interval() -> None:
    """STR-7 on a hand-made column: z0 = (−1, 0.05, 1), margin 0.1, b_enc 0 ⇒ −0.15 or 0.15 is nearest."""
    z0 = np.array([[-1.0], [0.05], [1.0]])
    moved = rs.kink_margin_b_enc(z0, np.array([0.0]), np.full_like(z0, 0.1), "float64")
    assert np.all(np.abs(z0 + moved) >= 0.1 - 1e-15)
    assert abs(float(moved[0])) <= 0.15 + 1e-15


@given(st.sampled_from(DTYPES), st.data())
def test_fvu_cases_have_a_variance_certainly_above_zero(dtype: str, data: st.DataObject) -> None:
    """STR-8."""
    case = data.draw(explained_variance_cases(dtype))
    assert variance_is_certain(case.arrays["x"], dtype)


def _mean_spread_energy(x: np.ndarray) -> tuple[float, float, float]:
    """Of one instance's batch (batch, d_in): ‖mean‖ / median ‖x_b − mean‖, the share of the centred
    batch's energy in its top 4 singular directions, and max / median ‖x_b − mean‖."""
    mean = x.mean(axis=0)
    deviation = np.linalg.norm(x - mean, axis=-1)
    energy = np.linalg.svd(x - mean, compute_uv=False) ** 2
    median = float(np.median(deviation))
    return (
        float(np.linalg.norm(mean)) / median,
        float(energy[:4].sum() / energy.sum()),
        float(deviation.max()) / median,
    )


REALISTIC_SHAPES = rs.shapes(min_batch=16).filter(lambda s: s.d_in >= 8)


@given(st.sampled_from(DTYPES), st.data())
def test_realistic_activations_have_a_dominant_shared_mean_and_few_directions(
    dtype: str, data: st.DataObject
) -> None:
    """STR-9: every instance's batch has a mean larger than its typical deviation from it (2, 8 or 32
    times, nominally) and, centred, lies almost entirely in at most 4 directions; STR-1 holds."""
    shape = data.draw(REALISTIC_SHAPES)
    x = data.draw(rs.activations(shape, dtype, data.draw(rs.scales(dtype))))
    assert x.shape == (shape.batch, *shape.inst, shape.d_in) and np.all(np.isfinite(x))
    np.testing.assert_array_equal(rs.round_to(x, dtype), x)
    for index in np.ndindex(shape.inst):
        ratio, energy, _ = _mean_spread_energy(x[(slice(None), *index)])
        assert ratio > 1.0 and energy > 0.95, (ratio, energy)


def test_inputs_are_realistic_activations_a_fair_share_of_the_time_with_heavy_tails() -> None:
    """STR-5, STR-9: about a third of the input batches are realistic (low rank once centred, which
    an iid batch of 8 or more dimensions never is), and a fair share of those have an outlier: an
    example at least 6 times the median distance from the mean (Student-t codes)."""
    seen: list[tuple[float, float, float]] = []

    @settings(max_examples=150, derandomize=True, database=None, deadline=None)
    @given(st.sampled_from(DTYPES), st.data())
    def draw(dtype: str, data: st.DataObject) -> None:
        shape = data.draw(REALISTIC_SHAPES)
        x = data.draw(rs.inputs(shape, dtype))
        seen.append(_mean_spread_energy(x.reshape(shape.batch, -1, shape.d_in)[:, 0]))

    draw()
    realistic = [s for s in seen if s[1] > 0.95 and s[0] > 1.0]
    assert 0.15 < len(realistic) / len(seen) < 0.6, (len(realistic), len(seen))
    assert sum(s[2] > 6 for s in realistic) >= len(realistic) / 10


def test_zero_is_a_minority_of_the_sparsity_coefficients() -> None:
    """STR-10: λ = 0 is drawn, but rarely enough that the sparsity term is in most cases."""
    drawn: list[float] = []

    @settings(max_examples=200, derandomize=True, database=None)
    @given(rs.l1_coefficients(), st.integers(0, 2**20))
    def draw(lam: float, _: int) -> None:
        drawn.append(lam)

    draw()
    assert 0 < drawn.count(0.0) < len(drawn) / 4
    assert all(lam == 0.0 or (float(np.log2(lam)).is_integer() and -10 <= np.log2(lam) <= 2) for lam in drawn)


def test_case_reproduction_is_runnable_python_that_rebuilds_the_arrays() -> None:
    """CHK-2: the reproduction snippet is copy-pasteable."""
    case = Case(
        {"x": np.array([[0.1, -2.5e-7]]), "fire_counts": np.array([0, 3])}, {"encode": "tied"}, "bfloat16"
    )
    namespace: dict[str, object] = {}
    exec(case.reproduction(), namespace)
    np.testing.assert_array_equal(namespace["x"], case.arrays["x"])
    np.testing.assert_array_equal(namespace["fire_counts"], case.arrays["fire_counts"])
    assert namespace["options"] == {"encode": "tied"} and namespace["dtype"] == "bfloat16"


@given(st.sampled_from(("normal", "uniform", "heavy", "sparse", "grid")), st.integers(0, 2**32 - 1))
def test_seeded_arrays_are_reproducible_from_their_seed(distribution: str, seed: int) -> None:
    """STR-3: the same seed and distribution give the same array; `grid` values are multiples of 1/4."""
    a = rs._seeded(np.random.default_rng(seed), (4, 5), distribution)
    b = rs._seeded(np.random.default_rng(seed), (4, 5), distribution)
    np.testing.assert_array_equal(a, b)
    if distribution == "grid":
        np.testing.assert_array_equal(a * 4, np.round(a * 4))


@given(st.sampled_from(DTYPES), st.data())
def test_scales_and_cases_respect_the_dtype_magnitude_bounds(dtype: str, data: st.DataObject) -> None:
    """STR-4: scales are powers of two in the dtype's range; loss cases never near overflow."""
    s = data.draw(rs.scales(dtype))
    lo, hi = rs.SCALE_EXPONENTS[dtype]
    assert 2.0**lo <= s <= 2.0**hi and float(np.log2(s)).is_integer()
    case = data.draw(loss_cases(dtype))
    from refsae.checking.tolerances import LARGEST

    assert max(float(np.abs(a).max()) for a in case.arrays.values()) < LARGEST[dtype] / 16


def test_the_checker_draws_the_same_cases_whatever_local_modules_are_imported(tmp_path: Path) -> None:
    """NOT-8: hypothesis draws now and then from the literals of local modules; the checker does
    not, so importing a module full of literals changes none of its cases."""
    op = table.get("encode")

    class Spy(TorchImplementation):
        def __init__(self) -> None:
            super().__init__()
            self.cases: list[bytes] = []

        def run(self, operation: str, case: Case) -> dict[str, np.ndarray]:
            self.cases.append(b"".join(np.ascontiguousarray(a).tobytes() for a in case.arrays.values()))
            return super().run(operation, case)

    def drawn() -> list[bytes]:
        spy = Spy()
        outcome = check(op, spy, "float32", profile=profiles.get("ci"), max_examples=60)
        assert outcome.status == "pass"
        return spy.cases

    before = drawn()
    literals = ", ".join(f"{v!r}" for v in (0.0625, 3.0, -7.5, 1e-5, 2.5e3, 12, 5, 33, 0.3))
    (tmp_path / "local_literals_for_refsae.py").write_text(f"VALUES = ({literals})\n")
    sys.path.insert(0, str(tmp_path))
    try:
        importlib.import_module("local_literals_for_refsae")
        after = drawn()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("local_literals_for_refsae", None)
    assert before == after


def test_without_the_isolation_a_local_module_changes_the_drawn_cases(tmp_path: Path) -> None:
    """The previous test can fail: hypothesis (from 6.131, whose providers have `_get_local_constants`)
    reads the literals of a newly imported local module (its sometimes-drawn constants), so the same
    draws without `without_local_constants` differ once such a module is imported. An older release
    (6.100, the oldest supported: `nox -s oldest`) has no such pool and draws the same."""
    import importlib.util

    spec = importlib.util.find_spec("hypothesis.internal.conjecture.providers")
    pool = spec is not None and hasattr(importlib.import_module(spec.name), "_get_local_constants")
    strategy = st.lists(st.floats(-1e4, 1e4), min_size=30, max_size=30)

    def drawn() -> list[list[float]]:
        out: list[list[float]] = []

        @settings(derandomize=True, database=None, max_examples=80)
        @given(strategy)
        def collect(values: list[float]) -> None:
            out.append(values)

        collect()
        return out

    before = drawn()
    literals = ", ".join(f"{v!r}" for v in (1234.5, -987.25, 4321.0625, 77.125, -55.5, 999.75))
    (tmp_path / "more_local_literals_for_refsae.py").write_text(f"VALUES = ({literals})\n")
    sys.path.insert(0, str(tmp_path))
    try:
        importlib.import_module("more_local_literals_for_refsae")
        after = drawn()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("more_local_literals_for_refsae", None)
    literal_drawn = any(
        v in {1234.5, -987.25, 4321.0625, 77.125, -55.5, 999.75} for values in after for v in values
    )
    assert (before != after, literal_drawn) == (pool, pool)


def test_a_draw_out_of_float16_range_is_shrunk_by_a_power_of_two_not_rejected() -> None:
    """STR-4: `shrink_to_range` divides the named arrays by the smallest power of two 2^k that brings
    the squared residual under 1/64 of the largest value (exactly, where 2^−k·v stays a normal number:
    below float16's ν the result rounds to the subnormal grid); a draw already in range comes back as
    it was."""
    from refsae.checking.cases import shrink_to_range
    from refsae.checking.tolerances import LARGEST

    rng = np.random.default_rng(0)
    a = {n: rs.round_to(4 * rng.standard_normal((64, 64)), "float16") for n in ("x", "b_enc", "b_dec")}
    numerator = (2 * np.abs(a["x"])).__pow__(2).sum(axis=(0, -1))  # a residual linear in the three
    assert numerator > LARGEST["float16"] / 64
    shrunk = shrink_to_range(a, numerator, ("x", "b_enc", "b_dec"), "float16")
    k = int(np.log2(np.abs(a["x"]).max() / np.abs(shrunk["x"]).max()))
    normal = 2.0**-14
    for name in a:
        kept = np.abs(a[name]) * 2.0**-k >= normal
        assert kept.mean() > 0.9
        np.testing.assert_array_equal(shrunk[name][kept] * 2.0**k, a[name][kept])  # exactly 2^−k times
        assert np.all(np.abs(shrunk[name][~kept] * 2.0**k - a[name][~kept]) <= 2.0**-25 * 2.0**k)
    assert numerator * 4.0**-k <= LARGEST["float16"] / 64 < numerator * 4.0 ** -(k - 1)  # the smallest k
    assert shrink_to_range(shrunk, numerator * 4.0**-k, ("x",), "float16") is shrunk
