"""The published results page (specs/conformance-suite.md, CONF-9, CONF-19, CONF-20)."""

from __future__ import annotations

from pathlib import Path

from refsae.checkpoints.page import section
from refsae.conform import page
from refsae.conform.known import KnownFinding, load_all
from refsae.conform.report import ClauseResult, Finding, Report

ROOT = Path(__file__).resolve().parent.parent


def _report(target: str, verdicts: dict[tuple[str, str], str], conventions: dict[str, str]) -> Report:
    clauses = [
        ClauseResult(clause, operation, status, examples=4, convention="encode=tied", message=f"{status} msg",
                     reproduction="x = 1" if status == "bug" else "", text=f"the text of {clause}")
        for (operation, clause), status in verdicts.items()
    ]  # fmt: skip
    findings = {
        op: Finding(op, v, clauses=[c] if v != "pass" else [], severity="generic" if v == "bug" else "",
                    equivalence="l1_batch_sum" if v == "convention" else "", message=f"{v} msg",
                    detail=f"{v} detail")
        for (op, c), v in verdicts.items()
    }  # fmt: skip
    return Report(target, "lib", "1.0", "0.1.0", "ci", clauses, list(findings.values()), conventions)


def _known(tmp: Path, **fields: object) -> KnownFinding:
    return KnownFinding(library="lib", folder=tmp, **fields)  # type: ignore[arg-type]


def test_the_card_shows_each_bug_with_its_library_only_reproduction_and_other_findings_apart(
    tmp_path: Path,
) -> None:
    """CONF-19: counts by verdict; a bug with its file and line, default reach, fix, upstream, the
    quoted clause and the library-only script inlined; other verdicts in their own table."""
    (tmp_path / "repro").mkdir()
    (tmp_path / "repro" / "b.py").write_text("import lib\nprint('expected: 1 actual: 2')\n")
    a = _report("lib.a", {("encode", "ENC-1"): "pass", ("decode", "DEC-1"): "bug"}, {"encode": "tied"})
    b = _report("lib.b", {("total_loss", "LOSS-6"): "convention", ("l0", "MET-1"): "unsupported"}, {})
    known = [
        _known(tmp_path, target="lib.a", operation="decode", summary="Forgets b_dec.", verdict="bug",
               severity="generic", default=True, source="lib/sae.py:12", fix="add b_dec", repro="repro/b.py",
               upstream="https://example.org/issues/1"),
        _known(tmp_path, target="lib.a", operation="", summary="A note on the target."),
        _known(tmp_path, target="lib.b", operation="total_loss", summary="Sums λ over the batch.",
               verdict="convention"),
    ]  # fmt: skip
    text = page.render([a, b], known)
    assert "### lib (lib 1.0)" in text and "**1 bug, 1 convention, 1 pass**" in text
    assert "Forgets b_dec." in text and "the default configuration reaches it" in text
    assert "Where: `lib/sae.py:12`." in text and "Suggested fix: add b_dec" in text
    assert "https://example.org/issues/1" in text and "print('expected: 1 actual: 2')" in text
    assert "> DEC-1: the text of DEC-1" in text
    assert "| `lib.b` | `total_loss` | convention: `l1_batch_sum` | LOSS-6 |" in text and "Sums λ" in text
    assert "A note on the target." in text
    assert page.missing_explanations([a, b], known) == []
    assert "| encode | ENC-1 | pass | · |" in text and "| decode | DEC-1 | **bug** | · |" in text
    assert "| l0 |" not in text  # no target provides it: no row in the matrix


def test_a_bug_the_file_does_not_list_is_new_and_a_listed_bug_that_passes_is_fixed(tmp_path: Path) -> None:
    """CONF-20."""
    a = _report("lib.a", {("encode", "ENC-1"): "bug", ("decode", "DEC-1"): "pass"}, {})
    known = [_known(tmp_path, target="lib.a", operation="decode", summary="old", verdict="bug")]
    text = page.render([a], known)
    assert "**new** (not in the known-findings file" in text
    assert "Known bugs that no longer reproduce: `lib.a` · `decode`." in text
    assert page.missing_explanations([a], known) == [("lib.a", "encode")]


def test_the_committed_page_is_regenerated_from_the_committed_reports() -> None:
    """CONF-9: specs/conformance.md is the generator's output on conformance/, never edited by hand,
    and every finding of every library is explained."""
    reports = page.load_reports(ROOT / "conformance" / "reports")
    known = load_all(ROOT / "conformance")
    checkpoints = section(ROOT / "conformance" / "checkpoints", ROOT)
    assert (ROOT / "specs" / "conformance.md").read_text() == page.render(reports, known, checkpoints)
    assert page.missing_explanations(reports, known) == []
    libraries = {r.library for r in reports if r.target != "refsae"}
    assert len(libraries) >= 6, libraries
