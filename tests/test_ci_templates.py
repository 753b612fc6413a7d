"""The CI templates of examples/ci/ (specs/packaging.md, PKG-4): valid workflows whose commands are the
ones this repository supports: the pytest plugin's options, and a session list that the noxfile gives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "ci"


def _workflow(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    return loaded


def _steps(job: dict[str, Any]) -> list[str]:
    return [str(step.get("run", step.get("uses", ""))) for step in job["steps"]]


def test_the_library_template_installs_torch_first_then_runs_the_plugin_on_the_adapter() -> None:
    """PKG-4: torch before refsae (whose range keeps it, PKG-1), then the plugin with its options."""
    workflow = _workflow("library-conformance.yml")
    steps = _steps(workflow["jobs"]["conformance"])
    torch = next(i for i, s in enumerate(steps) if "install torch" in s)
    refsae = next(i for i, s in enumerate(steps) if "$REFSAE" in s)
    assert torch < refsae
    (plugin,) = [s for s in steps if "--refsae-target=" in s]
    from refsae.conform import pytest_plugin

    options = {o.split("=")[0] for o in plugin.split() if o.startswith("--refsae-")}
    source = Path(pytest_plugin.__file__).read_text(encoding="utf-8")
    assert options and all(f'"{o}"' in source for o in options), options
    assert ":" in workflow["env"]["TARGET"]  # module:Class, as `load` takes it (CONF-5)


def test_the_matrix_template_lists_the_noxfiles_matrix_sessions_with_its_own_command() -> None:
    """PKG-4: the list step's command, run here, gives the sessions tagged `matrix` as a JSON list,
    each of which the matrix job runs with `nox -s`."""
    workflow = _workflow("refsae-matrix.yml")
    (listing,) = [s for s in _steps(workflow["jobs"]["sessions"]) if "nox -t matrix" in s]
    command = listing.split("$(", 1)[1].rsplit(")", 1)[0]
    nox = str(Path(sys.executable).with_name("nox"))
    out = subprocess.run(
        command.replace("nox ", f"{nox} ", 1).replace("python -c", f"{sys.executable} -c"),
        shell=True, cwd=ROOT, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    sessions = json.loads(out.stdout)
    assert {"tests", "typecheck", "lint", "docs", "check", "package"} <= set(sessions), sessions
    assert (
        "conformance(library='sae_lens')" in sessions and "oldest" not in sessions and "bench" not in sessions
    )
    assert 'nox -s "${{ matrix.session }}"' in _steps(workflow["jobs"]["session"])
    assert workflow["jobs"]["session"]["strategy"]["matrix"]["session"].startswith("${{ fromJson(")
