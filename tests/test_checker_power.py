"""The checker has power: plausible bugs are caught, each by the row that should catch it (CHK-1, CHK-2).

The mutants are the registry's (`refsae.conform.mutants.MUTANTS`, shared with the conformance
suite's self-test, CONF-8): refsae.torch with one row's function replaced by a version carrying a
bug seen in the wild (or one easy to write). A test that cannot fail proves nothing; these show the
tolerance rule is tight enough to tell conventions apart in float32 and in bfloat16, and the exact
rows exact enough to tell `<` from `<=`.
"""

from __future__ import annotations

import pytest

from refsae.checking import table
from refsae.checking.check import check
from refsae.conform import seeds
from refsae.conform.mutants import MUTANTS, Mutant

POWER = [(m, dtype) for m in MUTANTS.values() for dtype in m.dtypes]


def test_every_mutant_breaks_a_clause_of_its_row_in_dtypes_the_row_is_checked_in() -> None:
    """CHK-1: a mutant's clause is one its row checks, so a flag is evidence about that clause."""
    # the same change may recur only with declared domains (a precondition variant, CONF-21)
    changes = [(m.change, m.domains) for m in MUTANTS.values()]
    assert len(set(changes)) == len(changes), "two records carry the same change"
    for m in MUTANTS.values():
        op = table.get(m.operation)
        assert m.clause in op.clauses, (m.name, m.clause, op.clauses)
        assert m.dtypes and set(m.dtypes) <= set(op.dtypes), (m.name, m.dtypes, op.dtypes)
        assert not m.output or m.output in op.outputs, (m.name, m.output)
        assert m.description


@pytest.mark.parametrize(("mutant", "dtype"), POWER, ids=[f"{m.name}-{dtype}" for m, dtype in POWER])
def test_the_checker_flags_the_mutant_on_its_row(mutant: Mutant, dtype: str) -> None:
    """CHK-1, CHK-2: the row fails within the mutant's example budget, without shrinking (the verdict
    does not depend on it); where the record names an output, the failure is a mismatch there."""
    op = table.get(mutant.operation)
    outcome = check(op, mutant.implementation(), dtype, max_examples=mutant.max_examples, shrink=False)
    assert outcome.status == "fail", f"{mutant.name} survived {outcome.examples} examples in {dtype}"
    assert outcome.failure is not None
    if mutant.output:
        assert f"{op.name} [{dtype}] differs from the oracle at {mutant.output}" in outcome.failure


def test_the_seed_measurement_counts_the_seeds_flagged_and_the_first_failing_examples() -> None:
    """CONF-8: `refsae.conform.seeds` runs a mutant on seeds 1..N and records, per seed, the first
    failing example (the full 20-seed table is conformance/mutant_seeds.md, too slow for CI)."""
    row = seeds.measure(MUTANTS["encode_ignores_b_enc"], "float32", 3)
    assert row.flagged == 3 and row.survived_seeds == []
    assert all(i is not None and 1 <= i <= row.max_examples for i in row.first_failing)
    assert "| `encode_ignores_b_enc` | encode | float32 | 100 | 3/3 |" in row.markdown()
