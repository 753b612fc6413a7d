"""The `refsae` command (CHK-3) and the implementation adapter it drives (IMP-1)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from refsae.cases import Case
from refsae.checking import table
from refsae.checking.implementations import TorchImplementation, to_numpy, to_tensor
from refsae.cli import main


def test_check_prints_one_passing_row_per_operation_and_dtype(capsys: pytest.CaptureFixture[str]) -> None:
    """CHK-3: table rows, exit 0."""
    code = main(["check", "--ops", "encode,l0", "--dtypes", "float32,float16", "--max-examples", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "PASS" in line]
    assert len(rows) == 4 and "all operations pass" in out


def test_check_fast_runs_the_fast_paths_only(capsys: pytest.CaptureFixture[str]) -> None:
    """PERF-1, CHK-3: `--fast` checks `Operation.fast` of the selected rows and leaves out the others."""
    argv = ["check", "--fast", "--ops", "encode,loss_gradients", "--dtypes", "float32", "--max-examples", "5"]
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "refsae.torch.fast[cpu]" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "PASS" in line]
    assert [r.split("|")[1].strip() for r in rows] == ["loss_gradients"]


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--fast", "--ops", "encode"],
        ["check", "--ops", "nope"],
        ["check", "--dtypes", "float8"],
        ["check", "--max-examples", "0"],
        ["bogus"],
        ["check", "--device", "tpu"],
    ],
)
def test_usage_errors_exit_with_code_2(argv: list[str]) -> None:
    """CHK-3."""
    assert main(argv) == 2


def test_check_exits_1_when_an_operation_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """CHK-2, CHK-3: a broken torch function makes its row FAIL with a reproduction, exit 1."""
    import dataclasses

    broken = dataclasses.replace(
        table.get("l0"), torch=lambda f: (f >= 0).sum(dim=(0, -1)).double() / f.shape[0]
    )
    monkeypatch.setitem(table.BY_NAME, "l0", broken)
    code = main(["check", "--ops", "l0", "--dtypes", "float32", "--max-examples", "20"])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL" in out and "import numpy as np" in out


def test_the_console_script_runs_the_main_job() -> None:
    """CHK-3: `python -m refsae.cli` is what the `refsae` entry point calls."""
    result = subprocess.run(
        [sys.executable, "-m", "refsae.cli", "check", "--ops", "dead_fraction", "--max-examples", "3"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| dead_fraction | float64 | 3 |" in result.stdout


def test_clauses_command_reports_complete_coverage() -> None:
    """The clause index (OPS-1): every clause defined in specs/ is cited by a test or a table row."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert main(["clauses", "--root", root]) == 0


def test_torch_implementation_converts_cases_exactly_both_ways() -> None:
    """IMP-1: bfloat16 case values survive the round trip bit for bit; integers stay int64."""
    a = np.array([[1.0, -2.5, 0.0078125]])
    t = to_tensor(a, "bfloat16", "cpu")
    assert t.dtype == torch.bfloat16 and np.array_equal(to_numpy(t), a)
    assert to_tensor(np.array([1, 2]), "bfloat16", "cpu").dtype == torch.int64
    impl = TorchImplementation()
    out = impl.run(
        "encode",
        Case(
            {"x": a[:, :2], "W_enc": np.eye(2), "b_enc": np.zeros(2), "b_dec": np.zeros(2)},
            {"encode": "untied"},
            "bfloat16",
        ),
    )
    assert (
        out["f"].tolist() == [[1.0, 0.0]]
        and impl.supports("encode")
        and not impl.supports("no_such_operation")
    )


def test_checks_can_be_switched_off_for_benchmarks() -> None:
    """NOT-9: with REFSAE_CHECKS=0 a wrong shape is no longer caught by jaxtyping (numpy raises instead)."""
    code = (
        "import numpy as np, refsae.oracle as o\n"
        "try:\n    o.encode(np.ones((2, 3)), np.ones((4, 5)), np.ones(5), np.ones(3))\n"
        "except Exception as e:\n    print(type(e).__name__)"
    )
    env = {**os.environ, "REFSAE_CHECKS": "0"}
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    on = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "REFSAE_CHECKS"},
    )
    assert off.stdout.strip() == "ValueError" and on.stdout.strip() == "TypeCheckError"
