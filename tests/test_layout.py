"""The layout holds (specs/checking.md, "Where an operation lives"; OPS-1): oracle/ and torch/ mirror
each other module for module, every row lives in the family module named as its twins and calls
them, modules stay small, and no module reaches into another's private names."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import refsae
from refsae.checking import table
from refsae.checking.operation import by_name

ROOT = Path(refsae.__file__).parent
TORCH_ONLY = {"model", "transcoder_model"}
"""refsae.torch modules without an oracle twin: the `SAE` and `Transcoder` nn.Modules (they add nothing
to the math)."""
MAX_LINES = 400
LONGER = {
    "conform/adapters/sparse_autoencoder.py": "17 rows of one library, each with its component axis "
    "(n_inst), its Adam with reset, its resampler and its training loop; the explanations are already "
    "in conformance/sparse_autoencoder/README.md",
}
"""Modules allowed over MAX_LINES, each with the reason."""


def _modules(package: str) -> dict[str, ModuleType]:
    pkg = importlib.import_module(package)
    return {
        info.name: importlib.import_module(f"{package}.{info.name}")
        for info in pkgutil.iter_modules(pkg.__path__)
        if not info.name.startswith("_") and not info.ispkg
    }


def _public(module: ModuleType) -> set[str]:
    names: list[str] = getattr(module, "__all__", [])
    return set(names)


def test_every_oracle_module_has_a_torch_twin_of_the_same_name_with_the_same_functions() -> None:
    oracle, torch_ = _modules("refsae.oracle"), _modules("refsae.torch")
    assert set(torch_) - set(oracle) == TORCH_ONLY
    for name, module in oracle.items():
        assert name in torch_, f"refsae.oracle.{name} has no twin refsae.torch.{name}"
        equivalences = set(getattr(module, "EQUIVALENCE_FUNCTIONS", ()))  # references only (EQ-1)
        missing = {f for f in _public(module) if callable(getattr(module, f))} - _public(torch_[name])
        missing -= equivalences
        classes = {f for f in missing if isinstance(getattr(module, f), type)}  # result types, NumPy-only
        assert missing == classes, f"refsae.torch.{name} lacks the twins of {sorted(missing - classes)}"


def test_the_oracle_functions_without_a_twin_are_public_and_have_no_torch_twin() -> None:
    """The definitions of named equivalences (EQ-1) are in their module's `__all__`, and refsae.torch,
    which implements the specification, has no function of their names."""
    oracle, torch_ = _modules("refsae.oracle"), _modules("refsae.torch")
    for name, module in oracle.items():
        for function in getattr(module, "EQUIVALENCE_FUNCTIONS", ()):
            assert function in _public(module), f"refsae.oracle.{name}.{function} is not in __all__"
            assert callable(getattr(module, function))
            assert not hasattr(torch_[name], function), f"refsae.torch.{name}.{function}"


def test_the_packages_reexport_every_name_of_their_modules_all() -> None:
    for package in ("refsae.oracle", "refsae.torch"):
        pkg = importlib.import_module(package)
        for module in _modules(package).values():
            for public in _public(module):
                assert getattr(pkg, public) is getattr(module, public), f"{package}.{public}"


def test_fast_paths_live_under_torch_fast_named_as_the_module_they_speed_up() -> None:
    fast = _modules("refsae.torch.fast")
    assert set(fast) <= set(_modules("refsae.torch"))
    for op in table.TABLE:
        if op.fast is not None:
            fn = getattr(op.fast, "func", op.fast)  # a functools.partial names its function
            module = fn.__module__
            assert module in (f"refsae.torch.fast.{op.family}", f"refsae.torch.{op.family}"), op.name


def test_every_row_lives_in_the_family_named_as_its_twins_and_calls_them_by_name() -> None:
    rows = _modules("refsae.checking.rows")
    assert set(rows) <= set(_modules("refsae.oracle"))
    assert [m.__name__.rsplit(".", 1)[1] for m in table.FAMILIES] == [
        m for m in dict.fromkeys(op.family for op in table.TABLE)
    ]
    for op in table.TABLE:
        assert op in rows[op.family].ROWS or any(o.name == op.name for o in rows[op.family].ROWS)
        assert op.oracle is getattr(importlib.import_module(f"refsae.oracle.{op.family}"), op.name)
        twin = getattr(importlib.import_module(f"refsae.torch.{op.family}"), op.name)
        assert op.torch is twin or getattr(op.torch, "func", None) is twin, op.name
        assert op.oracle is not by_name and op.torch is not by_name


def test_a_row_whose_function_is_missing_is_refused_when_the_table_is_built() -> None:
    row = dataclasses.replace(table.get("encode"), name="nope", oracle=by_name)
    with pytest.raises(LookupError, match=r"refsae\.oracle\.forward has no function 'nope'"):
        table.resolve(row, "forward")


@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py")))
def test_no_module_is_longer_than_the_limit_without_a_reason(path: str) -> None:
    lines = len((ROOT / path).read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES or path in LONGER, f"refsae/{path}: {lines} lines > {MAX_LINES}"


def test_the_allowed_exceptions_are_still_needed() -> None:
    for path in LONGER:
        assert len((ROOT / path).read_text(encoding="utf-8").splitlines()) > MAX_LINES, path


@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py")))
def test_no_module_imports_a_private_name_of_another_refsae_module(path: str) -> None:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    aliases: dict[str, str] = {}  # local name -> refsae module
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("refsae"):
            for alias in node.names:
                assert not (alias.name.startswith("_") and not alias.name.startswith("__")) or alias.name in (
                    "_typecheck",
                    "_validate",
                ), f"refsae/{path}: from {node.module} import {alias.name}"
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("refsae"):
                    aliases[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            pytest.fail(f"refsae/{path}: {node.value.id}.{node.attr} reaches into {aliases[node.value.id]}")


def test_every_folder_of_python_modules_is_a_package_that_a_wheel_ships() -> None:
    """A folder without `__init__.py` is a namespace package, which setuptools' `find_packages`
    (pyproject.toml) leaves out of the wheel although an editable install imports it."""
    folders = {p.parent for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts}
    missing = sorted(str(f.relative_to(ROOT.parent)) for f in folders if not (f / "__init__.py").exists())
    assert not missing, f"no __init__.py in {missing}"
