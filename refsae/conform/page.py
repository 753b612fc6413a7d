"""The published results (CONF-9, CONF-19): specs/conformance.md, regenerated from the reports.

    python -m refsae.conform.page conformance/reports specs/conformance.md

Inputs: every `conformance/reports/TARGET.json` (written by `refsae conform --json`, one per target,
from the libraries' nox sessions) and every `conformance/LIBRARY/findings.toml` (`refsae.conform.known`),
where the person who reproduced each finding by hand explains it, and, for a bug, gives the library's
file and line, whether the default configuration reaches it, a suggested fix, the upstream issue and
a reproduction that imports only the library, numpy and torch (`conformance/LIBRARY/repro/`).

The page has a summary table (operations per verdict and the detected conventions of each target),
then one **maintainer card** per library: its counts by verdict, each bug with its library-only
reproduction, the known bugs that no longer reproduce (`fixed`), the bugs its file does not list
(`new`), and every other finding with what it rests on; then the clause × target matrix. A finding
without an explanation is shown as not yet explained (`missing_explanations` names it); the page
says only what the latest reports observed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from refsae.checking import table
from refsae.conform.known import KnownFinding, annotate, load_all
from refsae.conform.markdown import finding_heading, quoted
from refsae.conform.report import Finding, Report
from refsae.conform.verdicts import MEANING, SEVERITIES, VERDICTS

SHORT = {
    "pass": "pass",
    "bug": "**bug**",
    "error": "**error**",
    "convention": "conv",
    "precision": "prec",
    "precondition": "pre",
    "tie": "tie",
    "unsupported": "·",
}
REPRODUCTION_LINES = 60
"""Reproductions up to this many lines are inlined; longer ones are in the target's own report."""
COUNTED = ("bug", "error", "convention", "precision", "precondition", "tie", "pass")


