"""The conformance engine (CONF-3..CONF-5): one function behind the CLI, the pytest plugin and the API.

For each operation the adapter provides: detect the conventions it follows (detect.py; rows with one
axis first, so that `encode` settles `encode=` before `total_loss` needs it), then check it against
the oracle in each of the adapter's dtypes under those conventions, with shrinking, and turn the
outcome into one verdict per clause the operation cites.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from refsae import __version__, ops, profiles
from refsae.check import Outcome, check
from refsae.conform.adapter import Adapter
from refsae.conform.detect import Detection, detect
from refsae.conform.report import ClauseResult, Report
from refsae.conform.repro import snippet
from refsae.conventions import AXES, CLAUSES, pinned

EXAMPLES = {"dev": 10, "ci": 25, "thorough": 200}
"""Examples per operation and dtype in each profile (CONF-5): the ci profile is derandomized, so a
run is reproducible; `thorough` is random and long."""


@dataclass
class RowVerdict:
    """What the suite found for one operation."""

    operation: str
    status: str = "pass"
    convention: str = ""
    names: dict[str, str] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    message: str = ""
    reproduction: str = ""


class Engine:
    """Runs operations for one adapter, caching each verdict (the pytest plugin asks lazily)."""

    def __init__(
        self,
        adapter: Adapter,
        *,
        profile: str | None = None,
        max_examples: int | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.adapter = adapter
        self.profile = profiles.resolve(profile)
        self.settings = profiles.get(profile)
        self.examples = max_examples or EXAMPLES[self.profile]
        self.progress = progress or (lambda _: None)
        self.known: dict[str, str] = {}
        self.detections: dict[str, Detection] = {}
        self.verdicts: dict[str, RowVerdict] = {}
        self.claims = dict(adapter.claims)

    def _dtypes(self, op: ops.Operation) -> list[str]:
        return [d for d in self.adapter.dtypes if d in op.dtypes]

    def _settle(self, op: ops.Operation) -> RowVerdict | None:
        """Detect `op`'s unknown axes; a verdict when detection itself decides the row (error)."""
        free = [a for a in op.convention_axes if a not in self.known]
        if self.adapter.configurable or not free:
            return None
        # Rows with fewer unknown axes first: settle each axis on the simplest row that shows it.
        for other in sorted(self._supported(), key=lambda o: len(o.convention_axes)):
            if other is op or not set(other.convention_axes) & set(free) or other.name in self.detections:
                continue
            if len(other.convention_axes) < len(op.convention_axes):
                self._detect(other)
                if all(a in self.known for a in op.convention_axes):
                    return None
        return self._detect(op)

    def _detect(self, op: ops.Operation) -> RowVerdict | None:
        dtypes = self._dtypes(op)
        if op.name in self.detections or not dtypes:
            return None
        self.progress(f"detecting the conventions of {op.name}")
        d = detect(op, self.adapter, self.known, dtypes[0], profile=self.settings)
        self.detections[op.name] = d
        if d.error is not None:
            return RowVerdict(op.name, "error", "", message=d.error)
        if d.found:
            self.known.update(d.choose(self.claims))
        else:
            for a in d.axes:
                self.known.setdefault(a, "none")
        return None

    def _supported(self) -> list[ops.Operation]:
        return [op for op in ops.TABLE if self.adapter.supports(op.name)]

    def _pins(self, op: ops.Operation) -> dict[str, object]:
        instances: dict[str, object] = {} if self.adapter.instances else {"instances": False}
        if self.adapter.configurable:
            return instances
        pins: dict[str, object] = {"eps": self.adapter.eps, **instances}
        for a in op.convention_axes:
            name = self.known.get(a, "none")
            pins[a] = name if name != "none" else self.claims.get(a, AXES[a][0])
        return pins

    def verdict(self, operation: str) -> RowVerdict:
        """Detect, check and judge one operation (cached)."""
        if operation in self.verdicts:
            return self.verdicts[operation]
        op = ops.get(operation)
        if not self.adapter.supports(operation):
            v = RowVerdict(
                operation, "unsupported", message=f"{self.adapter.target} does not provide {operation}"
            )
            self.verdicts[operation] = v
            return v
        v = self._settle(op) or self._check(op)
        self.verdicts[operation] = v
        return v

    def _check(self, op: ops.Operation) -> RowVerdict:
        v = RowVerdict(op.name)
        pins = self._pins(op)
        names = (
            {} if self.adapter.configurable else {a: self.known.get(a, "none") for a in op.convention_axes}
        )
        v.names = names
        if self.adapter.configurable:
            v.convention = "configurable" if op.convention_axes else ""
        else:
            v.convention = ", ".join(f"{a}={n}" for a, n in names.items())
        unmatched = [a for a, n in names.items() if n == "none"]
        contradicted = {a: n for a, n in names.items() if a in self.claims and n != self.claims[a]}
        if contradicted:  # check under the claimed conventions: the counterexample shows the claim false
            pins.update(self.claims)
        for dtype in self._dtypes(op):
            self.progress(f"checking {op.name} [{dtype}]")
            with pinned(**pins):
                outcome = check(op, self.adapter, dtype, max_examples=self.examples, profile=self.settings)
            v.outcomes.append(outcome)
            if outcome.status != "pass" and v.status == "pass":
                v.status = outcome.status
                v.message = outcome.failure or ""
                if outcome.counterexample is not None:
                    v.reproduction = snippet(self.adapter.target, op.name, outcome.counterexample)
        detection = self.detections.get(op.name)
        notes = [detection.note()] if detection is not None and detection.note() else []
        if unmatched:
            claim = ", ".join(f"{a}={pins[a]}" for a in unmatched)
            notes.append(f"matches no named convention on {', '.join(unmatched)}; checked as {claim}")
            v.status = "fail" if v.status == "pass" else v.status
        if contradicted:
            said = ", ".join(f"{a}={self.claims[a]}" for a in contradicted)
            seen = ", ".join(f"{a}={n}" for a, n in contradicted.items())
            notes.append(f"the library claims {said} but behaves as {seen}")
            v.status = "fail" if v.status == "pass" else v.status
        if notes:
            v.message = "; ".join(notes) + (f"\n{v.message}" if v.message else "")
        return v

    def clause_results(self, operation: str) -> list[ClauseResult]:
        """One result per clause `operation` cites."""
        v = self.verdict(operation)
        op = ops.get(operation)
        out = []
        for clause in op.clauses:
            status, message = v.status, v.message
            owner = next(((a, n) for (a, n), c in CLAUSES.items() if c == clause), None)
            if (
                status == "pass"
                and owner is not None
                and v.names
                and v.names.get(owner[0], owner[1]) != owner[1]
            ):
                status = "unsupported"
                axis, name = owner
                message = f"{clause} defines {axis}={name}; the implementation follows {axis}={v.names[axis]}"
            out.append(
                ClauseResult(
                    clause,
                    operation,
                    status,
                    examples=sum(o.examples for o in v.outcomes),
                    convention=v.convention,
                    message=message,
                    reproduction=v.reproduction,
                    dtypes={o.dtype: o.status for o in v.outcomes},
                )
            )
        return out

    def report(self, operations: Iterable[str] | None = None) -> Report:
        start = time.perf_counter()
        names = list(operations) if operations is not None else [op.name for op in ops.TABLE]
        report = Report(
            target=self.adapter.target,
            library=self.adapter.library or self.adapter.target,
            library_version=self.adapter.library_version(),
            refsae_version=__version__,
            profile=self.profile,
            claims=dict(self.claims),
        )
        for name in names:
            report.clauses.extend(self.clause_results(name))
        report.conventions = dict(self.known)
        report.seconds = time.perf_counter() - start
        return report


def conform(
    adapter: Adapter,
    *,
    profile: str | None = None,
    max_examples: int | None = None,
    operations: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Run the conformance suite on `adapter` and return its report (the Python API, CONF-5)."""
    engine = Engine(adapter, profile=profile, max_examples=max_examples, progress=progress)
    return engine.report(operations)
