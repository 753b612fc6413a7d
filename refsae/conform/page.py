"""The published results (CONF-9): specs/conformance.md, regenerated from the reports.

    python -m refsae.conform.page conformance/reports specs/conformance.md

Inputs: every `conformance/reports/TARGET.json` (written by `refsae conform --json`, one per target,
from the libraries' nox sessions) and every `conformance/LIBRARY/findings.toml`, where a person who
reproduced a discrepancy by hand explains it in one or two sentences:

    [[finding]]
    target = "saev"                    # a report's target
    operation = "renormalise_rows"     # a row of the table; "" for a note on the target as a whole
    summary = "normalize_w_dec divides each row by its norm with no guard, ..."

The page has a summary table (target × pass/fail/error/unsupported and the detected conventions), a
clause × target matrix, and under it every failing or erroring row of every target with its
explanation and its reproduction. A failing row without an explanation is listed as "not yet
explained" (and `missing_explanations` names it), an explanation whose row no longer fails is
dropped from the page: the page says only what the latest reports observed.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from refsae.checking import table
from refsae.conform.report import ClauseResult, Report

SHORT = {"pass": "pass", "fail": "**fail**", "error": "**error**", "unsupported": "·"}
REPRODUCTION_LINES = 60
"""Reproductions up to this many lines are inlined; longer ones are in the target's own report."""


@dataclass(frozen=True)
class Finding:
    library: str
    target: str
    operation: str
    summary: str


