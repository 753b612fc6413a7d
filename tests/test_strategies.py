"""The public strategies do what they promise (STR-1..STR-8)."""

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
    """The previous test can fail: hypothesis does read the literals of a newly imported local
    module (its sometimes-drawn constants), so the same draws without `without_local_constants`
    differ once such a module is imported."""
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
    assert before != after
    assert any(v in {1234.5, -987.25, 4321.0625, 77.125, -55.5, 999.75} for values in after for v in values)
