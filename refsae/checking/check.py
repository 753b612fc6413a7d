"""The checker: runs an operation's cases through an implementation and the oracle (CHK-1..CHK-3).

One engine for the property tests and for `refsae check`: hypothesis draws cases from the row's
strategy, the implementation and the oracle compute, and every output element must lie within the
allowed error of the tolerance rule. A failure carries hypothesis's shrunk counterexample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import Phase, assume, given, note, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.control import should_note

from refsae.cases import Case
from refsae.checking.implementations import Implementation
from refsae.checking.profiles import without_local_constants
from refsae.checking.table import Operation
from refsae.checking.tolerances import allowed_error, magnitude_floor
from refsae.conventions import pinned_value


class Mismatch(AssertionError):
    """An implementation's output is outside the allowed error of the oracle's (CHK-2)."""


@dataclass
class Outcome:
    """The result of checking one operation in one dtype."""

    operation: str
    dtype: str
    implementation: str
    status: str = "pass"  # pass | fail (a mismatch) | error (an exception) | unsupported
    examples: int = 0
    worst_ratio: float = 0.0
    worst: str = ""
    failure: str | None = None
    exception: str = ""
    """The failure's exception as `Type: message`, without hypothesis's notes (the case)."""
    counterexample: Case | None = None
    """The shrunk failing case (hypothesis replays it last), when the check failed."""
    clauses: tuple[str, ...] = field(default_factory=tuple)


def compare(
    op: Operation, case: Case, expected: dict[str, np.ndarray], actual: dict[str, np.ndarray]
) -> tuple[float, str]:
    """Max over outputs of |actual − expected| / allowed, and where it occurs; `Mismatch` above 1."""
    with magnitude_floor(case.dtype):
        bounds = op.bounds(case, expected)
    worst_ratio, worst = 0.0, ""
    absent = pinned_value("absent")  # a library without b_dec has no gradient of it (CONF-11)
    for name in op.outputs:
        if isinstance(absent, tuple) and name.split(".")[-1] in absent:
            continue
        if name not in actual:
            raise Mismatch(f"{op.name}: output {name!r} missing (got {sorted(actual)})")
        e, a = expected[name], np.asarray(actual[name], dtype=np.float64)
        if a.shape != e.shape:
            raise Mismatch(f"{op.name}: output {name!r} has shape {a.shape}, the oracle's has {e.shape}")
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
        if ratio.size == 0:
            continue
        index = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        r = float(ratio[index])
        at = [int(i) for i in index]
        where = (
            f"{name}{at}: |{float(a[index])!r} − {float(e[index])!r}| = {float(err[index]):.3g}, "
            f"allowed {float(allowed[index]):.3g}"
        )
        if r > 1:
            raise Mismatch(f"{op.name} [{case.dtype}] differs from the oracle at {where} (ratio {r:.3g})")
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
) -> Outcome:
    """Check `impl` against the oracle on `op` in `dtype` under the current hypothesis profile, or
    `profile` (`max_examples` overrides the profile's; `shrink=False` reports the first failure
    unshrunk; `seed` replaces the profile's source of randomness, derandomized or not; cases on
    which `exclude` is true are not drawn, CONF-10)."""
    outcome = Outcome(op.name, dtype, impl.name, clauses=op.clauses)
    last: list[Case | None] = [None]  # the case of the latest call: the shrunk one after a failure
    if not impl.supports(op.name):
        outcome.status = "unsupported"
        return outcome

    def property_(case: Case) -> None:
        if exclude is not None:
            assume(not exclude(case))
        if should_note():  # the final replay of a failure: rendering every case costs more than checking it
            note(case.reproduction())
        last[0] = case
        actual, expected = impl.run(op.name, case), op.reference(case)
        if op.compare_via is not None:
            for name, value in actual.items():  # a projection is defined on finite outputs only
                if not np.all(np.isfinite(value)) and np.all(np.isfinite(expected[name])):
                    raise Mismatch(f"{op.name} [{case.dtype}]: output {name!r} is not finite: {value!r}")
            actual, expected = op.compare_via(case, actual), op.compare_via(case, expected)
        ratio, worst = compare(op, case, expected, actual)
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
    configured = settings(profile, **overrides)
    test = configured(given(case=op.cases(dtype))(property_))
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    try:
        with without_local_constants():  # the same examples wherever the code lives (NOT-8)
            test()
    except Exception as exc:  # the failure is the outcome; hypothesis already shrank it
        outcome.status = "fail" if isinstance(exc, AssertionError) else "error"
        notes = "\n".join(getattr(exc, "__notes__", []))
        outcome.exception = f"{type(exc).__name__}: {exc}"
        outcome.failure = f"{outcome.exception}\n{notes}".strip()
        outcome.counterexample = last[0]
    return outcome
