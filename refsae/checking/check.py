"""The checker: runs an operation's cases through an implementation and the oracle (CHK-1..CHK-3).

One engine for the property tests and for `refsae check`: hypothesis draws cases from the row's
strategy, the implementation and the oracle compute, and every output element must lie within the
allowed error of the tolerance rule. A failure carries hypothesis's shrunk counterexample.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, assume, given, note, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.control import should_note
from hypothesis.errors import Unsatisfiable

from refsae.cases import Case
from refsae.checking.implementations import Implementation
from refsae.checking.profiles import without_local_constants
from refsae.checking.table import Operation
from refsae.checking.tolerances import allowed_error, magnitude_floor
from refsae.conventions import pinned_value


class Mismatch(AssertionError):
    """An implementation's output is outside the allowed error of the oracle's (CHK-2)."""

    def __init__(
        self,
        message: str,
        *,
        output: str = "",
        error: float = 0.0,
        expected: float = 0.0,
        non_finite: bool = False,
    ) -> None:
        super().__init__(message)
        self.output, self.error, self.expected, self.non_finite = output, error, expected, non_finite


@dataclass
class Outcome:
    """The result of checking one operation in one dtype."""

    operation: str
    dtype: str
    implementation: str
    status: str = "pass"
    """pass | fail (a mismatch) | error (an exception) | unsupported | unchecked (`include` admitted
    no case)."""
    examples: int = 0
    worst_ratio: float = 0.0
    worst: str = ""
    failure: str | None = None
    exception: str = ""
    """The failure's exception as `Type: message`, without hypothesis's notes (the case)."""
    counterexample: Case | None = None
    """The shrunk failing case (hypothesis replays it last), when the check failed."""
    clauses: tuple[str, ...] = field(default_factory=tuple)
    worst_error: float = 0.0
    """|actual − expected| at the worst element of the last compared case (the failing one)."""
    worst_expected: float = 0.0
    """The oracle's value there."""
    worst_output: str = ""
    """The output of the worst element (the failing output after a mismatch)."""
    non_finite: bool = False
    """The failure is a non-finite output where the oracle's is finite."""


def compare(
    op: Operation,
    case: Case,
    expected: dict[str, np.ndarray],
    actual: dict[str, np.ndarray],
    *,
    working: bool = False,
    elements: dict[str, np.ndarray] | None = None,
) -> tuple[float, str]:
    """Max over outputs of |actual − expected| / allowed, and where it occurs; `Mismatch` above 1.
    `working=True`: the bounds of a computation at the working precision `case.dtype` (CONF-14), the
    row's `working_bounds` where its own bounds require exact outputs. `elements`: compare only the
    masked elements of the outputs it names (an edge clause's own check, CONF-10)."""
    with magnitude_floor(case.dtype):
        bounds = op.bounds(case, expected)
        if working and op.working_bounds is not None:
            bounds = {
                **bounds,
                **{k: b for k, b in op.working_bounds(case, expected).items() if bounds.get(k) is None},
            }
    worst_ratio, worst = 0.0, ""
    absent = pinned_value("absent")  # a library without b_dec has no gradient of it (CONF-11)
    for name in op.outputs:
        if isinstance(absent, tuple) and name.split(".")[-1] in absent:
            continue
        if name not in actual:
            raise Mismatch(f"{op.name}: output {name!r} missing (got {sorted(actual)})", output=name)
        e, a = expected[name], np.asarray(actual[name], dtype=np.float64)
        if a.shape != e.shape:
            raise Mismatch(
                f"{op.name}: output {name!r} has shape {a.shape}, the oracle's has {e.shape}", output=name
            )
        bound = bounds[name]
        allowed = (
            np.zeros(e.shape) if bound is None else np.broadcast_to(allowed_error(bound, case.dtype), e.shape)
        )
        err = np.abs(a - e)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = np.where(
                allowed > 0, err / np.where(allowed > 0, allowed, 1.0), np.where(err > 0, np.inf, 0.0)
            )
        ratio = np.where(np.isnan(a) | np.isnan(e), np.inf, ratio)
        if elements is not None:
            ratio = np.where(np.broadcast_to(elements.get(name, False), ratio.shape), ratio, 0.0)
        if ratio.size == 0:
            continue
        index = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        r = float(ratio[index])
        at = [int(i) for i in index]
        where = (
            f"{name}{at}: |{float(a[index])!r} − {float(e[index])!r}| = {float(err[index]):.3g}, "
            f"allowed {float(allowed[index]):.3g}"
        )
        if op.compare_via is not None:  # the values compared are the projection's (OPS-1)
            where += f" (compared through {getattr(op.compare_via, '__name__', 'compare_via')})"
        if r > 1:
            raise Mismatch(
                f"{op.name} [{case.dtype}] differs from the oracle at {where} (ratio {r:.3g})",
                output=name,
                error=float(err[index]),
                expected=float(e[index]),
                non_finite=bool(not np.isfinite(a[index]) and np.isfinite(e[index])),
            )
        if r >= worst_ratio:
            worst_ratio, worst = r, where
    return worst_ratio, worst


