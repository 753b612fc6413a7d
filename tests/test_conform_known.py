"""Known findings (specs/conformance-suite.md, CONF-19, CONF-20): each library's file lists what the
suite finds, every bug with a reproduction that needs only the library, and runs compare against it."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from refsae.checking import clauses
from refsae.conform.known import KnownFinding, annotate, load, load_all
from refsae.conform.report import Finding, Report
from refsae.conform.targets import BUILTIN
from refsae.conform.verdicts import VERDICTS

ROOT = Path(__file__).resolve().parent.parent
KNOWN = load_all(ROOT / "conformance")
BUGS = [k for k in KNOWN if k.verdict == "bug"]


def test_every_finding_names_a_builtin_target_a_row_and_a_verdict() -> None:
    """CONF-20: a finding with an operation is about one row of one built-in target, with its verdict."""
    from refsae.checking import table

    defined = clauses.build(ROOT).defined
    assert KNOWN and BUGS
    for k in KNOWN:
        assert k.target in BUILTIN, k
        if k.operation:
            assert k.operation in table.BY_NAME and k.verdict in VERDICTS, k
            assert set(k.clauses) <= set(defined), (k, set(k.clauses) - set(defined))


@pytest.mark.parametrize("k", BUGS, ids=[f"{k.target}-{k.operation}-{k.repro}" for k in BUGS])
def test_every_bug_has_its_severity_reach_source_fix_and_a_library_only_reproduction(k: KnownFinding) -> None:
    """CONF-19: what a maintainer needs to act: the severity, whether the default configuration reaches
    it, the library's file and line, a one-line fix, and a script importing only the library, numpy,
    torch and the standard library, which exits 1 while the bug is there."""
    assert k.severity in ("generic", "degenerate") and k.default is not None and k.source and k.fix, k
    path = k.repro_path
    assert path is not None and path.is_file(), k.repro
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    library = {"dictionary_learning", "sparsify", "saev", "sae_lens", "sparse_autoencoder", "overcomplete"}
    allowed = {"numpy", "torch", k.library} | library & {k.library} | set(sys.stdlib_module_names)
    assert "refsae" not in imported and imported <= allowed, imported - allowed
    assert "BUG REPRODUCED" in path.read_text() and "SystemExit" in path.read_text()


@pytest.mark.parametrize("library", sorted({k.library for k in BUGS}))
def test_every_bugs_reproduction_was_run_in_the_librarys_venv_and_reproduced(library: str) -> None:
    """CONF-19: `nox -s "conformance(library=…)"` runs each script and records its exit status."""
    data = json.loads((ROOT / "conformance" / library / "repro" / "results.json").read_text())
    for k in (k for k in BUGS if k.library == library):
        result = data["results"][k.repro]
        assert result == {"exit": 1, "last_line": "BUG REPRODUCED"}, (k.repro, result)
    assert data["versions"], "the versions the scripts ran against"


def test_a_known_bug_is_known_an_unlisted_bug_new_and_a_listed_bug_that_passes_fixed(tmp_path: Path) -> None:
    """CONF-20: only bugs are new or fixed; a listed convention stays known."""
    (tmp_path / "findings.toml").write_text(
        "\n".join(
            f'[[finding]]\ntarget = "t"\noperation = "{op}"\nverdict = "{v}"\nsummary = "s"'
            for op, v in [("encode", "bug"), ("decode", "bug"), ("l0", "precision")]
        )
    )
    known = load(tmp_path / "findings.toml")
    report = Report("t", "lib", "1", "0", "ci")
    report.findings = [
        Finding("encode", "bug"),
        Finding("decode", "pass"),
        Finding("l0", "precision"),
        Finding("forward", "bug"),
    ]
    annotate(report, known)
    assert [f.known for f in report.findings] == ["known", "", "known", "new"]
    assert report.fixed == ["decode"]


def test_a_findings_file_with_an_unknown_key_or_verdict_is_refused(tmp_path: Path) -> None:
    """CONF-20: a typo never silently drops a field."""
    path = tmp_path / "findings.toml"
    path.write_text('[[finding]]\ntarget = "t"\noperation = "l0"\nverdit = "bug"\nsummary = "s"\n')
    with pytest.raises(ValueError, match="unknown keys \\['verdit'\\]"):
        load(path)
    path.write_text('[[finding]]\ntarget = "t"\noperation = "l0"\nverdict = "fail"\nsummary = "s"\n')
    with pytest.raises(ValueError, match="verdict 'fail' is not one of"):
        load(path)


def test_the_shipped_clause_texts_are_the_specs_and_cover_every_clause() -> None:
    """CONF-6: reports quote the clauses they cite from `refsae/checking/clause_texts.json`, which
    `python -m refsae.checking.clauses` regenerates from specs/."""
    texts = clauses.texts(ROOT)
    assert json.loads(clauses.TEXTS.read_text()) == texts
    index = clauses.build(ROOT)
    assert set(index.defined) <= set(texts), sorted(set(index.defined) - set(texts))
    assert clauses.clause_text("PAR-3").startswith("A row with `w_j = 0` keeps its gradient")
    assert clauses.clause_page("PAR-3") == "constraints.md" and clauses.clause_page("NOPE-1") == ""