def load_reports(folder: Path) -> list[Report]:
    """Every `*.json` report in `folder`, ordered by target (refsae first)."""
    reports = [Report.from_dict(json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]
    return sorted(reports, key=lambda r: (r.target != "refsae", r.target))


def _findings(report: Report) -> list[Finding]:
    return [f for f in report.findings if f.verdict not in ("pass", "unsupported")]


def missing_explanations(reports: list[Report], known: list[KnownFinding]) -> list[tuple[str, str]]:
    """(target, operation) of every finding no entry of the known-findings files explains."""
    explained = {(k.target, k.operation) for k in known if not k.by_hand}
    return [
        (r.target, f.operation)
        for r in reports
        if r.target != "refsae"
        for f in _findings(r)
        if (r.target, f.operation) not in explained
    ]


def _count(findings: list[Finding]) -> dict[str, int]:
    return {v: sum(1 for f in findings if f.verdict == v) for v in COUNTED}


def _summary_table(reports: list[Report]) -> list[str]:
    lines = [
        "| target | library | version | " + " | ".join(COUNTED) + " | detected conventions | seconds |",
        "|---|---|---|" + "---|" * len(COUNTED) + "---|---|",
    ]
    for r in reports:
        n = _count(r.findings)
        conv = ", ".join(f"{a}=`{v}`" for a, v in r.conventions.items()).replace("|", "\\|") or "—"
        if r.absent:
            conv += "; no " + ", ".join(f"`{a}` (drawn as 0)" for a in r.absent)
        cells = [f"**{n[v]}**" if v in ("bug", "error") and n[v] else str(n[v]) for v in COUNTED]
        lines.append(
            f"| `{r.target}` | {r.library} | {r.library_version or '—'} | "
            + " | ".join(cells)
            + f" | {conv} | {r.seconds:.0f} |"
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


def _verified(k: KnownFinding) -> str:
    """`, run by nox: exit 1, BUG REPRODUCED (saev 0.1.0, torch 2.13.0+cpu)` from repro/results.json."""
    path = k.folder / "repro" / "results.json"
    if not path.is_file():
        return ""
    data = json.loads(path.read_text())
    result = data.get("results", {}).get(k.repro)
    if result is None:
        return ""
    versions = ", ".join(f"{n} {v}" for n, v in sorted(data.get("versions", {}).items()))
    return f"; last run: exit {result['exit']}, `{result['last_line']}` ({versions})"


def _script(k: KnownFinding) -> list[str]:
    path = k.repro_path
    if path is None or not path.is_file():
        return [f"*Reproduction `{k.repro}` missing.*" if k.repro else "*No library-only reproduction yet.*"]
    text = path.read_text(encoding="utf-8").strip()
    where = f"conformance/{k.library}/{k.repro}"
    head = [
        f"Reproduction with the library alone (`{where}`; exits 1 while the bug is there){_verified(k)}:",
        "",
    ]
    if len(text.splitlines()) > REPRODUCTION_LINES:
        return [*head[:-1], f" {len(text.splitlines())} lines, not inlined."]
    return [*head, "<details><summary>reproduction</summary>", "", "```python", text, "```", "", "</details>"]


UNTRIAGED = "(not in the known-findings file; not yet triaged)."
REACH = {
    True: "the default configuration reaches it",
    False: "the default configuration does not reach it",
    None: "default reach not stated",
}


def _bug(k: KnownFinding, f: Finding | None, texts: dict[str, str]) -> list[str]:
    severity = k.severity or (f.severity if f else "")
    reach = REACH[k.default]
    suite = "found by hand; the suite's cases do not reach it" if k.by_hand else ""
    what = f"bug ({severity or '?'}: {SEVERITIES.get(severity, '')})"
    head = f"- **`{k.target}` · `{k.operation}`** — {what}; {reach}"
    lines = [head + (f"; {suite}" if suite else "") + ".", ""]
    body = [k.summary, ""]
    clauses = list(k.clauses) or (f.clauses if f else [])
    body += [*quoted(clauses, texts), ""] if clauses else []
    if k.source:
        body += [f"Where: `{k.source}`.", ""]
    if k.fix:
        body += [f"Suggested fix: {k.fix}", ""]
    if k.upstream:
        body += [f"Upstream: {k.upstream}", ""]
    body += _script(k)
    indented = [("  " + line) if line else "" for item in body for line in item.split("\n")]
    return [*lines, *indented, ""]


def _card(library: str, reports: list[Report], known: list[KnownFinding], texts: dict[str, str]) -> list[str]:
    mine = [k for k in known if k.library == library]
    findings = {(r.target, f.operation): f for r in reports for f in _findings(r)}
    by_key = {(k.target, k.operation): k for k in mine if not k.by_hand}
    version = ", ".join(sorted({f"{r.library} {r.library_version}".strip() for r in reports}))
    counts = _count([f for r in reports for f in r.findings])
    lines = [f"### {library} ({version})", ""]
    names = ", ".join(f"`{r.target}`" for r in reports)
    total = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    lines += [f"**{total}** over {len(reports)} target{'s' * (len(reports) > 1)} ({names}).", ""]
    lines += [k.summary for k in mine if not k.operation] + (
        [""] if any(not k.operation for k in mine) else []
    )
    bugs = [k for k in mine if k.verdict == "bug" and (k.by_hand or findings.get((k.target, k.operation)))]
    bugs = [k for k in bugs if k.by_hand or findings[(k.target, k.operation)].verdict in ("bug", "error")]
    listed = {(k.target, k.operation) for k in bugs}
    new = [
        (t, f) for (t, op), f in findings.items() if f.verdict in ("bug", "error") and (t, op) not in listed
    ]
    if bugs or new:
        lines += ["#### Bugs", ""]
        for k in bugs:
            lines += _bug(k, findings.get((k.target, k.operation)), texts)
        for target, f in new:
            first = (f.message.splitlines() or [""])[0]
            lines += [
                f"- **`{target}` · `{f.operation}`** — {finding_heading(f)}, **new** " + UNTRIAGED,
                "",
                f"  {first}",
                "",
                f"  Suite's reproduction: `conformance/reports/{target}.md`.",
                "",
            ]
    fixed = [(r.target, op) for r in reports for op in r.fixed]
    if fixed:
        gone = ", ".join(f"`{t}` · `{op}`" for t, op in fixed)
        lines += ["#### Fixed", "", f"Known bugs that no longer reproduce: {gone}.", ""]
    others = [(t, f) for (t, _), f in findings.items() if f.verdict not in ("bug", "error")]
    if others:
        lines += ["#### Other findings (not bugs)", "", "| target | operation | verdict | on | explanation |"]
        lines.append("|---|---|---|---|---|")
        for target, f in others:
            entry = by_key.get((target, f.operation))
            text = entry.summary if entry else "*Not yet explained.*"
            on = ", ".join(f.clauses) or "—"
            lines.append(
                f"| `{target}` | `{f.operation}` | {finding_heading(f)} | {on} | {f.detail}. {text} |"
            )
        lines.append("")
    return lines


def render(reports: list[Report], known: list[KnownFinding], checkpoints: list[str] | None = None) -> str:
    """The page; `checkpoints` is the checkpoint section (`refsae.checkpoints.page.section`), placed
    before the clause matrix."""
    checkpoints = checkpoints or []
    for r in reports:
        annotate(r, known)
    texts = {c.clause: c.text for r in reports for c in r.clauses if c.text}
    profiles = sorted({r.profile for r in reports})
    libraries = sorted({r.library for r in reports if r.target != "refsae"})
    folders = sorted(
        {k.library for k in known} | {r.target.split(".")[0] for r in reports if r.target != "refsae"}
    )
    legend = [f"- `{v}`: {MEANING[v]}." for v in VERDICTS]
    lines = [
        "# Conformance of SAE libraries",
        "",
        "Generated by `nox -s conformance_page` (`python -m refsae.conform.page conformance/reports "
        "specs/conformance.md`) from the reports in `conformance/reports/`, which each library's nox "
        """session writes (`nox -s "conformance(library='sae_lens')"` …), and the known-findings files """
        "`conformance/LIBRARY/findings.toml`; do not edit it by hand. How the suite works: "
        "[conformance-suite.md](conformance-suite.md); the equivalences it names: "
        "[equivalences.md](equivalences.md).",
        "",
        f"{len(reports)} targets, {len(libraries)} libraries ({', '.join(libraries)}), "
        f"profile {', '.join(f'`{p}`' for p in profiles)}. Each finding (target × operation) has one "
        "verdict (CONF-12); only `bug` and `error` fail a run:",
        "",
        *legend,
        "",
        "Every bug below was reproduced with the library alone, by the script shown; nothing here is a "
        "claim about the libraries beyond what the reports and those scripts show.",
        "",
        "## Summary",
        "",
        "Operations per verdict, per target.",
        "",
        *_summary_table(reports),
        "",
        "## Maintainer cards",
        "",
    ]
    for folder in folders:
        mine = [r for r in reports if r.target.split(".")[0] == folder]
        if mine:
            lines += _card(folder, mine, known, texts)
    lines += checkpoints
    lines += [
        "## Clauses × targets",
        "",
        "`pass`; **bug**; **error**; `conv` convention; `prec` precision; `pre` precondition; `tie`; "
        "`·` unsupported.",
        "",
        *_matrix(reports),
    ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m refsae.conform.page REPORTS_DIR OUTPUT.md", file=sys.stderr)
        return 2
    folder, output = Path(args[0]), Path(args[1])
    reports = load_reports(folder)
    known = load_all(folder.parent)
    from refsae.checkpoints.page import load as load_checkpoints
    from refsae.checkpoints.page import section, unexplained

    Path(output).write_text(
        render(reports, known, section(folder.parent / "checkpoints", folder.parent.parent))
    )
    for loader, fixture in unexplained(*load_checkpoints(folder.parent / "checkpoints")):
        print(f"not yet explained: {loader} on {fixture}", file=sys.stderr)
    missing = missing_explanations(reports, known)
    for target, op in missing:
        print(f"not yet explained: {target} {op}", file=sys.stderr)
    print(f"wrote {output}: {len(reports)} reports, {len(known)} known findings, {len(missing)} unexplained")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
