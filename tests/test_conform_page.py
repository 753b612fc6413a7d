"""The published results page (specs/conformance-suite.md, CONF-9)."""

from __future__ import annotations

from pathlib import Path

from refsae.conform import page
from refsae.conform.report import ClauseResult, Report

ROOT = Path(__file__).resolve().parent.parent


def _report(target: str, statuses: dict[tuple[str, str], str], conventions: dict[str, str]) -> Report:
    clauses = [
        ClauseResult(
            clause,
            operation,
            status,
            examples=4,
            convention="encode=tied",
            message=f"{status} msg",
            reproduction="x = 1" if status == "fail" else "",
        )
        for (operation, clause), status in statuses.items()
    ]
    return Report(target, "lib", "1.0", "0.1.0", "ci", clauses, conventions)


def test_the_page_shows_every_failing_row_with_its_explanation_or_says_it_is_not_explained() -> None:
    """CONF-9."""
    a = _report("lib.a", {("encode", "ENC-1"): "pass", ("decode", "DEC-1"): "fail"}, {"encode": "tied"})
    b = _report("lib.b", {("encode", "ENC-1"): "fail", ("l0", "MET-1"): "unsupported"}, {"encode": "none"})
    findings = [
        page.Finding("lib", "lib.a", "decode", "Forgets b_dec (DEC-1)."),
        page.Finding("lib", "lib.a", "encode", "A stale explanation of a row that passes now."),
        page.Finding("lib", "lib.b", "", "A note on the target."),
    ]
    text = page.render([a, b], findings)
    assert "Forgets b_dec (DEC-1)." in text and "A note on the target." in text
    assert "stale explanation" not in text  # only what the latest reports observed
    assert "*Not yet explained.*" in text
    assert page.missing_explanations([a, b], findings) == [("lib.b", "encode")]
    assert "| encode | ENC-1 | pass | **fail** |" in text
    assert "| l0 |" not in text  # no target provides it: no row in the matrix
    assert "```python\nx = 1\n```" in text


def test_the_committed_page_is_regenerated_from_the_committed_reports() -> None:
    """CONF-9: specs/conformance.md is the generator's output on conformance/, never edited by hand,
    and every failing row of every library is explained."""
    reports = page.load_reports(ROOT / "conformance" / "reports")
    findings = page.load_findings(ROOT / "conformance")
    assert (ROOT / "specs" / "conformance.md").read_text() == page.render(reports, findings)
    assert page.missing_explanations(reports, findings) == []
    libraries = {r.library for r in reports if r.target != "refsae"}
    assert len(libraries) >= 6, libraries
