"""The verdict on a failing row (CONF-12..CONF-17): what a maintainer can act on.

A row whose check under the spec (and the conventions detected) fails is checked again under each
alternative the spec names, in this order, on as many examples as the first check, without
shrinking; the first that passes in every failing dtype decides:

1. the failure is confined to edge clauses (CONF-10): a `bug` of severity `degenerate` on them,
   unless a named equivalence about one of those clauses (a library's guard at the edge) explains
   every case: `convention`;
2. a named equivalence of the row (EQ-1, `refsae.checking.table.equivalences_of`): `convention`;
3. the other rule at a kink (an equivalence of kind `tie`): `tie`;
4. a precondition the adapter declares, on the cases projected into it: `precondition`;
5. a lower working precision (float32 in a float64 call) that the library shows, under the spec or
   one of its equivalences: `precision` (or `convention`), see `_precision`;
6. otherwise a `bug`: `degenerate` when the library returned NaN/inf or raised, `generic` otherwise;
   an exception on a case that exercises no edge clause is an `error` (CONF-17).

A documented claim that detection contradicts is a `bug` of the code or of its documentation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from refsae.cases import Case
from refsae.checking import table
from refsae.checking.check import Mismatch, Outcome, check
from refsae.checking.equivalence import Equivalence
from refsae.checking.operation import Operation
from refsae.checking.strategies import round_to
from refsae.checking.tolerances import UNIT_ROUNDOFF
from refsae.conventions import pinned

if TYPE_CHECKING:
    from refsae.conform.adapter import Adapter
    from refsae.conform.runner import Engine
    from refsae.conform.verdicts import RowVerdict

__all__ = ["LOWER", "judge", "judge_error", "row_clauses"]

LOWER: dict[str, tuple[str, ...]] = {"float64": ("float32",), "float32": (), "bfloat16": (), "float16": ()}
"""The working precisions tried for a failing dtype (CONF-14): float32 inside a float64 call. A
library that silently computes in bfloat16 is not a case the suite excuses."""


class ReturnsIn:
    """The adapter, its outputs required to be values of `dtype` (CONF-14, evidence (a)): a library
    that computes at a working precision returns values of it, cast to the call's dtype."""

    def __init__(self, adapter: Adapter, dtype: str) -> None:
        self.adapter, self.dtype = adapter, dtype
        self.name = f"{getattr(adapter, 'target', 'adapter')} returning {dtype}"

    def supports(self, operation: str) -> bool:
        return self.adapter.supports(operation)

    def run(self, operation: str, case: Case) -> dict[str, np.ndarray]:
        out = self.adapter.run(operation, case)
        for name, value in out.items():
            v = np.asarray(value, dtype=np.float64)
            finite = np.where(np.isfinite(v), v, 0.0)
            if not np.array_equal(round_to(finite, self.dtype).reshape(v.shape), finite):
                raise Mismatch(f"{operation}: output {name!r} is not a {self.dtype} value", output=name)
        return out


def _run(engine: Engine, op: Operation, dtype: str, pins: dict[str, object], **kw: Any) -> Outcome:
    """One check of `op` as the engine runs its rows (same examples, profile, seed), no shrinking."""
    with pinned(**pins):
        return check(
            op,
            engine.adapter,
            dtype,
            max_examples=engine.examples,
            profile=engine.settings,
            seed=engine.seed,
            shrink=False,
            **kw,
        )


def _reference(
    eq: Equivalence, op: Operation, params: dict[str, Any]
) -> Callable[[Case], dict[str, np.ndarray]]:
    return lambda case: eq.outputs(op, case, params)


