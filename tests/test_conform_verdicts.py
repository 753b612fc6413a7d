"""One verdict per finding (specs/conformance-suite.md, CONF-12..CONF-18): each verdict on a variant
that is, by construction, what the verdict says, and what the report says about it."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from refsae.conform import Adapter, conform
from refsae.conform.adapter import Domain
from refsae.conform.mutants import MUTANTS
from refsae.conform.verdicts import FAILING, FINDINGS, VERDICTS, fails

FAST: dict[str, Any] = {"max_examples": 10}


def _finding(name: str) -> Any:
    m = MUTANTS[name]
    report = conform(m.adapter(), operations=[m.operation], **FAST)
    return report, report.findings[0]


def test_only_bug_and_error_fail_a_run_and_strict_fails_every_finding() -> None:
    """CONF-12."""
    assert {"bug", "error"} == FAILING and set(VERDICTS) - {"pass", "unsupported"} == FINDINGS
    assert [v for v in VERDICTS if fails(v)] == ["bug", "error"]
    assert [v for v in VERDICTS if fails(v, strict=True)] == [v for v in VERDICTS if v in FINDINGS]


def test_a_named_equivalence_is_a_convention_with_its_formula_and_clause() -> None:
    """CONF-13: the L1 term summed over the batch is `l1` with λ' = λ·B, not a failure."""
    report, f = _finding("total_loss_l1_summed_over_batch")
    assert f.verdict == "convention" and f.equivalence == "l1_batch_sum", (f.verdict, f.detail)
    assert "λ" in f.detail and "EQ-" in f.detail and report.passes()


def test_float32_arithmetic_in_a_float64_call_is_precision_with_its_working_dtype_and_error() -> None:
    """CONF-14: the mean of counts accumulated in float32 passes under the bound derived in float32;
    the report says so and gives the error in units of float32's roundoff."""
    report, f = _finding("l0_in_float32")
    assert f.verdict == "precision" and f.working["float64"] == "float32", (f.verdict, f.detail)
    assert "float64 call: float32 arithmetic, error" in f.detail and "u_float32" in f.detail
    assert report.passes() and not report.passes(strict=True)


def test_an_equivalence_with_a_declared_float32_part_is_a_convention_at_a_lower_precision() -> None:
    """CONF-13, CONF-14: the batch-summed L1 term computed in float32 follows `l1_batch_sum` outright in
    a float32 call and within its declared float32 bounds in a float64 one; its evidence and error are
    the equivalence's own check's (dictionary_learning's target-L0 penalty has this shape)."""
    report, f = _finding("total_loss_l1_batch_sum_in_float32")
    assert f.verdict == "convention" and f.equivalence == "l1_batch_sum", (f.verdict, f.detail)
    assert f.working == {"float64": "float32 declared"}, f.working
    assert report.passes() and not report.passes(strict=True)
    assert "computed at a lower precision" in f.detail and "the L1 term is computed in float32" in f.detail
    # the same change without the declaration shows no evidence: a bug
    m = MUTANTS["total_loss_l1_batch_sum_in_float32"]
    undeclared = dataclasses.replace(m, working_precision={}).adapter()
    assert conform(undeclared, operations=[m.operation], **FAST).findings[0].verdict == "bug"


def test_a_declared_precondition_is_checked_inside_its_domain_and_named() -> None:
    """CONF-15: outside unit rows the projection is wrong; inside it passes, and the report says both."""
    report, f = _finding("remove_parallel_unit_rows_declared")
    assert f.verdict == "precondition" and f.domain == "unit_rows"
    assert "unsafe on its own" in f.detail and f.clauses == ["PAR-1", "PAR-2"]
    assert {c.clause: c.status for c in report.clauses}["PAR-3"] == "pass"
    # without the declaration the same change is a bug
    _, bug = _finding("remove_parallel_assumes_unit_rows")
    assert bug.verdict == "bug"


def test_a_scope_puts_the_clauses_only_its_outside_exercises_out_of_reach() -> None:
    """CONF-15: a library that hard-codes the uncentred resampling never runs RES-12's variant."""
    from refsae.conform.refsae_adapter import FixedRefsae

    class Uncentred(FixedRefsae):
        domains: ClassVar[tuple[Domain, ...]] = (
            Domain("uncentred", "hard-codes the uncentred input", ("resample_anthropic",),
                   lambda case: not case.options["centred"], excludes=("RES-12",)),
        )  # fmt: skip

        def supports(self, operation: str) -> bool:
            return operation == "resample_anthropic"

    report = conform(Uncentred(), operations=["resample_anthropic"], **FAST)
    status = {c.clause: c.status for c in report.clauses}
    assert status["RES-12"] == "unsupported" and status["RES-10"] == "pass"
    assert report.domains == [
        {
            "name": "uncentred",
            "kind": "scope",
            "reason": "hard-codes the uncentred input",
            "ops": "resample_anthropic",
        }
    ]


def test_the_other_rule_at_a_kink_is_a_tie() -> None:
    """CONF-16: `z >= θ` differs from JUMP-1's `z > θ` only where z = θ exactly."""
    _, f = _finding("jumprelu_non_strict")
    assert f.verdict == "tie", (f.verdict, f.detail)


def test_a_bug_says_whether_it_is_a_wrong_value_or_a_nan_on_a_degenerate_input() -> None:
    """CONF-17: a wrong axis is generic; NaN for a zero row is degenerate, about CON-2 alone."""
    _, generic = _finding("renormalise_columns")
    assert (generic.verdict, generic.severity, generic.clauses) == ("bug", "generic", ["CON-1"])
    _, nan = _finding("renormalise_zero_rows_to_nan")
    assert (nan.verdict, nan.severity, nan.clauses) == ("bug", "degenerate", ["CON-2"])


def test_an_exception_on_a_generic_input_is_an_error_and_on_an_edge_case_a_degenerate_bug() -> None:
    """CONF-17: raising where the case exercises no edge clause is `error`; raising only on zero rows
    is a degenerate bug of CON-2."""

    class Raises(Adapter):
        name: ClassVar[str] = "raises"

        def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
            raise RuntimeError("library exploded")

    class RaisesOnZeroRows(Adapter):
        name: ClassVar[str] = "raises-on-zero-rows"

        def renormalise_rows(self, W_dec: Tensor) -> Tensor:
            norms: Tensor = torch.linalg.vector_norm(W_dec, dim=-1, keepdim=True)
            if bool((norms == 0).any()):
                raise ZeroDivisionError("zero row")
            return W_dec / norms

    error = conform(Raises(), operations=["decode"], **FAST).findings[0]
    assert error.verdict == "error" and "RuntimeError: library exploded" in error.message
    degenerate = conform(RaisesOnZeroRows(), operations=["renormalise_rows"], **FAST).findings[0]
    assert (degenerate.verdict, degenerate.severity, degenerate.clauses) == ("bug", "degenerate", ["CON-2"])


def test_every_finding_carries_a_reproduction_that_runs() -> None:
    """CONF-18: the suite's reproduction of a non-bug finding shows the difference too."""
    _, f = _finding("l0_in_float32")
    namespace: dict[str, Any] = {}
    exec(compile(f.reproduction.replace("print(", "(lambda *a: None)("), "<snippet>", "exec"), namespace)
    assert np.max(np.abs(namespace["actual"]["l0"] - namespace["expected"]["l0"])) > 0
