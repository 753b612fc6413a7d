"""The package as another project gets it (specs/packaging.md, PKG-1..PKG-3): dependency ranges with
tested lower bounds, a wheel that passes `twine check`, and that wheel installed alone into a fresh
virtual environment beside an installed torch, run outside the source tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ("torch", "numpy", "hypothesis", "hypothesis-torch", "jaxtyping", "beartype", "safetensors")


def _pins(path: Path) -> dict[str, str]:
    """name -> version of each `name==version` line of a constraints file."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {Requirement(d).name.lower(): Requirement(d) for d in project["dependencies"]}


def test_the_runtime_dependencies_are_ranges_whose_lower_bounds_are_the_tested_oldest() -> None:
    """PKG-1: no pin; each lower bound is constraints-oldest.txt's pin, and this repository's own pins
    (constraints.txt) lie inside the ranges."""
    requirements, oldest, own = (
        _requirements(),
        _pins(ROOT / "constraints-oldest.txt"),
        _pins(ROOT / "constraints.txt"),
    )
    assert sorted(requirements) == sorted(RUNTIME)
    for name, requirement in requirements.items():
        operators = {s.operator for s in requirement.specifier}
        assert "==" not in operators and ">=" in operators, (name, str(requirement.specifier))
        lower = next(s.version for s in requirement.specifier if s.operator == ">=")
        assert Version(oldest[name]) == Version(lower), (name, lower, oldest[name])
        assert requirement.specifier.contains(own[name]), (name, own[name])
    torch = requirements["torch"].specifier
    assert torch.contains("2.13.0") and torch.contains("2.14.1") and not torch.contains("3.0.0")


def _run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, f"{argv}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build` of this checkout: an sdist, and a wheel built from it."""
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=out)
    return out


def test_the_sdist_and_wheel_build_and_pass_twine_check(dist: Path) -> None:
    """PKG-2."""
    files = sorted(dist.iterdir())
    assert sorted(f.suffix for f in files) == [".gz", ".whl"], files
    assert "PASSED" in _run(sys.executable, "-m", "twine", "check", "--strict", *files, cwd=dist)


def test_the_wheel_holds_the_package_its_clause_index_and_its_entry_points(dist: Path) -> None:
    """PKG-2: only `refsae` and its metadata; py.typed, the clause index, the script and the plugin."""
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points = z.read(info).decode()
    assert {n.split("/")[0] for n in names} == {"refsae", wheel.name.split("-py3")[0] + ".dist-info"}, names
    assert "refsae/py.typed" in names and "refsae/checking/clause_texts.json" in names
    assert "refsae = refsae.cli:main" in entry_points
    assert "[pytest11]" in entry_points and "refsae = refsae.conform.pytest_plugin" in entry_points


ADAPTER = """
from typing import ClassVar
import torch
from refsae.conform.module_adapter import ModuleAdapter

class MySAE(torch.nn.Module):
    def __init__(self, d_in: int, d_sae: int) -> None:
        super().__init__()
        self.encoder, self.decoder = torch.nn.Linear(d_in, d_sae), torch.nn.Linear(d_sae, d_in)

    def forward(self, x):
        f = torch.relu(self.encoder(x - self.decoder.bias))
        return f, self.decoder(f)

class MySAEAdapter(ModuleAdapter):
    name: ClassVar[str] = "my-sae"
    parameters: ClassVar[dict[str, str]] = {
        "W_enc": "encoder.weight.T", "b_enc": "encoder.bias",
        "W_dec": "decoder.weight.T", "b_dec": "decoder.bias",
    }

    def build(self, like, **options):
        return MySAE(*like["W_enc"].shape).to(like["W_enc"].dtype)

    def forward(self, x, W_enc, b_enc, W_dec, b_dec):
        return self.model(dict(W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=b_dec))(x)
"""


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the source tree: torch first (the user's), then the wheel alone, no extras;
    then pytest, which a project's own test suite brings. Returns the venv's bin folder."""
    venv = tmp_path_factory.mktemp("user") / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=venv.parent)
    bin_ = venv / "bin"
    pip = (bin_ / "python", "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt")
    _run(*pip, "torch==2.13.0", cwd=venv.parent)
    before = _run(bin_ / "python", "-c", "import torch; print(torch.__version__)", cwd=venv.parent)
    (wheel,) = dist.glob("*.whl")
    _run(*pip, wheel, cwd=venv.parent)
    after = _run(bin_ / "python", "-c", "import torch; print(torch.__version__)", cwd=venv.parent)
    assert after == before, (before, after)  # the user's torch is kept (PKG-1)
    _run(*pip, "pytest", cwd=venv.parent)
    return bin_


def _user_env(bin_: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PATH": f"{bin_}{os.pathsep}{env.get('PATH', '')}", "REFSAE_PROFILE": "ci"}


def test_the_installed_wheel_runs_outside_the_source_tree(installed: Path, tmp_path: Path) -> None:
    """PKG-3: the package imported is the venv's; `refsae check`, `refsae conform` (quoting the
    clauses it cites) and `refsae clauses` work with what the wheel ships."""
    env = _user_env(installed)
    where = _run(installed / "python", "-c", "import refsae; print(refsae.__file__)", cwd=tmp_path, env=env)
    assert Path(where.strip()).is_relative_to(installed.parent) and not Path(where.strip()).is_relative_to(
        ROOT
    )
    out = _run(installed / "refsae", "check", "--ops", "encode", "--max-examples", "5", cwd=tmp_path, env=env)
    assert "| encode | float64 | 5 |" in out and "FAIL" not in out, out
    report = tmp_path / "report.json"
    _run(
        installed / "refsae", "conform", "refsae", "--ops", "encode", "--json", report, cwd=tmp_path, env=env
    )
    texts = {c["clause"]: c["text"] for c in json.loads(report.read_text(encoding="utf-8"))["clauses"]}
    assert texts["ENC-2"].startswith("`tied` (the default)"), texts
    clause = _run(installed / "refsae", "clauses", "ENC-2", cwd=tmp_path, env=env)
    assert clause.startswith("ENC-2 (encode.md): `tied` (the default)")
    index = _run(installed / "refsae", "clauses", cwd=tmp_path, env=env)
    assert "| PKG-3 | packaging.md |" in index and "no specs/" in index


def test_a_scratch_project_runs_the_pytest_plugin_on_its_own_adapter(installed: Path, tmp_path: Path) -> None:
    """PKG-3, CONF-5: a ten-line adapter in a project of its own, `pytest --refsae-target=…`."""
    (tmp_path / "my_adapter.py").write_text(ADAPTER, encoding="utf-8")
    out = _run(
        installed / "python", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
        "--refsae-target=my_adapter:MySAEAdapter", "--refsae-ops=encode,forward", "--refsae-max-examples=5",
        cwd=tmp_path, env=_user_env(installed),
    )  # fmt: skip
    assert "passed" in out and "failed" not in out, out
    assert "skipped" in out  # ENC-3 (untied) and the decoder clauses it does not provide
