"""The suite's power, tested (specs/conformance-suite.md, CONF-8): every deliberately wrong
implementation is flagged, the correct one never is."""

from __future__ import annotations

import pytest

from refsae.cases import Case
from refsae.checking import table
from refsae.checking.check import check
from refsae.conform import selftest
from refsae.conform.mutants import MUTANTS, SELFTEST, correct


def test_there_are_at_least_fifteen_mutants_each_a_described_bug_in_a_row_of_the_table() -> None:
    """CONF-8: the self-test runs the shared registry (`refsae.conform.mutants`), every record the
    canonical conventions can expose; a record left out says why."""
    assert len(SELFTEST) >= 15
    for m in MUTANTS.values():
        assert m.operation in table.BY_NAME and m.description and m.clause in table.get(m.operation).clauses
        assert correct().supports(m.operation)
        assert (m in SELFTEST) != bool(m.unseen_by_selftest), m.name
    assert len({m.operation for m in SELFTEST}) >= 15  # spread over the table, not one row


@pytest.mark.parametrize("name", [m.name for m in SELFTEST])
def test_the_suite_gives_the_mutant_its_expected_verdict(name: str) -> None:
    """CONF-8, CONF-21: a bug is flagged as `bug`; a variant that is a named equivalence, a lower working
    precision, a declared precondition or the other rule at a tie gets exactly that verdict."""
    kill = selftest.kill(MUTANTS[name])
    assert kill.flagged and kill.classified, (kill.verdict, kill.clauses, kill.detail, kill.convention)


def test_every_verdict_has_a_mutant_that_must_receive_it() -> None:
    """CONF-21: the confusion matrix has a row for each verdict a finding can have."""
    assert {m.verdict for m in SELFTEST} >= {"bug", "convention", "precision", "precondition", "tie"}


def test_the_correct_adapter_passes_every_row_under_the_profile() -> None:
    """CONF-8: no false alarm on any row of the table (the `ci` profile in CI)."""
    assert selftest.false_alarm_run() == []


def test_the_correct_adapter_passes_every_row_under_another_seed() -> None:
    """CONF-8: other examples than the profile's (nox -s selftest runs 20 seeds)."""
    assert selftest.false_alarm_run(seed=1) == []


def test_a_seed_draws_other_examples_than_the_profile() -> None:
    """CONF-5: `seed` replaces the profile's randomness (the false-alarm runs are not the same run)."""
    seen: dict[int | None, list[float]] = {}

    class Recording:
        name = "recording"

        def __init__(self, key: int | None) -> None:
            self.key = key

        def supports(self, operation: str) -> bool:
            return True

        def run(self, operation: str, case: Case) -> dict[str, object]:
            seen.setdefault(self.key, []).append(float(case.arrays["x"].sum()))
            return table.get(operation).reference(case)  # type: ignore[return-value]

    for key in (None, 1, 2):
        check(table.get("encode"), Recording(key), "float64", max_examples=5, seed=key)  # type: ignore[arg-type]
    assert seen[None] != seen[1] != seen[2]
    check(table.get("encode"), Recording(3), "float64", max_examples=5, seed=1)  # type: ignore[arg-type]
    assert seen[3] == seen[1]  # and a seed is reproducible


def test_the_selftest_report_states_the_kill_rate_and_the_false_alarms() -> None:
    """CONF-8: the Markdown of `nox -s selftest`."""
    result = selftest.SelfTest(
        kills=[
            selftest.Kill("a", "encode", "bug a", "bug", "bug", ["ENC-1"], "encode=none"),
            selftest.Kill("b", "decode", "bug b", "bug", "pass", [], "decoder=constrained"),
            selftest.Kill("c", "l0", "float32 mean", "precision", "bug", ["MET-1"], ""),
        ],
        false_alarms={"profile": [], "seed 1": ["ENC-1 (encode): bug"]},
    )
    text = result.markdown()
    assert "Detection: **2/3 = 67%**" in text and "Classification: **1/3 = 33%**" in text
    assert "| bug | **1** | 0 | 0 | 0 | 0 | 0 | 1 |" in text  # expected bug: one given bug, one pass
    assert "| precision | 1 | 0 | 0 | **0** | 0 | 0 | 0 |" in text
    assert "False alarms in run seed 1: ENC-1 (encode): bug" in text
