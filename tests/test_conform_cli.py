"""Three ways into one engine: the `refsae conform` command and the pytest plugin
(specs/conformance-suite.md, CONF-5, CONF-7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refsae.checking import table
from refsae.cli import main

pytest_plugins = ["pytester"]


def test_refsae_conform_refsae_exits_0_with_every_clause_of_every_row_passing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CONF-7: refsae.torch, every row, every convention, four dtypes, through the command and its report.
    Ten examples per row and dtype: the profile's examples of refsae.torch against the oracle are
    `tests/test_torch_matches_oracle.py`'s (every row, every dtype) and the published report's
    (`nox -s "conformance(library='refsae')"`); this checks the command's path over every clause."""
    path = tmp_path / "r.json"
    code = main(["conform", "refsae", "--json", str(path), "--quiet", "--max-examples", "10"])
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads(path.read_text())
    assert len(report["clauses"]) == sum(len(op.clauses) for op in table.TABLE)
    assert {c["status"] for c in report["clauses"]} == {"pass"}
    assert report["summary"]["pass"] == len(report["clauses"])
    assert all(set(c["dtypes"]) == set(table.get(c["operation"]).dtypes) for c in report["clauses"])
    assert "refsae: " in out and f"{len(table.TABLE)} pass (" in out
    assert report["verdicts"]["pass"] == len(table.TABLE)


def test_a_failing_target_exits_1_and_prints_each_failing_clause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CONF-5: exit 1; the Markdown report has the failure and its reproduction."""
    md = tmp_path / "r.md"
    target = "refsae.conform.mutants:mutant_encode_adds_b_dec"
    code = main(["conform", target, "--ops", "encode,decode", "--max-examples", "5", "--markdown", str(md)])
    captured = capsys.readouterr()
    assert code == 1
    assert "BUG (generic) encode (ENC-1, " in captured.out
    assert "1 pass, 1 bug" in captured.out  # operations: decode passes, encode has a bug
    text = md.read_text()
    assert (
        "## `encode`: bug (generic)" in text and "Reproduction:" in text and "oracle_outputs('encode'" in text
    )
    assert "> ENC-1: " in text  # the clause it is about, quoted
    assert "detecting the conventions of encode" in captured.err  # progress while it runs


def test_a_finding_that_is_not_a_bug_exits_0_and_1_under_strict(capsys: pytest.CaptureFixture[str]) -> None:
    """CONF-12: a precision finding (an L0 accumulated in float32) does not fail a run; `--strict`
    fails on every finding."""
    target = "refsae.conform.mutants:mutant_l0_in_float32"
    assert main(["conform", target, "--ops", "l0", "--max-examples", "10", "--quiet"]) == 0
    assert "PRECISION: float32 arithmetic in float64" in capsys.readouterr().out
    assert main(["conform", target, "--ops", "l0", "--max-examples", "10", "--quiet", "--strict"]) == 1


def test_known_findings_mark_a_bug_new_and_a_listed_bug_that_passes_fixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CONF-20: a bug the file does not list is `new`; a bug it lists whose row passes is `fixed`."""
    known = tmp_path / "findings.toml"
    target = "refsae.conform.mutants:mutant_encode_adds_b_dec"
    known.write_text(
        f'[[finding]]\ntarget = "{target}"\noperation = "decode"\nverdict = "bug"\nsummary = "x"\n'
    )
    out = tmp_path / "r.json"
    args = ["conform", target, "--ops", "encode,decode", "--max-examples", "5", "--quiet"]
    assert main([*args, "--known", str(known), "--json", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "BUG (generic) [new] encode" in printed and "FIXED decode" in printed
    report = json.loads(out.read_text())
    assert report["fixed"] == ["decode"]
    assert {f["operation"]: f["known"] for f in report["findings"]}["encode"] == "new"
    assert main([*args, "--known", str(tmp_path / "nope.toml")]) == 2


def test_quiet_prints_no_progress(capsys: pytest.CaptureFixture[str]) -> None:
    """CONF-5."""
    assert main(["conform", "refsae", "--ops", "l0", "--max-examples", "2", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["conform", "no_such_library"],
        ["conform", "refsae.conform.mutants:no_such_factory"],
        ["conform", "no.such.module:factory"],
        ["conform", "refsae.checking.table:TABLE"],  # not an adapter
        ["conform", "refsae", "--ops", "encode,nope"],
        ["conform", "refsae", "--max-examples", "0"],
        ["conform", "refsae", "--profile", "fast"],
        ["conform"],
    ],
)
def test_conform_usage_errors_exit_with_code_2(argv: list[str]) -> None:
    """CONF-5."""
    assert main(argv) == 2


ADAPTER = """
from typing import ClassVar
import torch
from refsae.conform import Adapter

class EncodeOnly(Adapter):
    name: ClassVar[str] = "encode-only"

    def encode(self, x, W_enc, b_enc, b_dec):
        return torch.relu((x - b_dec) @ W_enc + b_enc)
"""


def test_the_pytest_plugin_runs_one_test_per_clause(pytester: pytest.Pytester) -> None:
    """CONF-5: passing clauses pass, unsupported ones skip, a library's suite can host it."""
    pytester.makepyfile(my_adapter=ADAPTER)
    pytester.makepyfile(test_own="def test_the_librarys_own_test():\n    assert True\n")
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--refsae-target=my_adapter:EncodeOnly",
        "--refsae-ops=encode,decode",
        "--refsae-max-examples=3",
        "-v",
        "-rs",
    )
    result.assert_outcomes(passed=1 + 3, skipped=1 + 3)  # own test; ENC-1, ENC-2, TOL-1; ENC-3 + decode's 3
    result.stdout.fnmatch_lines(["*refsae[[]my_adapter:EncodeOnly[]]::encode::ENC-1 PASSED*"])
    result.stdout.fnmatch_lines(["*ENC-3 defines encode=untied*", "*does not provide decode*"])


def test_the_pytest_plugin_reports_a_failing_clause_with_its_reproduction(pytester: pytest.Pytester) -> None:
    """CONF-5."""
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--refsae-target=refsae.conform.mutants:mutant_decode_without_b_dec",
        "--refsae-ops=decode",
        "--refsae-max-examples=5",
    )
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["*bug: DEC-1 (decode)*", "*Reproduction:*", "*oracle_outputs('decode'*"])


def test_the_pytest_plugin_passes_a_finding_that_is_not_a_bug_unless_strict(
    pytester: pytest.Pytester,
) -> None:
    """CONF-12: a precision finding passes (its verdict in the test's properties); `--refsae-strict`
    fails it."""
    args = [
        "-p",
        "no:cacheprovider",
        "--refsae-target=refsae.conform.mutants:mutant_l0_in_float32",
        "--refsae-ops=l0",
        "--refsae-max-examples=10",
    ]
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=1)
    strict = pytester.runpytest_subprocess(*args, "--refsae-strict")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*precision: MET-1 (l0)*", "*working precision*"])


def test_the_pytest_plugin_rejects_an_unknown_target_as_a_usage_error(pytester: pytest.Pytester) -> None:
    """CONF-5."""
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--refsae-target=no_such_library")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown target 'no_such_library'*"])


def test_without_the_option_the_plugin_adds_nothing(pytester: pytest.Pytester) -> None:
    """CONF-5: installed with refsae, inert in every other test run."""
    pytester.makepyfile(test_own="def test_own():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
