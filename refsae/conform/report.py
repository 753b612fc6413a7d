"""The conformance report: one finding per operation and one entry per (clause, operation), as JSON
and as Markdown (CONF-6, CONF-12)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from refsae.conform.verdicts import FAILING, FINDINGS, MEANING, VERDICTS, fails

STATUSES = VERDICTS
"""A clause's status is its row's verdict where the finding is about it (CONF-10)."""


@dataclass
class ClauseResult:
    """The verdict on one clause as one operation checks it."""

    clause: str
    operation: str
    status: str
    examples: int = 0
    convention: str = ""
    """The detected conventions of the operation (`encode=untied`), `configurable`, `none` (it matches
    no named convention) or "" (the operation has no convention axis)."""
    message: str = ""
    reproduction: str = ""
    dtypes: dict[str, str] = field(default_factory=dict)
    """Status of the check under the spec per dtype (pass | fail | error)."""
    text: str = ""
    """The clause's text, quoted from its spec page."""


@dataclass
class Finding:
    """The verdict on one operation (CONF-12) and what it rests on."""

    operation: str
    verdict: str
    clauses: list[str] = field(default_factory=list)
    """The clauses the finding is about (the others of the row pass, CONF-10)."""
    severity: str = ""
    detail: str = ""
    equivalence: str = ""
    working: dict[str, str] = field(default_factory=dict)
    domain: str = ""
    convention: str = ""
    message: str = ""
    reproduction: str = ""
    dtypes: dict[str, str] = field(default_factory=dict)
    examples: int = 0
    known: str = ""
    """Against the library's known-findings file (CONF-20): `known`, `new` (a bug the file does not
    list), `fixed` (a bug it lists that no longer reproduces) or "" (no file)."""


@dataclass
class Report:
    target: str
    library: str
    library_version: str
    refsae_version: str
    profile: str
    clauses: list[ClauseResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    conventions: dict[str, str] = field(default_factory=dict)
    """Detected name per convention axis (`none` where the library matches none)."""
    claims: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    absent: list[str] = field(default_factory=list)
    """Parameters the library does not have, drawn as zeros (CONF-11)."""
    domains: list[dict[str, str]] = field(default_factory=list)
    """The adapter's declared domains: name, kind, reason, rows (CONF-15)."""
    fixed: list[str] = field(default_factory=list)
    """Operations of known bugs (CONF-20) whose row no longer has a bug verdict."""

    @property
    def summary(self) -> dict[str, int]:
        """Clauses per status."""
        return {s: sum(1 for c in self.clauses if c.status == s) for s in STATUSES}

    @property
    def verdicts(self) -> dict[str, int]:
        """Operations per verdict."""
        return {s: sum(1 for f in self.findings if f.verdict == s) for s in VERDICTS}

    @property
    def ok(self) -> bool:
        """No bug and no error (CONF-12)."""
        return not any(c.status in FAILING for c in self.clauses)

    def passes(self, *, strict: bool = False) -> bool:
        """No clause fails the run: bug and error; with `strict`, every finding (CONF-12)."""
        return not any(fails(c.status, strict=strict) for c in self.clauses)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["summary"] = self.summary
        d["verdicts"] = self.verdicts
        return d

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        fields = {k: v for k, v in d.items() if k not in ("summary", "verdicts", "clauses", "findings")}
        return cls(
            **fields,
            clauses=[ClauseResult(**c) for c in d.get("clauses", [])],
            findings=[Finding(**f) for f in d.get("findings", [])],
        )

    def to_markdown(self) -> str:
        from refsae.conform.markdown import report_markdown

        return report_markdown(self)


def counts(summary: dict[str, int]) -> str:
    """`3 pass, 1 bug, …` for the verdicts with a count (pass always shown)."""
    parts = [f"{n} {s}" for s, n in summary.items() if n or s == "pass"]
    return ", ".join(parts)


__all__ = ["FINDINGS", "MEANING", "STATUSES", "ClauseResult", "Finding", "Report", "counts"]