def check(
    op: Operation,
    impl: Implementation,
    dtype: str,
    *,
    max_examples: int | None = None,
    shrink: bool = True,
    profile: settings | None = None,
    seed: int | None = None,
    exclude: Callable[[Case], bool] | None = None,
    include: Callable[[Case], bool] | None = None,
    reference: Callable[[Case], dict[str, np.ndarray]] | None = None,
    call_dtype: str | None = None,
    bounds_dtype: str | None = None,
    prepare: Callable[[Case], Case] | None = None,
    elements: Callable[[Case], dict[str, np.ndarray]] | None = None,
) -> Outcome:
    """Check `impl` against the oracle on `op` in `dtype` under the current hypothesis profile, or
    `profile` (`max_examples` overrides the profile's; `shrink=False` reports the first failure
    unshrunk; `seed` replaces the profile's source of randomness, derandomized or not; cases on
    which `exclude` is true, or `include` false, are not drawn, CONF-10).

    The conformance suite's classification (CONF-12..CONF-16) checks variants of the row: against
    `reference` (an equivalence's outputs) instead of the oracle's; with the cases drawn and the
    bounds taken in `dtype` (the working precision) but the implementation called in `call_dtype`
    (float32 arithmetic inside a float64 call), or with the bounds of `bounds_dtype` (inputs that the
    library stores in `dtype`, the rest computed in `bounds_dtype`); on the cases `prepare` maps
    into a declared domain."""
    outcome = Outcome(op.name, dtype, impl.name, clauses=op.clauses)
    last: list[Case | None] = [None]  # the case of the latest call: the shrunk one after a failure
    if not impl.supports(op.name):
        outcome.status = "unsupported"
        return outcome

    def property_(case: Case) -> None:
        if prepare is not None:
            case = prepare(case)
        if exclude is not None:
            assume(not exclude(case))
        if include is not None:
            assume(include(case))
        called = case if call_dtype is None else dataclasses.replace(case, dtype=call_dtype)
        if should_note():  # the final replay of a failure: rendering every case costs more than checking it
            note(called.reproduction())
        last[0] = called
        actual = impl.run(op.name, called)
        expected = op.reference(case) if reference is None else reference(case)
        if op.compare_via is not None:
            for name, value in actual.items():  # a projection is defined on finite outputs only
                if not np.all(np.isfinite(value)) and np.all(np.isfinite(expected[name])):
                    outcome.worst_output, outcome.non_finite = name, True
                    raise Mismatch(
                        f"{op.name} [{case.dtype}]: output {name!r} is not finite: {value!r}",
                        output=name,
                        non_finite=True,
                    )
            actual, expected = op.compare_via(case, actual), op.compare_via(case, expected)
        try:
            ratio, worst = compare(
                op,
                case if bounds_dtype is None else dataclasses.replace(case, dtype=bounds_dtype),
                expected,
                actual,
                working=call_dtype is not None and bounds_dtype is None,
                elements=None if elements is None else elements(case),
            )
        except Mismatch as m:
            outcome.worst_output, outcome.worst_error = m.output, m.error
            outcome.worst_expected, outcome.non_finite = m.expected, m.non_finite
            raise
        outcome.examples += 1
        if ratio >= outcome.worst_ratio:
            outcome.worst_ratio, outcome.worst = ratio, worst

    ident = "".join(ch if ch.isalnum() else "_" for ch in f"check_{op.name}_{dtype}_{impl.name}")
    property_.__name__ = property_.__qualname__ = ident  # a distinct hypothesis database key per check
    overrides: dict[str, Any] = {}
    if max_examples:
        overrides["max_examples"] = max_examples
    # No `explain` phase: its tracing costs more than the rest of a failing check, and the case's
    # reproduction says more than which lines only failing cases ran.
    overrides["phases"] = [p for p in Phase if p is not Phase.explain and (shrink or p is not Phase.shrink)]
    overrides["report_multiple_bugs"] = False  # one failure, as one exception: fail or error, never a group
    if include is not None:  # an edge clause's own cases may be rare: fewer examples, not an error
        overrides["suppress_health_check"] = [HealthCheck.filter_too_much, HealthCheck.too_slow]
    configured = settings(profile, **overrides)
    test = configured(given(case=op.cases(dtype))(property_))
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    try:
        with without_local_constants():  # the same examples wherever the code lives (NOT-8)
            test()
    except Unsatisfiable:  # `include` admitted no drawn case: nothing was checked
        outcome.status = "unchecked"
        return outcome
    except Exception as exc:  # the failure is the outcome; hypothesis already shrank it
        outcome.status = "fail" if isinstance(exc, AssertionError) else "error"
        if isinstance(exc, Mismatch):
            outcome.worst_output, outcome.worst_error = exc.output, exc.error
            outcome.worst_expected, outcome.non_finite = exc.expected, exc.non_finite
        notes = "\n".join(getattr(exc, "__notes__", []))
        outcome.exception = f"{type(exc).__name__}: {exc}"
        outcome.failure = f"{outcome.exception}\n{notes}".strip()
        outcome.counterexample = last[0]
    return outcome
