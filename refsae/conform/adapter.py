"""The adapter protocol: how a library plugs into the conformance suite (CONF-1, CONF-2).

An adapter is a class with one method per operation it provides, named as the operation's row in
the table (`refsae.checking.table`), taking the row's arrays positionally in the row's order (canonical
layout: `W_enc (d_in, d_sae)`, `W_dec (d_sae, d_in)` whose rows are the dictionary vectors, batch first) and
its non-convention options by keyword, and returning the row's outputs (one array, a tuple in the
row's output order, or a mapping by output name). Arrays arrive as torch tensors of the case's dtype
on `device`; the adapter converts them to the library's layout (transposes, `nn.Linear` weights,
component axes), calls the library and converts back. What it does not define is `unsupported`.

Conventions (CONF-3): a method receives the convention options its signature names (`encode=`,
`aux_decoder=`, … ; `conventions=` stands for the four core axes, and `eps=` comes with `decoder=`),
and is then checked under every name of those axes. The axes it does not name are the library's
fixed choice: the method never receives them, and the suite detects which named convention the
library follows. `configurable = True` declares that every method takes every convention option,
as refsae.torch's functions do.

    class MyLibrary(Adapter):
        library = "my-library"                       # pip distribution, for the version
        claims = {"encode": "tied"}                   # what its docs say (checked, CONF-4)

        def encode(self, x, W_enc, b_enc, b_dec):     # the `encode` row's arrays
            sae = mylib.SAE(d_in=x.shape[-1], d_sae=W_enc.shape[1]).to(x.dtype)
            load(sae, W_enc=W_enc, b_enc=b_enc, b_dec=b_dec)
            return sae.encode(x)

A library that computes a row only on part of its cases declares that part as a `Domain` (a name, a
reason, the rows, a predicate on the case): `run` skips the other cases (`hypothesis.assume`), and
`domains` lists what the checks were narrowed to. Libraries built on `torch.nn.Module` subclass
`refsae.conform.module_adapter.ModuleAdapter`, which writes the loss and gradient rows from a
parameter map.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, ClassVar

import numpy as np

from refsae.cases import Case
from refsae.checking import table
from refsae.checking.implementations import to_numpy, to_tensor
from refsae.checking.operation import Operation
from refsae.conventions import CORE_AXES, DEFAULT_EPS


@dataclass(frozen=True)
class Domain:
    """Where a library computes a row, with a reason the report names (CONF-15).

    `kind="scope"`: the library cannot be asked outside it (its TopK loss has no sparsity term: only
    `l1_coefficient = 0`; it hard-codes the encoder scale 0.2): cases outside are skipped, and the
    clauses in `excludes` (those only the skipped cases exercise, e.g. RES-12's centred variant) are
    `unsupported`. `kind="precondition"`: the library's function accepts every case but its own code
    guarantees the domain before calling it (`unit_rows`: "the trainer renormalises the rows first"):
    the row is checked on every case, and only where it fails is it checked again inside the domain,
    on the cases `project` maps there; passing there is a `precondition` finding."""

    name: str
    reason: str
    ops: tuple[str, ...]
    """The rows it narrows (those the adapter provides)."""
    holds: Callable[[Case], bool]
    """True on the cases the library computes (the case's float64 NumPy arrays and all its options)."""
    kind: str = "scope"
    """`scope` or `precondition`."""
    project: Callable[[Case], Case] | None = None
    """A precondition's map of a drawn case into the domain (rows renormalised …)."""
    excludes: tuple[str, ...] = ()
    """Clauses of its rows that only cases outside a scope exercise: `unsupported`."""
    about: tuple[str, ...] = ()
    """The clauses a precondition finding is about (PAR-1 for unit rows); empty: the failing ones."""

    def __post_init__(self) -> None:
        if self.kind not in ("scope", "precondition"):
            raise ValueError(f"Domain kind must be 'scope' or 'precondition', got {self.kind!r}")
        if self.kind == "precondition" and self.project is None:
            raise ValueError(f"precondition {self.name!r} needs `project` (a map of a case into the domain)")

    def admits(self, operation: str, case: Case) -> bool:
        return operation not in self.ops or bool(self.holds(case))


class Adapter:
    """Base class of adapters; see the module docstring. Subclasses set the class attributes below."""

    name: ClassVar[str] = ""
    """The target's name in reports (defaults to the class name)."""
    library: ClassVar[str] = ""
    """The library's pip distribution name (its version goes in the report)."""
    dtypes: ClassVar[tuple[str, ...]] = ("float64", "float32")
    """The dtypes the library is checked in."""
    claims: ClassVar[Mapping[str, str]] = {}
    """Convention axis -> name the library documents; detection must agree (CONF-4)."""
    configurable: ClassVar[bool] = False
    """True: every method takes every convention keyword (no detection; every convention checked)."""
    instances: ClassVar[bool] = False
    """True: the methods accept an instance axis (x (batch, n_inst, d_in), W_enc (n_inst, d_in, d_sae)
    …, notation.md NOT-2); False (most libraries): cases are drawn without one."""
    absent: ClassVar[tuple[str, ...]] = ()
    """Parameters the library does not have (`("b_dec",)`: no decoder bias): the cases draw them as
    exact zeros, and the report says so (CONF-11). The methods still receive them (zeros)."""
    eps: ClassVar[float] = DEFAULT_EPS
    """The library's eps in `W_dec_j / (‖W_dec_j‖ + eps)` if it normalises in the forward pass."""
    domains: ClassVar[tuple[Domain, ...]] = ()
    """The parts of rows the library computes (`Domain`): `run` skips the cases outside a scope; a
    precondition is checked only where the row fails without it (CONF-15)."""
    working_precision: ClassVar[Mapping[str, tuple[str, str]]] = {}
    """Row -> (dtype, reason): where the library's source computes part of a row at a lower precision
    than the call's (`("float32", "the minimum is rounded with .to(torch.float32)")`), a mixed
    computation whose outputs are not values of that dtype. The suite still checks it: the row must
    pass within the bounds derived at that precision (CONF-14)."""
    equivalence_parameters: ClassVar[Mapping[str, Any]] = {}
    """Parameters of the library's equivalences (EQ-1), e.g. `{"target_l0": 20}`."""
    device: str = "cpu"

    @property
    def target(self) -> str:
        return self.name or type(self).__name__

    def library_version(self) -> str:
        """The installed version of `library` ("" when not installed or not named)."""
        if not self.library:
            return ""
        try:
            return metadata.version(self.library)
        except metadata.PackageNotFoundError:
            return ""

    def supports(self, operation: str) -> bool:
        return operation in table.BY_NAME and callable(getattr(self, operation, None))

    def operations(self) -> tuple[str, ...]:
        """The table's rows this adapter provides, in table order."""
        return tuple(op.name for op in table.TABLE if self.supports(op.name))

    def accepts(self, op: Operation) -> frozenset[str]:
        """The convention axes of `op` that the method takes as keywords (checked under every name,
        never detected): every axis when `configurable`, else those its signature names."""
        axes = frozenset(op.convention_axes)
        if self.configurable:
            return axes
        method = getattr(self, op.name, None)
        if not callable(method):
            return frozenset()
        kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        named = {p.name for p in inspect.signature(method).parameters.values() if p.kind in kinds}
        bundle = set(CORE_AXES) if "conventions" in named else set()
        return axes & (named | bundle)

    def options_for(self, op: Operation, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options the method receives: the non-convention ones and those of `accepts(op)`."""
        accepted = self.accepts(op)
        core = set(CORE_AXES) & set(op.convention_axes)

        def given(key: str) -> bool:
            if key not in op.convention_options():
                return True
            if key == "conventions":
                return core <= accepted
            return ("decoder" if key == "eps" else key) in accepted

        return {k: v for k, v in options.items() if given(k)}

    def to_array(self, a: np.ndarray, dtype: str) -> Any:
        """A canonical array as the method receives it (a torch tensor; override for other frameworks)."""
        return to_tensor(a, dtype, self.device)

    def to_numpy(self, value: Any) -> np.ndarray:
        """An output back to float64 NumPy."""
        return to_numpy(value)

    def row_arrays(self, operation: str) -> tuple[str, ...]:
        """The arrays of `operation`'s row, in the order its method receives them."""
        return table.get(operation).arrays

    def row_outputs(self, operation: str) -> tuple[str, ...]:
        """The outputs of `operation`'s row, in order."""
        return table.get(operation).outputs

    def preconditions(self, operation: str) -> tuple[Domain, ...]:
        """The preconditions declared for `operation`."""
        return tuple(d for d in self.domains if d.kind == "precondition" and operation in d.ops)

    def excluded_clauses(self, operation: str) -> dict[str, Domain]:
        """Clauses of `operation` a scope puts out of reach, with the scope."""
        return {c: d for d in self.domains if d.kind == "scope" and operation in d.ops for c in d.excludes}

    def check_domains(self, operation: str, case: Case) -> None:
        """Skip `case` (`hypothesis.assume`) where a declared scope of `operation` does not hold."""
        for domain in self.domains:
            if domain.kind == "scope" and not domain.admits(operation, case):
                from hypothesis import assume

                assume(False)

    def run(self, operation: str, case: Case) -> dict[str, np.ndarray]:
        """Call the method of `operation` on `case` (the checker's `Implementation` protocol), within
        the adapter's domains."""
        self.check_domains(operation, case)
        op = table.get(operation)
        arrays = {k: self.to_array(v, case.dtype) for k, v in case.arrays.items()}
        result = op.call(getattr(self, operation), arrays, self.options_for(op, case.options))
        return {k: self.to_numpy(v) for k, v in result.items()}