def row_clauses(engine: Engine, op: Operation, v: RowVerdict, about: Iterable[str] = ()) -> tuple[str, ...]:
    """The clauses a finding is about (CONF-10): `about` where given (an equivalence's or a domain's),
    else those of the failing output (`Operation.output_clauses`), else the row's clauses that are
    neither edge clauses nor out of the adapter's scope."""
    excluded = engine.adapter.excluded_clauses(op.name)
    about = tuple(c for c in about if c in op.clauses)
    if about:
        return about
    failing = [o for o in v.outcomes if o.status in ("fail", "error")]
    output = failing[0].worst_output if failing else ""
    if output in op.output_clauses:
        return tuple(c for c in op.output_clauses[output] if c not in excluded)
    edges = {c for c, _ in op.edge_clauses}
    return tuple(c for c in op.clauses if c not in edges and c not in excluded)


def _edge_failures(engine: Engine, op: Operation, v: RowVerdict, pins: dict[str, object]) -> tuple[str, ...]:
    """The edge clauses that fail on their own cases, in the first failing dtype (CONF-10)."""
    failing = [o for o in v.outcomes if o.status in ("fail", "error")]
    if not failing:
        return ()
    out = []
    for clause, predicate in op.edge_clauses:
        if clause in engine.adapter.excluded_clauses(op.name):
            continue
        o = _run(engine, op, failing[0].dtype, pins, include=predicate, elements=op.edge_elements.get(clause))
        if o.status in ("fail", "error"):
            out.append(clause)
    return tuple(out)


def _shows(o: Outcome, predicate: Callable[[Case], bool]) -> bool:
    """The outcome's counterexample exercises the edge clause of `predicate`."""
    return o.counterexample is not None and bool(predicate(o.counterexample))


def _passes(engine: Engine, op: Operation, dtypes: list[str], pins: dict[str, object], **kw: Any) -> bool:
    return all(_run(engine, op, d, pins, **kw).status == "pass" for d in dtypes)


def _evidence(o: Outcome, working: str) -> str:
    """`float64 call: float32 arithmetic, error 0.44 u_float32` (the spec check's worst element)."""
    dtype = working.split()[0]
    scale = max(abs(o.worst_expected), np.finfo(np.float64).tiny)
    units = f"error {o.worst_error / (UNIT_ROUNDOFF[dtype] * scale):.3g} u_{dtype}"
    if working.endswith("inputs"):
        return f"{o.dtype} call: inputs stored in {dtype}, the rest in {o.dtype}; {units}"
    if working.endswith("declared"):
        return f"{o.dtype} call: part of it in {dtype}, as the adapter declares; {units}"
    return f"{o.dtype} call: {dtype} arithmetic, {units}"


def _precision(
    engine: Engine, op: Operation, failing: list[Outcome], pins: dict[str, object], **kw: Any
) -> dict[str, str] | None:
    """Failing dtype -> the working precision the library shows, or None (CONF-14). Evidence, on
    cases whose inputs are values of the working dtype w: (a) the library returns values of w, within
    the bounds derived in w (it computes in w), or (b) it passes within the bounds of the call's own
    dtype (it stores some input in w and computes the rest in the call's dtype), or (c) the adapter
    declares, with the source's reason, that the library computes part of the row in w
    (`Adapter.working_precision`), and the row passes within the bounds derived in w. A bug whose
    error merely fits a looser bound shows none of them."""
    found: dict[str, str] = {}
    declared = engine.adapter.working_precision.get(op.name)
    for o in failing:
        same = (o.dtype,) if op.working_bounds is not None else ()  # an exact row rounded in its own dtype
        for working in (*same, *LOWER[o.dtype]):
            # (c) the adapter says where, and why
            declares = declared is not None and declared[0] == working
            if declares and _run(engine, op, working, pins, call_dtype=o.dtype, **kw).status == "pass":
                found[o.dtype] = f"{working} declared"
                break
            returns = ReturnsIn(engine.adapter, working)
            with pinned(**pins):
                computes = check(
                    op, returns, working, max_examples=engine.examples, profile=engine.settings,
                    seed=engine.seed, shrink=False, call_dtype=o.dtype, **kw,
                )  # fmt: skip
            if computes.status == "pass":
                found[o.dtype] = working
                break
            if working == o.dtype:
                continue
            stores = _run(engine, op, working, pins, call_dtype=o.dtype, bounds_dtype=o.dtype, **kw)
            if stores.status == "pass":
                found[o.dtype] = f"{working} inputs"
                break
        else:
            return None
    return found


