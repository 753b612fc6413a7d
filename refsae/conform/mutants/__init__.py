"""The registry of mutants: deliberately wrong implementations, one bug each (CHK-1, CONF-8).

A mutant is refsae.torch with one row's torch function replaced by `Mutant.change`, a plausible bug
(a wrong axis, a wrong reduction, a missing bias, a wrong order of steps, a non-strict comparison,
an option ignored …) that breaks `Mutant.clause`. The change is called as the row calls its own
function (`Operation.call`: arrays positionally, options by keyword), so one record serves both
uses, and no test keeps a copy of its own:

- the checker's power (CHK-1, CHK-2; `tests/test_checker_power.py`): `Mutant.implementation()` is a
  checker `Implementation` that `refsae.checking.check.check` must fail on the row, in each of
  `Mutant.dtypes`, within `Mutant.max_examples` examples;
- the conformance suite's self-test (CONF-8; `refsae/conform/selftest.py`,
  `tests/test_conform_selftest.py`): `Mutant.adapter()` is refsae.torch behind fixed canonical
  conventions (tied, constrained, sum, l1, claimed as a library's docs would) with the change in
  place; the suite must flag it on its row, and must pass the unmutated adapter (`CorrectRefsae`).
  A mutant whose bug shows only under an option value the canonical adapter never uses (`mean`
  misread), or that ignores an option and so merely has another named convention (CONF-3), is
  invisible to it; `Mutant.unseen_by_selftest` says why, and the self-test leaves it out
  (`SELFTEST`). The checker, which passes every option, must still flag it.

Each mutant is also a conformance target: `refsae conform refsae.conform.mutants:mutant_NAME`. That
name, which CONF-8 and the reports' reproductions use, is why the registry lives here rather than
beside the checker.
"""

from __future__ import annotations

from typing import Any

from refsae.conform.mutants import (
    classified,
    core,
    evaluation,
    folding,
    jumprelu_penalties,
    matryoshka,
    normalisation,
    sharded,
    training,
    transcoder,
    variants,
)
from refsae.conform.mutants.record import CorrectRefsae, Mutant, MutantImplementation

__all__ = ["MUTANTS", "SELFTEST", "CorrectRefsae", "Mutant", "MutantImplementation", "correct"]

MUTANTS: dict[str, Mutant] = {
    m.name: m
    for family in (
        core,
        training,
        variants,
        sharded,
        jumprelu_penalties,
        matryoshka,
        evaluation,
        folding,
        normalisation,
        transcoder,
        classified,
    )
    for m in family.MUTANTS
}
"""Every mutant by name, in table order of families (core, training dynamics, variants)."""

SELFTEST: tuple[Mutant, ...] = tuple(m for m in MUTANTS.values() if not m.unseen_by_selftest)
"""The mutants the self-test runs (CONF-8): those its fixed canonical conventions can expose."""


def correct() -> CorrectRefsae:
    return CorrectRefsae()


def __getattr__(name: str) -> Any:
    """`refsae.conform.mutants:mutant_NAME` loads mutant NAME as a target."""
    if name.startswith("mutant_") and name[len("mutant_") :] in MUTANTS:
        return MUTANTS[name[len("mutant_") :]].adapter
    raise AttributeError(name)
