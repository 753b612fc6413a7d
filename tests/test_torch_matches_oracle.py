"""refsae.torch matches the oracle on every row of the operation table, in every dtype (OPS-1, CHK-1).

The clauses each row checks are listed in the row (`refsae.checking.table.TABLE`); the tolerance is the one
rule of specs/tolerances.md (TOL-1..TOL-7).
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from refsae.checking import table
from refsae.checking.check import check
from refsae.checking.implementations import TorchImplementation
from refsae.checking.operation import Operation

ROWS = [(op, dtype) for op in table.TABLE for dtype in op.dtypes]


@pytest.mark.parametrize(("op", "dtype"), ROWS, ids=[f"{op.name}-{dtype}" for op, dtype in ROWS])
def test_torch_operation_matches_the_oracle_within_the_tolerance_rule(
    op: Operation, dtype: str, device: str
) -> None:
    outcome = check(op, TorchImplementation(device), dtype)
    assert outcome.status == "pass", outcome.failure
    wanted = settings().max_examples
    assert outcome.examples >= wanted, (
        f"only {outcome.examples} valid examples of {wanted}: the strategy filters too much"
    )
    assert outcome.worst_ratio <= 1.0


FAST_ROWS = [(op, dtype) for op in table.TABLE if op.fast is not None for dtype in op.dtypes]


@pytest.mark.parametrize(("op", "dtype"), FAST_ROWS, ids=[f"{op.name}-{dtype}" for op, dtype in FAST_ROWS])
def test_fast_path_matches_the_oracle_on_the_rows_own_cases_and_bounds(
    op: Operation, dtype: str, device: str
) -> None:
    """PERF-1: a fast path is held to exactly what its row's reference torch function is held to."""
    outcome = check(op, TorchImplementation(device, fast=True), dtype)
    assert outcome.status == "pass", outcome.failure
    assert outcome.examples >= settings().max_examples
    assert outcome.worst_ratio <= 1.0