def _edge_guard(
    engine: Engine, op: Operation, v: RowVerdict, pins: dict[str, object], failing: list[Outcome]
) -> bool:
    """CONF-10: a failure confined to edge clauses that a named equivalence *about* one of them (a
    library's own guard at the edge, e.g. row norms clamped at 1e-8, EQ-15) explains on every case is
    that `convention`, not a degenerate bug; sets the verdict and returns True when one does."""
    confined = v.confined or set()
    params = dict(engine.adapter.equivalence_parameters)
    dtypes = [o.dtype for o in failing]
    for eq in table.equivalences_of(op.name):
        if eq.kind != "convention" or not set(eq.about) & confined:
            continue
        if not eq.searched_for(engine.adapter.equivalence_parameters):
            continue
        if _passes(engine, eq.row(op, params), dtypes, pins, reference=_reference(eq, op, params)):
            v.verdict, v.equivalence = "convention", eq.name
            v.clauses = row_clauses(engine, op, v, eq.about)
            v.detail = f"{eq.name}: {eq.formula} ({eq.clause}), on the cases of {', '.join(sorted(confined))}"
            return True
    return False


def judge(
    engine: Engine, op: Operation, v: RowVerdict, pins: dict[str, object], *, contradicted: bool
) -> None:
    """Set `v.verdict` and its evidence from the check under the spec (`v.outcomes`)."""
    failing = [o for o in v.outcomes if o.status in ("fail", "error")]
    if v.status == "pass":
        v.verdict, v.clauses = "pass", ()
        return
    if contradicted:
        v.verdict, v.severity = "bug", "generic"
        v.clauses = row_clauses(engine, op, v)
        v.detail = "a documented claim the code contradicts: a bug of the code or of its documentation"
        return
    if v.confined and _edge_guard(engine, op, v, pins, failing):
        return
    if v.confined:
        failing_edges = _edge_failures(engine, op, v, pins)
        v.verdict, v.severity = "bug", "degenerate"
        v.clauses = tuple(c for c, _ in op.edge_clauses if c in v.confined or c in failing_edges)
        v.detail = f"only on the cases of {', '.join(sorted(v.confined))}; every other case passes"
        return
    dtypes = [o.dtype for o in failing] or [d for d in engine.adapter.dtypes if d in op.dtypes][:1]
    params = dict(engine.adapter.equivalence_parameters)
    equivalences = tuple(
        e for e in table.equivalences_of(op.name) if e.searched_for(engine.adapter.equivalence_parameters)
    )
    for kind in ("convention", "tie"):
        for alternative in (e for e in equivalences if e.kind == kind):
            row = alternative.row(op, params)
            if _passes(engine, row, dtypes, pins, reference=_reference(alternative, op, params)):
                v.verdict, v.equivalence = kind, alternative.name
                v.clauses = row_clauses(engine, op, v, alternative.about)
                v.detail = f"{alternative.name}: {alternative.formula} ({alternative.clause})"
                return
    for domain in engine.adapter.preconditions(op.name):
        if _passes(engine, op, dtypes, pins, prepare=domain.project):
            v.verdict, v.domain = "precondition", domain.name
            v.clauses = row_clauses(engine, op, v, domain.about)
            v.detail = (
                f"passes inside the domain {domain.name} ({domain.reason}); outside it the library's "
                "function is unsafe on its own"
            )
            return
    if failing and not any(o.status == "error" for o in failing):
        candidates: tuple[Equivalence | None, ...] = (
            None,
            *(e for e in equivalences if e.kind == "convention"),
        )
        for eq in candidates:
            kw = {} if eq is None else {"reference": _reference(eq, op, params)}
            row = op if eq is None else eq.row(op, params)
            # Under an equivalence, the dtypes that fail it (one may pass it outright: a float32 call
            # of a library that computes part of a float64 call in float32), with its own errors.
            fails = (
                failing
                if eq is None
                else [o for d in dtypes if (o := _run(engine, row, d, pins, **kw)).status != "pass"]
            )
            if any(o.status != "fail" for o in fails):
                continue
            working = _precision(engine, row, fails, pins, **kw)
            if working is None:
                continue
            units = ", ".join(_evidence(o, working[o.dtype]) for o in fails)
            declared = engine.adapter.working_precision.get(op.name)
            if declared is not None and any(w.endswith("declared") for w in working.values()):
                units += f" ({declared[1]})"
            v.working = working
            if eq is None:
                v.verdict = "precision"
                v.clauses = row_clauses(engine, op, v)
                v.detail = f"passes with the error bound derived at the working precision ({units})"
            else:
                v.verdict, v.equivalence = "convention", eq.name
                v.clauses = row_clauses(engine, op, v, eq.about)
                v.detail = f"{eq.name}: {eq.formula} ({eq.clause}), computed at a lower precision ({units})"
            return
    shown = [(c, p) for c, p in op.edge_clauses if any(_shows(o, p) for o in failing)]
    for eq in (e for e in equivalences if e.kind == "convention") if shown else ():
        # wrong only on edge cases once the rest follows an equivalence: a degenerate bug (CONF-17)
        def outside(case: Case) -> bool:
            return any(p(case) for _, p in shown)

        row = eq.row(op, params)
        if _passes(engine, row, dtypes, pins, reference=_reference(eq, op, params), exclude=outside):
            v.verdict, v.severity, v.equivalence = "bug", "degenerate", eq.name
            v.clauses = tuple(c for c, _ in shown)
            v.detail = (
                f"only on the cases of {', '.join(v.clauses)}; every other case follows {eq.name}: "
                f"{eq.formula} ({eq.clause})"
            )
            return
    errors = [o for o in failing if o.status == "error"]
    on_edge = any(
        o.counterexample is not None and any(p(o.counterexample) for _, p in op.edge_clauses) for o in failing
    )
    # A failure on the cases without edge clauses decides (a wrong value there is generic even if the
    # first counterexample found was a NaN on a degenerate case).
    primary = [v.rest] if v.rest is not None and v.rest.status in ("fail", "error") else failing
    degenerate = any(o.non_finite or o.status == "error" for o in primary)
    if errors and len(errors) == len(failing) and not on_edge:
        v.verdict, v.severity = "error", ""
        v.detail = "the library raised on a valid input that exercises no edge clause"
    else:
        v.verdict, v.severity = "bug", "degenerate" if degenerate else "generic"
    edges = _edge_failures(engine, op, v, pins) if op.edge_clauses else ()
    if degenerate and edges:  # NaN, inf or a crash: the guard clauses the edge cases show broken
        v.clauses = edges
    else:
        v.clauses = tuple(dict.fromkeys((*row_clauses(engine, op, v), *edges)))


def judge_error(engine: Engine, op: Operation, v: RowVerdict) -> None:
    """The verdict when convention detection raised on every combination (CONF-17)."""
    case = next(iter(d.counterexample for d in [engine.detections.get(op.name)] if d is not None), None)
    edges = [c for c, p in op.edge_clauses if case is not None and p(case)]
    if edges:
        v.verdict, v.severity, v.clauses = "bug", "degenerate", tuple(edges)
        v.detail = f"raised on a case of {', '.join(edges)}"
    else:
        v.verdict, v.clauses = "error", row_clauses(engine, op, v)
        v.detail = "the library raised on every convention probed"
