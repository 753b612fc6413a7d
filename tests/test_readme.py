"""README's two commands are the ones the project runs: CI runs the test command verbatim."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_readme_quickstart_has_exactly_two_commands_main_job_then_tests() -> None:
    commands = _quickstart_commands()
    assert len(commands) == 2
    assert commands[0].endswith("nox -s check") and "nox -s tests" in commands[1]
    assert all("-c constraints.txt" in c for c in commands)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    assert _quickstart_commands()[1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_python_examples_run_in_order() -> None:
    """The README's Python blocks are documentation that runs: executed in order, in one namespace."""
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 3
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert "update" in namespace and "outcome" in namespace