def load_reports(folder: Path) -> list[Report]:
    """Every `*.json` report in `folder`, ordered by target (refsae first)."""
    import json

    reports = [Report.from_dict(json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]
    return sorted(reports, key=lambda r: (r.target != "refsae", r.target))


def load_findings(root: Path) -> list[Finding]:
    """Every `[[finding]]` of every `root/*/findings.toml`."""
    out = []
    for path in sorted(root.glob("*/findings.toml")):
        data = tomllib.loads(path.read_text())
        for f in data.get("finding", []):
            summary = " ".join(str(f["summary"]).split())
            out.append(Finding(path.parent.name, str(f["target"]), str(f.get("operation", "")), summary))
    return out


def _failing(report: Report) -> dict[str, list[ClauseResult]]:
    """The failing or erroring rows of a report: operation -> its clause results."""
    rows: dict[str, list[ClauseResult]] = {}
    for c in report.clauses:
        if c.status in ("fail", "error"):
            rows.setdefault(c.operation, []).append(c)
    return rows


def missing_explanations(reports: list[Report], findings: list[Finding]) -> list[tuple[str, str]]:
    """(target, operation) of every failing row no finding explains (refsae's own excluded)."""
    explained = {(f.target, f.operation) for f in findings}
    return [
        (r.target, op)
        for r in reports
        if r.target != "refsae"
        for op in _failing(r)
        if (r.target, op) not in explained
    ]


def _summary_table(reports: list[Report]) -> list[str]:
    lines = [
        "| target | library | version | pass | fail | error | unsupported | detected conventions | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        s = r.summary
        conv = ", ".join(f"{a}=`{n}`" for a, n in r.conventions.items()).replace("|", "\\|") or "—"
        if r.absent:
            conv += "; no " + ", ".join(f"`{a}` (drawn as 0)" for a in r.absent)
        lines.append(
            f"| `{r.target}` | {r.library} | {r.library_version or '—'} | {s['pass']} | {s['fail']} | "
            f"{s['error']} | {s['unsupported']} | {conv} | {r.seconds:.0f} |"
        )
    return lines


def _matrix(reports: list[Report]) -> list[str]:
    """Clause × target: a row per (operation, clause) that some target other than refsae provides."""
    status = {(r.target, c.operation, c.clause): c.status for r in reports for c in r.clauses}
    provided = {(op, cl) for (t, op, cl), s in status.items() if t != "refsae" and s != "unsupported"}
    targets = [r.target for r in reports]
    lines = [
        "| operation | clause | " + " | ".join(f"`{t}`" for t in targets) + " |",
        "|---|---|" + "---|" * len(targets),
    ]
    for op in table.TABLE:
        for clause in op.clauses:
            if (op.name, clause) not in provided:
                continue
            cells = [SHORT.get(status.get((t, op.name, clause), "unsupported"), "?") for t in targets]
            lines.append(f"| {op.name} | {clause} | " + " | ".join(cells) + " |")
    return lines


def _discrepancies(reports: list[Report], findings: list[Finding]) -> list[str]:
    lines: list[str] = []
    by_key = {(f.target, f.operation): f for f in findings}
    for r in reports:
        notes = [f for f in findings if f.target == r.target and not f.operation]
        failing = _failing(r)
        if not failing and not notes:
            continue
        version = f" {r.library_version}" if r.library_version else ""
        lines += [f"### `{r.target}` ({r.library}{version})", ""]
        lines += [f"{n.summary}" for n in notes] + ([""] if notes else [])
        for op, results in failing.items():
            first = results[0]
            clauses = ", ".join(c.clause for c in results)
            lines += [f"**`{op}`** ({first.status}: {clauses}; convention {first.convention or '—'}).", ""]
            finding = by_key.get((r.target, op))
            lines += [finding.summary if finding else "*Not yet explained.*", ""]
            repro = first.reproduction.strip()
            if repro and len(repro.splitlines()) <= REPRODUCTION_LINES:
                lines += [
                    "<details><summary>reproduction</summary>",
                    "",
                    "```python",
                    repro,
                    "```",
                    "",
                    "</details>",
                ]
            elif repro:
                lines.append(
                    f"Reproduction ({len(repro.splitlines())} lines): `conformance/reports/{r.target}.md`."
                )
            elif first.message:
                lines += ["```", first.message.strip().splitlines()[0], "```"]
            lines.append("")
    return lines


def render(reports: list[Report], findings: list[Finding]) -> str:
    """The page's Markdown."""
    profiles = sorted({r.profile for r in reports})
    libraries = sorted({r.library for r in reports if r.target != "refsae"})
    lines = [
        "# Conformance of SAE libraries",
        "",
        "Generated by `nox -s conformance_page` (`python -m refsae.conform.page conformance/reports "
        "specs/conformance.md`) from the reports in `conformance/reports/`, which each library's nox "
        """session writes (`nox -s "conformance(library='sae_lens')"` …), and the explanations in """
        "`conformance/LIBRARY/findings.toml`; do not edit it by hand. How the suite works: "
        "[conformance-suite.md](conformance-suite.md).",
        "",
        f"{len(reports)} targets, {len(libraries)} libraries ({', '.join(libraries)}), "
        f"profile {', '.join(f'`{p}`' for p in profiles)}. A clause is `pass` when the row passes under "
        "the conventions detected for the target, `fail` when it does not (or when it matches no named "
        "convention, or contradicts what the library's docs claim), `error` when the library raised, and "
        "`·` (`unsupported`) when the target does not provide the row or follows another named "
        "convention than the one the clause defines. Each finding below was observed by the suite on "
        "the inputs shown and reproduced by hand; none is a claim about the libraries beyond that.",
        "",
        "## Summary",
        "",
        *_summary_table(reports),
        "",
        "## Clauses × targets",
        "",
        *_matrix(reports),
        "",
        "## Discrepancies",
        "",
        *_discrepancies(reports, findings),
    ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m refsae.conform.page REPORTS_DIR OUTPUT.md", file=sys.stderr)
        return 2
    folder, output = Path(args[0]), Path(args[1])
    reports = load_reports(folder)
    findings = load_findings(folder.parent)
    Path(output).write_text(render(reports, findings))
    missing = missing_explanations(reports, findings)
    for target, op in missing:
        print(f"not yet explained: {target} {op}", file=sys.stderr)
    print(f"wrote {output}: {len(reports)} reports, {len(findings)} findings, {len(missing)} unexplained")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
