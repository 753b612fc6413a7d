"""Built-in adapters of refsae.torch itself (CONF-6).

- `RefsaeAdapter` (target `refsae`): every row of the table, configurable, all four dtypes. It must
  pass every clause.
- `FixedRefsae` (targets `refsae.untied_mean` …): refsae.torch behind one fixed set of conventions,
  as a library with fixed conventions looks to the suite; detection must find the fixed ones. The
  mutants of the self-test (mutants.py) are built on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from refsae import ops
from refsae.cases import Case
from refsae.conform.adapter import Adapter
from refsae.conventions import Conventions
from refsae.tolerances import DTYPES


class RefsaeAdapter(Adapter):
    """refsae.torch, every operation, every convention."""

    name: ClassVar[str] = "refsae"
    library: ClassVar[str] = "refsae"
    dtypes: ClassVar[tuple[str, ...]] = DTYPES
    configurable: ClassVar[bool] = True
    instances: ClassVar[bool] = True

    def supports(self, operation: str) -> bool:
        return operation in ops.BY_NAME

    def function(self, operation: str) -> Callable[..., Any]:
        """The torch function of `operation` (a mutant overrides one)."""
        override = getattr(self, operation, None)
        return override if callable(override) else ops.get(operation).torch

    def run(self, operation: str, case: Case) -> dict[str, np.ndarray]:
        op = ops.get(operation)
        arrays = {k: self.to_array(v, case.dtype) for k, v in case.arrays.items()}
        result = op.call(self.function(operation), arrays, self.options_for(op, case.options))
        return {k: self.to_numpy(v) for k, v in result.items()}


def fixed_options(op: ops.Operation, options: Mapping[str, Any], c: Conventions) -> dict[str, Any]:
    """`options` with every convention option of `op` replaced by the one of `c`."""
    out = dict(options)
    for key in op.convention_options():
        out[key] = c if key == "conventions" else getattr(c, key)
    return out


class FixedRefsae(RefsaeAdapter):
    """refsae.torch with the conventions fixed (the suite does not pass them: it must detect them)."""

    configurable: ClassVar[bool] = False
    dtypes: ClassVar[tuple[str, ...]] = ("float64", "float32")
    conventions: ClassVar[Conventions] = Conventions()

    @property
    def target(self) -> str:
        return self.name or f"refsae[{self.conventions.label()}]"

    def run(self, operation: str, case: Case) -> dict[str, np.ndarray]:
        op = ops.get(operation)
        arrays = {k: self.to_array(v, case.dtype) for k, v in case.arrays.items()}
        options = fixed_options(op, self.options_for(op, case.options), self.conventions)
        result = op.call(self.function(operation), arrays, options)
        return {k: self.to_numpy(v) for k, v in result.items()}


def fixed(conventions: Conventions, name: str = "") -> FixedRefsae:
    """A `FixedRefsae` with `conventions` (and `name`)."""
    cls = type("FixedRefsae", (FixedRefsae,), {"conventions": conventions, "name": name})
    adapter: FixedRefsae = cls()
    return adapter
