"""Built-in adapters of refsae.torch itself (CONF-6).

- `RefsaeAdapter` (target `refsae`): every row of the table, configurable, all four dtypes. It must
  pass every clause.
- `FixedRefsae` (targets `refsae.untied_mean` …): refsae.torch behind one fixed set of conventions,
  as a library with fixed conventions looks to the suite; detection must find the fixed ones. The
  mutants of the self-test (`refsae.conform.mutants`) are built on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from refsae.cases import Case
from refsae.checking import table
from refsae.checking.operation import Operation
from refsae.checking.tolerances import DTYPES
from refsae.conform.adapter import Adapter
from refsae.conventions import AXES, CORE_AXES, Conventions


class RefsaeAdapter(Adapter):
    """refsae.torch, every operation, every convention."""

    name: ClassVar[str] = "refsae"
    library: ClassVar[str] = "refsae"
    dtypes: ClassVar[tuple[str, ...]] = DTYPES
    configurable: ClassVar[bool] = True
    instances: ClassVar[bool] = True

    def supports(self, operation: str) -> bool:
        return operation in table.BY_NAME

    def function(self, operation: str) -> Callable[..., Any]:
        """The torch function of `operation` (a mutant overrides one)."""
        override = getattr(self, operation, None)
        return override if callable(override) else table.get(operation).torch

    def run(self, operation: str, case: Case) -> dict[str, np.ndarray]:
        op = table.get(operation)
        arrays = {k: self.to_array(v, case.dtype) for k, v in case.arrays.items()}
        result = op.call(self.function(operation), arrays, self.options_for(op, case.options))
        return {k: self.to_numpy(v) for k, v in result.items()}


def fixed_options(
    op: Operation, options: Mapping[str, Any], c: Conventions, others: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """`options` with every convention option of `op` replaced by the one of `c` (core axes, eps) or
    of `others` (an operation's own axes; default: the first name)."""
    out = dict(options)
    for key in op.convention_options():
        if key == "conventions":
            out[key] = c
        elif key in CORE_AXES or key == "eps":
            out[key] = getattr(c, key)
        else:
            out[key] = (others or {}).get(key, AXES[key][0])
    return out


class FixedRefsae(RefsaeAdapter):
    """refsae.torch with the conventions fixed (the suite does not pass them: it must detect them)."""

    configurable: ClassVar[bool] = False
    dtypes: ClassVar[tuple[str, ...]] = ("float64", "float32")
    conventions: ClassVar[Conventions] = Conventions()
    others: ClassVar[Mapping[str, str]] = {}
    """The operations' own conventions (`aux_decoder`, `values` …); default: each axis's first name."""

    @property
    def target(self) -> str:
        return self.name or f"refsae[{self.conventions.label()}]"

    def accepts(self, op: Operation) -> frozenset[str]:
        """None: the conventions are fixed (`fixed_options`), as in a library; the suite detects them."""
        return frozenset()

    def run(self, operation: str, case: Case) -> dict[str, np.ndarray]:
        self.check_domains(operation, case)
        op = table.get(operation)
        arrays = {k: self.to_array(v, case.dtype) for k, v in case.arrays.items()}
        options = fixed_options(op, self.options_for(op, case.options), self.conventions, self.others)
        result = op.call(self.function(operation), arrays, options)
        return {k: self.to_numpy(v) for k, v in result.items()}


def fixed(conventions: Conventions, name: str = "", others: Mapping[str, str] | None = None) -> FixedRefsae:
    """A `FixedRefsae` with `conventions`, the operations' own conventions `others`, and `name`."""
    body = {"conventions": conventions, "name": name, "others": dict(others or {})}
    cls = type("FixedRefsae", (FixedRefsae,), body)
    adapter: FixedRefsae = cls()
    return adapter
