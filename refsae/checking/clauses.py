"""The clause index: which spec page defines each clause, and which tests and table rows cite it.

A clause is defined in `specs/*.md` by its bold ID (`**ENC-1**`); it is cited by any mention of its
ID in `tests/*.py` or in the `clauses` of a row of `refsae.checking.table.TABLE` (whose rows drive tests).
Coverage is complete when every defined clause is cited and every cited ID is defined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DEFINITION = re.compile(r"\*\*([A-Z]+-\d+)\*\*")
MENTION = re.compile(r"\b([A-Z]{2,5}-\d+)\b")


@dataclass
class ClauseIndex:
    """Definitions (ID → page) and citations (ID → citing places)."""

    defined: dict[str, str] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    cited: dict[str, list[str]] = field(default_factory=dict)

    @property
    def uncited(self) -> list[str]:
        return sorted(c for c in self.defined if c not in self.cited)

    @property
    def undefined(self) -> list[str]:
        return sorted(c for c in self.cited if c not in self.defined)

    @property
    def complete(self) -> bool:
        return not (self.uncited or self.undefined or self.duplicates)


def build(root: Path) -> ClauseIndex:
    """Index the specs and citations of the project rooted at `root`."""
    from refsae.checking import table

    index = ClauseIndex()
    for page in sorted((root / "specs").glob("*.md")):
        for clause in DEFINITION.findall(page.read_text(encoding="utf-8")):
            if clause in index.defined:
                index.duplicates.append(clause)
            index.defined[clause] = page.name
    prefixes = {c.split("-")[0] for c in index.defined}
    for test in sorted((root / "tests").rglob("*.py")):
        for clause in MENTION.findall(test.read_text(encoding="utf-8")):
            if clause.split("-")[0] in prefixes:
                index.cited.setdefault(clause, []).append(str(test.relative_to(root)))
    for op in table.TABLE:
        for clause in op.clauses:
            index.cited.setdefault(clause, []).append(f"table.TABLE[{op.name}]")
    return index


def report(index: ClauseIndex) -> str:
    """A Markdown table of every clause and its citations, then what is missing."""
    lines = ["| clause | page | cited by |", "|---|---|---|"]
    for clause in sorted(index.defined, key=lambda c: (c.split("-")[0], int(c.split("-")[1]))):
        places = sorted(set(index.cited.get(clause, [])))
        lines.append(f"| {clause} | {index.defined[clause]} | {', '.join(places) or '**UNCITED**'} |")
    covered = len(index.defined) - len(index.uncited)
    lines.append(f"\n{covered}/{len(index.defined)} clauses cited")
    if index.undefined:
        lines.append(f"cited but never defined: {', '.join(index.undefined)}")
    if index.duplicates:
        lines.append(f"defined more than once: {', '.join(index.duplicates)}")
    return "\n".join(lines)
