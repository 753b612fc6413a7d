"""Known findings (CONF-20): what a library's file says the suite finds, and what changed.

Each library keeps `conformance/LIBRARY/findings.toml`, written by the person who reproduced the
findings by hand (the per-library expectation files of data-apis/array-api-tests are the model):

    [[finding]]
    target = "sparsify"
    operation = "auxk_loss_gradients"     # "" for a note on the target as a whole
    verdict = "bug"                       # the verdict the suite gives (CONF-12)
    clauses = ["AUXK-8"]
    severity = "generic"                  # bugs: generic | degenerate
    default = false                       # bugs: the library's default configuration reaches it
    source = "sparsify/fused_encoder.py:60"
    fix = "return the gradient of pre_acts too"
    repro = "repro/auxk_no_encoder_gradient.py"   # bugs: imports only the library, numpy and torch
    upstream = ""                         # the upstream issue, where one exists
    summary = "..."                       # one or two sentences, published on the page
    by_hand = false                       # a bug found by hand that the suite's cases do not reach

A run compares its findings with the file: a `bug` the file does not list is `new`; a bug the file
lists whose row no longer has a `bug` verdict is `fixed` (its operation is in `Report.fixed`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from refsae.conform.report import Report
from refsae.conform.verdicts import SEVERITIES, VERDICTS

__all__ = ["KnownFinding", "annotate", "load", "load_all", "verify"]

_KEYS = frozenset({
    "target", "operation", "summary", "verdict", "clauses", "severity", "default", "source", "fix",
    "repro", "upstream", "equivalence", "domain", "by_hand",
})  # fmt: skip


@dataclass(frozen=True)
class KnownFinding:
    library: str
    target: str
    operation: str
    summary: str
    verdict: str = ""
    clauses: tuple[str, ...] = ()
    severity: str = ""
    default: bool | None = None
    source: str = ""
    fix: str = ""
    repro: str = ""
    upstream: str = ""
    equivalence: str = ""
    domain: str = ""
    by_hand: bool = False
    folder: Path = field(default=Path("."), compare=False)

    @property
    def repro_path(self) -> Path | None:
        return self.folder / self.repro if self.repro else None


def _finding(library: str, folder: Path, f: dict[str, Any]) -> KnownFinding:
    unknown = set(f) - _KEYS
    where = f"{folder / 'findings.toml'}: finding {f.get('target')}/{f.get('operation')}"
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
    verdict = str(f.get("verdict", ""))
    if verdict and verdict not in VERDICTS:
        raise ValueError(f"{where}: verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    severity = str(f.get("severity", ""))
    if severity and severity not in SEVERITIES:
        raise ValueError(f"{where}: severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    default = f.get("default")
    return KnownFinding(
        library=library,
        target=str(f["target"]),
        operation=str(f.get("operation", "")),
        summary=" ".join(str(f.get("summary", "")).split()),
        verdict=verdict,
        clauses=tuple(str(c) for c in f.get("clauses", ())),
        severity=severity,
        default=None if default is None else bool(default),
        source=str(f.get("source", "")),
        fix=str(f.get("fix", "")),
        repro=str(f.get("repro", "")),
        upstream=str(f.get("upstream", "")),
        equivalence=str(f.get("equivalence", "")),
        domain=str(f.get("domain", "")),
        by_hand=bool(f.get("by_hand", False)),
        folder=folder,
    )


def load(path: Path) -> list[KnownFinding]:
    """The findings of one `findings.toml` (its folder names the library)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [_finding(path.parent.name, path.parent, f) for f in data.get("finding", [])]


def load_all(root: Path) -> list[KnownFinding]:
    """Every finding of every `root/*/findings.toml`."""
    return [f for path in sorted(root.glob("*/findings.toml")) for f in load(path)]


def annotate(report: Report, known: list[KnownFinding]) -> None:
    """Mark each of the report's findings `known` or `new`, and list the known bugs it no longer has
    as `fixed` (CONF-20). Only bugs are new or fixed: other verdicts are the library's choices."""
    mine = [k for k in known if k.target == report.target and k.operation and not k.by_hand]
    bugs = {k.operation for k in mine if k.verdict == "bug"}
    listed = {k.operation for k in mine}
    for f in report.findings:
        if f.verdict in ("pass", "unsupported"):
            continue
        f.known = "known" if f.operation in listed and (f.verdict != "bug" or f.operation in bugs) else "new"
    verdicts = {f.operation: f.verdict for f in report.findings}
    report.fixed = sorted(op for op in bugs if op in verdicts and verdicts[op] not in ("bug", "error"))


def verify(folder: Path, python: str = sys.executable) -> dict[str, dict[str, object]]:
    """Run every bug's library-only reproduction of `folder/findings.toml` with `python` (the
    library's venv) and return, per script, its exit status and last line: 1 and `BUG REPRODUCED`
    while the bug is there, 0 and `fixed` once it is gone (CONF-19)."""
    results: dict[str, dict[str, object]] = {}
    for k in load(folder / "findings.toml"):
        path = k.repro_path
        if k.verdict != "bug" or path is None:
            continue
        done = subprocess.run([python, str(path)], capture_output=True, text=True, timeout=600, check=False)
        lines = (done.stdout + done.stderr).strip().splitlines()
        results[k.repro] = {"exit": done.returncode, "last_line": lines[-1] if lines else ""}
    return results


def main(argv: list[str] | None = None) -> int:
    """`python -m refsae.conform.known conformance/LIBRARY`: run the library's reproductions in this
    interpreter (its venv) and write `conformance/LIBRARY/repro/results.json` with the library's version."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not (Path(args[0]) / "findings.toml").is_file():
        print("usage: python -m refsae.conform.known conformance/LIBRARY", file=sys.stderr)
        return 2
    folder = Path(args[0])
    results = verify(folder)
    versions = {}
    lines = (folder / "requirements.txt").read_text().splitlines()
    names = [re.split(r"[<>=!~\[; ]", line.strip())[0] for line in lines if line.strip() and line[0] != "#"]
    for name in [*names, "torch", "numpy"]:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    (folder / "repro").mkdir(exist_ok=True)
    out = {"versions": versions, "results": results}
    (folder / "repro" / "results.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    for script, r in results.items():
        print(f"{script}: exit {r['exit']}, {r['last_line']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
