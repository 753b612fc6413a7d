"""The conformance engine (CONF-3..CONF-5): one function behind the CLI, the pytest plugin and the API.

For each operation the adapter provides: detect the conventions it follows (detect.py; rows with one
axis first, so that `encode` settles `encode=` before `total_loss` needs it), then check it against
the oracle in each of the adapter's dtypes under those conventions, with shrinking, and turn the
outcome into one verdict per clause the operation cites.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from refsae import __version__
from refsae.cases import Case
from refsae.checking import profiles, table
from refsae.checking.check import Outcome, check
from refsae.checking.clauses import clause_text
from refsae.checking.operation import Operation
from refsae.conform.adapter import Adapter
from refsae.conform.classify import judge, judge_error
from refsae.conform.detect import Detection, detect
from refsae.conform.report import ClauseResult, Finding, Report
from refsae.conform.repro import snippet
from refsae.conform.verdicts import FINDINGS, RowVerdict
from refsae.conventions import AXES, CLAUSES, pinned

EXAMPLES = {"dev": 10, "ci": 25, "thorough": 200}
"""Examples per operation and dtype in each profile (CONF-5): the ci profile is derandomized, so a
run is reproducible; `thorough` is random and long."""


class Engine:
    """Runs operations for one adapter, caching each verdict (the pytest plugin asks lazily).

    Convention state: `known` (axis -> the detected name, or `none` when nothing matched) and
    `candidates` (axis -> the names a row's examples could not tell apart, for a later row to settle).
    """

    def __init__(
        self,
        adapter: Adapter,
        *,
        profile: str | None = None,
        max_examples: int | None = None,
        progress: Callable[[str], None] | None = None,
        seed: int | None = None,
        shrink: bool = True,
    ) -> None:
        self.adapter = adapter
        self.profile = profiles.resolve(profile)
        self.settings = profiles.get(profile)
        self.examples = max_examples or EXAMPLES[self.profile]
        self.progress = progress or (lambda _: None)
        self.seed = seed
        self.shrink = shrink
        self.known: dict[str, str] = {}
        self.candidates: dict[str, tuple[str, ...]] = {}
        self.detections: dict[str, Detection] = {}
        self.verdicts: dict[str, RowVerdict] = {}
        self.claims = dict(adapter.claims)

    def _dtypes(self, op: Operation) -> list[str]:
        return [d for d in self.adapter.dtypes if d in op.dtypes]

    def _free(self, op: Operation) -> list[str]:
        """`op`'s axes that are neither taken by the adapter nor settled yet."""
        accepted = self.adapter.accepts(op)
        return [a for a in op.convention_axes if a not in accepted and a not in self.known]

    def _settle(self, op: Operation) -> RowVerdict | None:
        """Detect `op`'s unsettled axes; a verdict when detection itself decides the row (error)."""
        if not self._free(op):
            return None
        # Smaller rows first: a row with fewer axes whose unsettled ones are all `op`'s settles them
        # on the simplest case that shows them (`encode` on `encode` before `total_loss` needs it).
        for other in sorted(self._supported(), key=lambda o: len(o.convention_axes)):
            mine, theirs = set(self._free(op)), set(self._free(other))
            if other is op or other.name in self.detections or not theirs or not theirs <= mine:
                continue
            if len(other.convention_axes) < len(op.convention_axes):
                self._detect(other)
                if not self._free(op):
                    return None
        return self._detect(op)

    def _detect(self, op: Operation) -> RowVerdict | None:
        dtypes = self._dtypes(op)
        free = self._free(op)
        if op.name in self.detections or not dtypes or not free:
            return None
        pins = self._pins(op)
        space = {a: self.candidates.get(a, AXES[a]) for a in free}
        fixed = {k: v for k, v in pins.items() if k not in space}
        # In the adapter's first dtype; where nothing matches there, in the next (a library that
        # computes in float32 whatever the dtype matches nothing in float64, and is then checked in
        # float64 under what it follows in float32).
        for dtype in dtypes:
            self.progress(f"detecting the conventions of {op.name} ({', '.join(free)}) [{dtype}]")
            d = detect(op, self.adapter, fixed, space, dtype, profile=self.settings, seed=self.seed)
            if d.found:
                break
        self.detections[op.name] = d
        if not d.found:
            if d.error is not None:
                case = d.counterexample
                repro = snippet(self.adapter.target, op.name, case) if case is not None else ""
                return RowVerdict(op.name, "error", message=d.error, reproduction=repro)
            for a in free:  # an axis an earlier row narrowed down keeps its candidates
                if a not in self.candidates:
                    self.known[a] = "none"
            return None
        for a in free:
            names = d.names(a)
            if len(names) == 1:
                self.known[a] = names[0]
                self.candidates.pop(a, None)
            else:
                self.candidates[a] = names
        return None

    def _supported(self) -> list[Operation]:
        return [op for op in table.TABLE if self.adapter.supports(op.name)]

    def _pick(self, axis: str) -> str:
        """The name `axis` is checked under: the detected one, else the claimed one (if it is still a
        candidate), else the first candidate, else the claim or the canonical default."""
        name = self.known.get(axis, "none")
        if name != "none":
            return name
        names = self.candidates.get(axis, AXES[axis])
        claim = self.claims.get(axis)
        return claim if claim in names else names[0]

    def _pins(self, op: Operation) -> dict[str, object]:
        pins: dict[str, object] = {} if self.adapter.instances else {"instances": False}
        if self.adapter.absent:
            pins["absent"] = tuple(self.adapter.absent)
        accepted = self.adapter.accepts(op)
        if "decoder" not in accepted:
            pins["eps"] = self.adapter.eps
        for a in op.convention_axes:
            if a not in accepted:
                pins[a] = self._pick(a)
        return pins

    def names(self, op: Operation) -> dict[str, str]:
        """The convention of each of `op`'s axes as detected so far: a name, `a|b` (not yet told
        apart), `none` (matches no named convention) or `any` (the adapter takes the option)."""
        accepted = self.adapter.accepts(op)
        out = {}
        for a in op.convention_axes:
            if a in accepted:
                out[a] = "any"
            elif a in self.candidates:
                out[a] = "|".join(self.candidates[a])
            else:
                out[a] = self.known.get(a, "none")
        return out

    def convention(self, op: Operation) -> str:
        """The `convention` field of `op`'s clauses (CONF-4)."""
        return ", ".join(f"{a}={n}" for a, n in self.names(op).items())

    def verdict(self, operation: str) -> RowVerdict:
        """Detect, check and judge one operation (cached)."""
        if operation in self.verdicts:
            return self.verdicts[operation]
        op = table.get(operation)
        if not self.adapter.supports(operation):
            v = RowVerdict(
                operation,
                "unsupported",
                verdict="unsupported",
                message=f"{self.adapter.target} does not provide {operation}",
            )
            self.verdicts[operation] = v
            return v
        settled = self._settle(op)
        if settled is not None:  # detection raised on every combination
            judge_error(self, op, settled)
        v = settled or self._check(op)
        self.verdicts[operation] = v
        return v

    def _check(self, op: Operation) -> RowVerdict:
        v = RowVerdict(op.name)
        pins = self._pins(op)
        names = self.names(op)
        v.names = names
        v.convention = self.convention(op)
        unmatched = [a for a, n in names.items() if n == "none"]
        contradicted = {
            a: n
            for a, n in names.items()
            if a in self.claims and n not in ("any", "none") and self.claims[a] not in n.split("|")
        }
        for a in contradicted:  # checked under the claim: the counterexample shows the claim false
            pins[a] = self.claims[a]
        for dtype in self._dtypes(op):
            self.progress(f"checking {op.name} [{dtype}]")
            with pinned(**pins):
                outcome = check(
                    op,
                    self.adapter,
                    dtype,
                    max_examples=self.examples,
                    profile=self.settings,
                    seed=self.seed,
                    shrink=self.shrink and v.status == "pass",  # one shrunk counterexample a row
                )
            v.outcomes.append(outcome)
            if outcome.status != "pass":
                self._confine(op, v, outcome, pins, dtype)
            if outcome.status != "pass" and v.status == "pass":
                v.status = outcome.status
                v.message = outcome.exception  # the case itself is in the reproduction
                if outcome.counterexample is not None:
                    v.reproduction = snippet(self.adapter.target, op.name, outcome.counterexample)
            elif outcome.status != "pass":  # the other dtypes' failures, first line each
                first = outcome.exception.splitlines()[0] if outcome.exception else outcome.status
                v.message += f"\n[{dtype}] {first}"
        detection = self.detections.get(op.name)
        notes = [detection.note()] if detection is not None and detection.note() else []
        if unmatched:
            claim = ", ".join(f"{a}={pins[a]}" for a in unmatched)
            notes.append(
                f"matches no named convention or equivalence on {', '.join(unmatched)}; checked as {claim}"
            )
            v.status = "fail" if v.status == "pass" else v.status
        if contradicted:
            said = ", ".join(f"{a}={self.claims[a]}" for a in contradicted)
            seen = ", ".join(f"{a}={n}" for a, n in contradicted.items())
            notes.append(f"the library claims {said} but behaves as {seen}")
            v.status = "fail" if v.status == "pass" else v.status
        if notes:
            v.message = "; ".join(notes) + (f"\n{v.message}" if v.message else "")
        judge(self, op, v, pins, contradicted=bool(contradicted))
        return v

    def _confine(
        self, op: Operation, v: RowVerdict, outcome: Outcome, pins: dict[str, object], dtype: str
    ) -> None:
        """CONF-10: when the counterexample exercises edge clauses of the row, check the row again
        without the cases of any edge clause; if it passes, the failure is confined to edge clauses
        (those exercised, and any other whose own cases fail, `classify.judge`)."""
        case = outcome.counterexample
        exercised = [c for c, p in op.edge_clauses if case is not None and p(case)]
        first = not v.outcomes[:-1] or all(o.status == "pass" for o in v.outcomes[:-1])
        if not exercised or (not first and v.confined is None):
            v.confined = None
            return
        # Without the exercised edge clauses' cases, then also those of any other one the rest fails on.
        while True:
            self.progress(f"checking {op.name} [{dtype}] without the cases of {', '.join(exercised)}")
            excluded = [p for c, p in op.edge_clauses if c in exercised]

            def outside(case: Case, excluded: list[Callable[[Case], bool]] = excluded) -> bool:
                return any(p(case) for p in excluded)

            with pinned(**pins):
                rest = check(
                    op,
                    self.adapter,
                    dtype,
                    max_examples=self.examples,
                    profile=self.settings,
                    seed=self.seed,
                    shrink=False,
                    exclude=outside,
                )
            shown = rest.counterexample
            more = [c for c, p in op.edge_clauses if c not in exercised and shown is not None and p(shown)]
            if rest.status == "pass" or not more:
                break
            exercised += more
        v.rest = rest
        if rest.status == "pass":
            v.confined = (v.confined or set()) | set(exercised)
        else:
            v.confined = None

    def clause_results(self, operation: str) -> list[ClauseResult]:
        """One result per clause `operation` cites, with the conventions as detected by now: the
        row's verdict on the clauses its finding is about, `pass` on the others (CONF-10); a clause
        that defines a convention the implementation does not follow (CLAUSES), or that only cases
        outside a declared scope exercise, is `unsupported` (CONF-4, CONF-10, CONF-15)."""
        v = self.verdict(operation)
        op = table.get(operation)
        names = self.names(op)
        excluded = self.adapter.excluded_clauses(operation)
        out = []
        for clause in op.clauses:
            status, message = v.verdict, v.message
            if v.verdict == "unsupported":
                pass
            elif clause in excluded:
                d = excluded[clause]
                status, message = (
                    "unsupported",
                    f"only cases outside the scope {d.name} exercise {clause}: {d.reason}",
                )
            elif clause not in v.clauses:
                status = "pass"
                message = (
                    ""
                    if v.verdict == "pass"
                    else f"holds; the row's {v.verdict} is about {', '.join(v.clauses)}"
                )
            owner = next(((a, n) for (a, n), c in CLAUSES.items() if c == clause), None)
            if status not in ("bug", "error", "unsupported") and owner is not None and owner[0] in names:
                axis, name = owner
                seen = names[axis]
                if seen != "any" and name not in seen.split("|"):
                    status = "unsupported"
                    message = f"{clause} defines {axis}={name}; the implementation follows {axis}={seen}"
            out.append(
                ClauseResult(
                    clause,
                    operation,
                    status,
                    examples=sum(o.examples for o in v.outcomes),
                    convention=self.convention(op),
                    message=message,
                    reproduction=v.reproduction if status in FINDINGS else "",
                    dtypes={o.dtype: o.status for o in v.outcomes},
                    text=clause_text(clause),
                )
            )
        return out

    def finding(self, operation: str) -> Finding:
        """The row's finding (CONF-12), as the report lists it."""
        v = self.verdict(operation)
        return Finding(
            operation=operation,
            verdict=v.verdict,
            clauses=list(v.clauses),
            severity=v.severity,
            detail=v.detail,
            equivalence=v.equivalence,
            working=dict(v.working),
            domain=v.domain,
            convention=self.convention(table.get(operation)) if v.verdict != "unsupported" else "",
            message=v.message,
            reproduction=v.reproduction,
            dtypes={o.dtype: o.status for o in v.outcomes},
            examples=sum(o.examples for o in v.outcomes),
        )

    def conventions(self) -> dict[str, str]:
        """Every axis detected or still open, as `names` spells it."""
        out = dict(self.known)
        out.update({a: "|".join(n) for a, n in self.candidates.items()})
        return {a: out[a] for a in AXES if a in out}

    def report(self, operations: Iterable[str] | None = None) -> Report:
        start = time.perf_counter()
        names = list(operations) if operations is not None else [op.name for op in table.TABLE]
        report = Report(
            target=self.adapter.target,
            library=self.adapter.library or self.adapter.target,
            library_version=self.adapter.library_version(),
            refsae_version=__version__,
            profile=self.profile,
            claims=dict(self.claims),
            absent=list(self.adapter.absent),
            domains=[
                {"name": d.name, "kind": d.kind, "reason": d.reason, "ops": ", ".join(d.ops)}
                for d in self.adapter.domains
                if any(op in names for op in d.ops)
            ],
        )
        for name in names:  # every verdict first: a later row may settle an earlier row's convention
            self.verdict(name)
        for name in names:
            report.clauses.extend(self.clause_results(name))
            report.findings.append(self.finding(name))
        report.conventions = self.conventions()
        report.seconds = time.perf_counter() - start
        return report


def conform(
    adapter: Adapter,
    *,
    profile: str | None = None,
    max_examples: int | None = None,
    operations: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
    seed: int | None = None,
    shrink: bool = True,
) -> Report:
    """Run the conformance suite on `adapter` and return its report (the Python API, CONF-5);
    `seed` draws other examples than the profile's (the self-test's false-alarm runs); `shrink=False`
    reports each failure as first found (faster; the self-test's kill runs)."""
    engine = Engine(
        adapter, profile=profile, max_examples=max_examples, progress=progress, seed=seed, shrink=shrink
    )
    return engine.report(operations)
