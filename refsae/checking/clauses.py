"""The clause index: which spec page defines each clause, and which tests and table rows cite it.

A clause is defined in `specs/*.md` by its bold ID (`**ENC-1**`); it is cited by any mention of its
ID in `tests/*.py` or in the `clauses` of a row of `refsae.checking.table.TABLE` (whose rows drive tests).
Coverage is complete when every defined clause is cited and every cited ID is defined.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
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
    for clause in sorted(index.defined, key=order):
        places = sorted(set(index.cited.get(clause, [])))
        lines.append(f"| {clause} | {index.defined[clause]} | {', '.join(places) or '**UNCITED**'} |")
    covered = len(index.defined) - len(index.uncited)
    lines.append(f"\n{covered}/{len(index.defined)} clauses cited")
    if index.undefined:
        lines.append(f"cited but never defined: {', '.join(index.undefined)}")
    if index.duplicates:
        lines.append(f"defined more than once: {', '.join(index.duplicates)}")
    return "\n".join(lines)


TEXTS = Path(__file__).with_name("clause_texts.json")
"""Every clause's page and text as the specs define them, shipped with the package so that a report
can quote the clauses it cites (CONF-6) and `refsae clauses ID` can print one without the repository
(PKG-3); `python -m refsae.checking.clauses` regenerates it from specs/ and a test keeps the two in
step."""

_ITEM = re.compile(r"^- \*\*([A-Z]+-\d+)\*\*\s*(.*)$")


def texts(root: Path) -> dict[str, dict[str, str]]:
    """Clause ID -> {"page": its spec page, "text": the list item that defines it, joined into one
    line}, from root/specs."""
    out: dict[str, dict[str, str]] = {}
    for page in sorted((root / "specs").glob("*.md")):
        current: str | None = None
        for line in page.read_text(encoding="utf-8").splitlines():
            m = _ITEM.match(line)
            if m:
                current = m.group(1)
                out[current] = {"page": page.name, "text": m.group(2).strip()}
            elif current is not None and line.startswith("  ") and line.strip():
                out[current]["text"] += " " + line.strip()
            else:
                current = None
    return out


@cache
def shipped() -> dict[str, dict[str, str]]:
    """The clause index shipped with the package (`TEXTS`): ID -> page and text."""
    if not TEXTS.exists():
        return {}
    loaded: dict[str, dict[str, str]] = json.loads(TEXTS.read_text(encoding="utf-8"))
    return loaded


def clause_text(clause: str) -> str:
    """The text of `clause` as its spec page defines it ("" when unknown)."""
    return shipped().get(clause, {}).get("text", "")


def clause_page(clause: str) -> str:
    """The spec page that defines `clause` (`encode.md`; "" when unknown)."""
    return shipped().get(clause, {}).get("page", "")


def order(clause: str) -> tuple[str, int]:
    """Sort key: prefix, then number (ENC-2 before ENC-10)."""
    prefix, _, number = clause.partition("-")
    return prefix, int(number) if number.isdigit() else 0


def shipped_report(ids: list[str]) -> str:
    """`ID (page): text` for each of `ids`, or the whole shipped index as a Markdown table."""
    index = shipped()
    if ids:
        return "\n\n".join(f"{c} ({index[c]['page']}): {index[c]['text']}" for c in ids)
    lines = ["| clause | page | text |", "|---|---|---|"]
    for clause in sorted(index, key=order):
        text = index[clause]["text"].replace("|", "\\|")
        lines.append(f"| {clause} | {index[clause]['page']} | {text} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m refsae.checking.clauses: regenerate clause_texts.json
    root = Path(__file__).resolve().parents[2]
    TEXTS.write_text(
        json.dumps(texts(root), indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
    )
