"""A conformance report as Markdown (CONF-6): the verdicts, the clause table, then each finding with
the text of the clauses it is about, what the verdict rests on and its reproduction."""

from __future__ import annotations

from refsae.conform.report import Finding, Report, counts
from refsae.conform.verdicts import MEANING, SEVERITIES


def finding_heading(f: Finding) -> str:
    """`bug (degenerate)`, `convention: l1_batch_sum`, `precision: float32` …"""
    if f.verdict == "bug" and f.severity:
        return f"bug ({f.severity})"
    if f.verdict in ("convention", "tie") and f.equivalence:
        return f"{f.verdict}: `{f.equivalence}`"
    if f.verdict == "precision" and f.working:
        return "precision: " + ", ".join(_working(d, w) for d, w in f.working.items())
    if f.verdict == "precondition" and f.domain:
        return f"precondition: `{f.domain}`"
    return f.verdict


def _working(call: str, working: str) -> str:
    dtype, _, how = working.partition(" ")
    if how == "inputs":
        return f"{dtype} inputs in {call}"
    if how == "declared":
        return f"{dtype} arithmetic in {call} (declared)"
    return f"{dtype} arithmetic in {call}"


def quoted(clauses: list[str], texts: dict[str, str]) -> list[str]:
    """Each clause quoted from its spec page, one blockquote line each."""
    return [f"> {c}: {texts[c]}" if texts.get(c) else f"> {c}" for c in clauses]


def report_markdown(report: Report) -> str:
    version = f" {report.library_version}" if report.library_version else ""
    texts = {c.clause: c.text for c in report.clauses}
    lines = [
        f"# Conformance of `{report.target}` ({report.library}{version})",
        "",
        f"refsae {report.refsae_version}, profile `{report.profile}`, {report.seconds:.0f} s. "
        f"Operations: **{counts(report.verdicts)}**. Clauses: {counts(report.summary)}.",
        "",
    ]
    if report.conventions:
        detected = ", ".join(f"{k}=`{v}`" for k, v in report.conventions.items())
        lines += [f"Detected conventions: {detected}.", ""]
    if report.absent:
        names = ", ".join(f"`{a}`" for a in report.absent)
        lines += [f"The library has no {names}: every case draws it as 0 (CONF-11).", ""]
    if report.claims:
        lines += ["Claimed: " + ", ".join(f"{k}=`{v}`" for k, v in report.claims.items()) + ".", ""]
    for d in report.domains:
        lines += [f"Declared {d['kind']} `{d['name']}` on {d['ops']}: {d['reason']}.", ""]
    if report.fixed:
        lines += [
            "Fixed (known bugs that no longer reproduce): " + ", ".join(f"`{o}`" for o in report.fixed),
            "",
        ]
    seen = sorted({c.status for c in report.clauses} | {f.verdict for f in report.findings})
    lines += ["Verdicts: " + "; ".join(f"`{v}`: {MEANING[v]}" for v in seen if v in MEANING) + ".", ""]
    lines += [
        "| clause | operation | verdict | convention | examples | dtypes |",
        "|---|---|---|---|---|---|",
    ]
    for c in report.clauses:
        dtypes = ", ".join(f"{d}: {st}" for d, st in c.dtypes.items())
        convention = c.convention.replace("|", "\\|")  # `a|b` inside a table cell
        row = (c.clause, c.operation, c.status, convention, str(c.examples), dtypes)
        lines.append("| " + " | ".join(row) + " |")
    for f in report.findings:
        if f.verdict in ("pass", "unsupported"):
            continue
        known = f" — {f.known}" if f.known else ""
        lines += ["", f"## `{f.operation}`: {finding_heading(f)}{known}", ""]
        lines += [*quoted(f.clauses, texts), ""]
        if f.severity:
            lines += [f"Severity: {f.severity} ({SEVERITIES[f.severity]}).", ""]
        if f.detail:
            lines += [f"{f.detail}.", ""]
        if f.convention:
            lines += [f"Conventions: {f.convention}.", ""]
        if f.message.strip():
            lines += ["```", f.message.strip(), "```"]
        if f.reproduction:
            lines += ["", "Reproduction:", "", "```python", f.reproduction.strip(), "```"]
    return "\n".join(lines) + "\n"
