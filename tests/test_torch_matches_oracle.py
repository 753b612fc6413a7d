"""refsae.torch matches the oracle on every row of the operation table, in every dtype (OPS-1, CHK-1).

The clauses each row checks are listed in the row (`refsae.checking.table.TABLE`); the tolerance is the one
rule of specs/tolerances.md (TOL-1..TOL-7). A `pass` is the whole verdict: `check.compare` raises on
any output element beyond its allowed error, in every example, which the last test pins.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings

from refsae.cases import Case
from refsae.checking import table
from refsae.checking.check import Mismatch, check, compare
from refsae.checking.implementations import TorchImplementation
from refsae.checking.tolerances import UNIT_ROUNDOFF, allowed_error, magnitude_floor

ROWS = [(op, dtype) for op in table.TABLE for dtype in op.dtypes]


@pytest.mark.parametrize(("op", "dtype"), ROWS, ids=[f"{op.name}-{dtype}" for op, dtype in ROWS])
def test_torch_operation_matches_the_oracle_within_the_tolerance_rule(
    op: table.Operation, dtype: str, device: str
) -> None:
    outcome = check(op, TorchImplementation(device), dtype)
    assert outcome.status == "pass", outcome.failure
    wanted = settings().max_examples
    assert outcome.examples >= wanted, (
        f"only {outcome.examples} valid examples of {wanted}: the strategy filters too much"
    )


FAST_ROWS = [(op, dtype) for op in table.TABLE if op.fast is not None for dtype in op.dtypes]


@pytest.mark.parametrize(("op", "dtype"), FAST_ROWS, ids=[f"{op.name}-{dtype}" for op, dtype in FAST_ROWS])
def test_fast_path_matches_the_oracle_on_the_rows_own_cases_and_bounds(
    op: table.Operation, dtype: str, device: str
) -> None:
    """PERF-1: a fast path is held to exactly what its row's reference torch function is held to."""
    outcome = check(op, TorchImplementation(device, fast=True), dtype)
    assert outcome.status == "pass", outcome.failure
    assert outcome.examples >= settings().max_examples


def test_a_pass_means_every_output_element_lies_within_its_allowed_error() -> None:
    """CHK-2, TOL-1: what the rows' `pass` rests on. An output off the oracle's by half its allowed
    error in every element passes with a worst ratio of 1/2, up to float64 rounding: the sum
    `expected + allowed/2` errs by at most u_64·|expected + allowed/2| (relative to the allowed error),
    the difference back is exact (Sterbenz) and the quotient errs by u_64 relative. One element off by
    twice its allowed error fails, and the failure names it."""
    op = table.get("encode")
    rng = np.random.default_rng(0)
    arrays = {
        "x": rng.standard_normal((3, 4)),
        "W_enc": rng.standard_normal((4, 5)),
        "b_enc": np.abs(rng.standard_normal(5)) + 4.0,  # every z > 0: no kink, every f rounded
        "b_dec": rng.standard_normal(4),
    }
    case = Case(
        {k: v.astype(np.float32).astype(np.float64) for k, v in arrays.items()}, {"encode": "tied"}, "float32"
    )
    expected = op.reference(case)
    with magnitude_floor("float32"):
        bound = op.bounds(case, expected)["f"]
    assert bound is not None
    allowed = np.broadcast_to(allowed_error(bound, "float32"), expected["f"].shape)
    assert np.all(expected["f"] > 0) and np.all(allowed > 0)
    half_way = expected["f"] + allowed / 2
    ratio, where = compare(op, case, expected, {"f": half_way})
    slack = UNIT_ROUNDOFF["float64"] * (float(np.max(np.abs(half_way) / allowed)) + 1)
    assert abs(ratio - 0.5) <= slack, where
    beyond = expected["f"].copy()
    beyond[1, 2] += 2 * allowed[1, 2]
    with pytest.raises(Mismatch, match=r"encode \[float32\] differs from the oracle at f\[1, 2\]"):
        compare(op, case, expected, {"f": beyond})
