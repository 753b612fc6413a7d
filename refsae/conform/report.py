"""The conformance report: one entry per (clause, operation), as JSON and as Markdown (CONF-5)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("pass", "fail", "unsupported", "error")


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
    """Status per dtype checked."""


@dataclass
class Report:
    target: str
    library: str
    library_version: str
    refsae_version: str
    profile: str
    clauses: list[ClauseResult] = field(default_factory=list)
    conventions: dict[str, str] = field(default_factory=dict)
    """Detected name per convention axis (`none` where the library matches none)."""
    claims: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    absent: list[str] = field(default_factory=list)
    """Parameters the library does not have, drawn as zeros (CONF-11)."""

    @property
    def summary(self) -> dict[str, int]:
        return {s: sum(1 for c in self.clauses if c.status == s) for s in STATUSES}

    @property
    def ok(self) -> bool:
        """Nothing failed and nothing raised."""
        return self.summary["fail"] == 0 and self.summary["error"] == 0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["summary"] = self.summary
        return d

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        fields = {k: v for k, v in d.items() if k not in ("summary", "clauses")}
        return cls(**fields, clauses=[ClauseResult(**c) for c in d.get("clauses", [])])

    def to_markdown(self) -> str:
        s = self.summary
        version = f" {self.library_version}" if self.library_version else ""
        lines = [
            f"# Conformance of `{self.target}` ({self.library}{version})",
            "",
            f"refsae {self.refsae_version}, profile `{self.profile}`, {self.seconds:.0f} s: "
            f"**{s['pass']} pass, {s['fail']} fail, {s['error']} error, {s['unsupported']} unsupported**.",
            "",
        ]
        if self.conventions:
            detected = ", ".join(f"{k}=`{v}`" for k, v in self.conventions.items())
            lines += [f"Detected conventions: {detected}.", ""]
        if self.absent:
            names = ", ".join(f"`{a}`" for a in self.absent)
            lines += [f"The library has no {names}: every case draws it as 0 (CONF-11).", ""]
        if self.claims:
            lines += ["Claimed: " + ", ".join(f"{k}=`{v}`" for k, v in self.claims.items()) + ".", ""]
        lines += [
            "| clause | operation | status | convention | examples | dtypes |",
            "|---|---|---|---|---|---|",
        ]
        for c in self.clauses:
            dtypes = ", ".join(f"{d}: {st}" for d, st in c.dtypes.items())
            convention = c.convention.replace("|", "\\|")  # `a|b` inside a table cell
            row = (c.clause, c.operation, c.status, convention, str(c.examples), dtypes)
            lines.append("| " + " | ".join(row) + " |")
        seen: set[str] = set()
        for c in self.clauses:
            if c.status in ("fail", "error") and c.operation not in seen:
                seen.add(c.operation)
                lines += ["", f"## `{c.operation}`: {c.status}", "", "```", c.message.strip(), "```"]
                if c.reproduction:
                    lines += ["", "Reproduction:", "", "```python", c.reproduction.strip(), "```"]
        return "\n".join(lines) + "\n"
