"""The checkpoint section of specs/conformance.md (CKPT-28): what each library's own loaders make of
the checkpoint fixtures, from `conformance/checkpoints/LIBRARY.json` (written by `library_check` in
the library's nox session) and the explanations in `conformance/checkpoints/explanations.toml`."""

from __future__ import annotations

import fnmatch
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Explanation:
    loader: str
    fixtures: tuple[str, ...]
    verdict: str
    summary: str
    source: str = ""
    repro: str = ""

    def explains(self, loader: str, fixture: str) -> bool:
        return loader == self.loader and any(fnmatch.fnmatch(fixture, p) for p in self.fixtures)


def load(folder: Path) -> tuple[list[dict[str, Any]], list[Explanation]]:
    """(reports, explanations) of `folder` (conformance/checkpoints)."""
    reports = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    path = folder / "explanations.toml"
    entries = tomllib.loads(path.read_text())["finding"] if path.is_file() else []
    explanations = [
        Explanation(
            e["loader"],
            tuple(e["fixtures"]),
            e["verdict"],
            " ".join(e["summary"].split()),
            e.get("source", ""),
            e.get("repro", ""),
        )
        for e in entries
    ]
    return reports, explanations


def unexplained(reports: list[dict[str, Any]], explanations: list[Explanation]) -> list[tuple[str, str]]:
    """(loader, fixture) of every non-pass finding no explanation covers."""
    missing = []
    for report in reports:
        for row in report["checks"]:
            failing = any(f["verdict"] != "pass" for f in row.get("findings", []))
            if failing and not any(e.explains(row["loader"], row["fixture"]) for e in explanations):
                missing.append((row["loader"], row["fixture"]))
    return missing


def _conversions(reports: list[dict[str, Any]]) -> list[str]:
    """Each fixture converted by `refsae checkpoint convert` and loaded by the target library (CKPT-27)."""
    lines: list[str] = []
    for report in reports:
        rows = report.get("conversions", [])
        if not rows:
            continue
        to = sorted({r["to"] for r in rows})
        lines += [
            "",
            f"Every other fixture converted to {', '.join(to)} (`refsae checkpoint convert`) and the written "
            f"files loaded by {report['library']}'s own loaders in its session (CKPT-27):",
            "",
            "| fixture | to | result |",
            "|---|---|---|",
        ]
        for r in rows:
            if "refused" in r:
                result = "refused: " + r["refused"].replace("|", "\\|")
            else:
                verdicts = sorted({(f["loader"], f["verdict"]) for f in r["findings"]})
                result = "; ".join(f"`{loader}` {verdict}" for loader, verdict in verdicts)
            lines.append(f"| `{r['fixture']}` | {r['to']} | {result} |")
    return lines


def section(folder: Path, root: Path) -> list[str]:
    """The Markdown lines of the section."""
    reports, explanations = load(folder)
    if not reports:
        return []
    lines = [
        "## Checkpoints: the libraries' own loaders",
        "",
        "Each library's loaders on the checkpoint fixtures (`tests/fixtures/checkpoints/`, written by the "
        "libraries' own save code), encode, decode and forward compared with the function the files "
        "define (checkpoints.md, CKPT-20..CKPT-24), in float64, on 16 rows. Generated from "
        "`conformance/checkpoints/LIBRARY.json` (`python -m refsae.checkpoints.library_check LIBRARY` in "
        "the library's nox session) and `conformance/checkpoints/explanations.toml`.",
        "",
        "| library | loader | fixtures | operations by verdict |",
        "|---|---|---|---|",
    ]
    for report in reports:
        per: dict[str, dict[str, int]] = {}
        fixtures: dict[str, set[str]] = {}
        for row in report["checks"]:
            if "loader" not in row:
                continue
            fixtures.setdefault(row["loader"], set()).add(row["fixture"])
            counts = per.setdefault(row["loader"], {})
            for f in row["findings"]:
                counts[f["verdict"]] = counts.get(f["verdict"], 0) + 1
        for loader, counts in per.items():
            shown = ", ".join(f"{v} {n}" for v, n in sorted(counts.items(), key=lambda kv: kv[0] != "pass"))
            lines.append(f"| {report['library']} | `{loader}` | {len(fixtures[loader])} | {shown} |")
    lines += _conversions(reports)
    refused = sorted(
        {(r["fixture"], r["key"], r["refused"]) for rep in reports for r in rep["checks"] if "refused" in r}
    )
    if refused:
        lines += ["", "Fixtures refsae refuses (architectures it does not define yet, issue 16): "]
        lines += [f"- `{f}`: key `{k}`: {why}" for f, k, why in refused]
    for e in explanations:
        rows = [
            (row, f)
            for rep in reports
            for row in rep["checks"]
            if "loader" in row and e.explains(row["loader"], row["fixture"])
            for f in row["findings"]
            if f["verdict"] != "pass"
        ]
        if not rows:
            continue
        lines += ["", f"### `{e.loader}`: {e.verdict}", "", e.summary, ""]
        if e.source:
            lines.append(f"Source: `{e.source}`.")
        if e.repro:
            ran = [rep["repro"][e.repro] for rep in reports if e.repro in rep.get("repro", {})]
            status = f" Last run: exit {ran[0]['exit']}, `{ran[0]['last_line']}`." if ran else ""
            lines.append(
                f"Reproduction (the library alone, exits 1 while the bug is there): `{e.repro}`.{status}"
            )
        lines += ["", "| fixture | operation | verdict | max error | reading |", "|---|---|---|---|---|"]
        for row, f in rows:
            message = [line.strip() for line in f.get("message", "").splitlines() if line.strip()]
            what = f.get("reading") or (message[-1] if message else "")
            what = " ".join(what.split(";")[0].split()).replace("|", "\\|")[:120]
            error = f"{f.get('max_error', 0):.3g}"
            lines.append(f"| `{row['fixture']}` | {f['operation']} | {f['verdict']} | {error} | {what} |")
    missing = unexplained(reports, explanations)
    if missing:
        lines += ["", "Not yet explained:"] + [f"- `{loader}` on `{fixture}`" for loader, fixture in missing]
    return [*lines, ""]
