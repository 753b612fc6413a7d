"""`Operation`: one row of the operation table (OPS-1), and how a row calls a function.

Each row names the operation, the case strategy, the dtypes it is checked in, the error bound that
the tolerance rule turns into an allowed error, the spec clauses it checks and the options of its
canonical example. Its oracle and torch functions are found by the row's name in the modules of its
family (`refsae.oracle.<family>`, `refsae.torch.<family>`) unless the row names others. Rows live
in `refsae.checking.rows.<family>`; `refsae.checking.table` gathers them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking.tolerances import DTYPES, Bound
from refsae.conventions import AXES, CORE_AXES, OPTION_KEYS


def as_outputs(result: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Name an operation's result: one array, a tuple in `names` order, or a mapping / `Gradients`;
    a mapping of mappings is flattened to dotted names (`param.W_enc`)."""
    if isinstance(result, oracle.Gradients):
        return result.as_dict()
    if hasattr(result, "as_dict"):
        result = result.as_dict()
    if isinstance(result, Mapping):
        flat: dict[str, Any] = {}
        for key, value in result.items():
            if isinstance(value, Mapping):
                flat.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        return flat
    if isinstance(result, tuple):
        return dict(zip(names, result, strict=True))
    return {names[0]: result}


def _keyword_only(fn: Callable[..., Any]) -> frozenset[str]:
    """The keyword-only parameters of `fn` (options; arrays are positional)."""
    params = inspect.signature(fn).parameters.values()
    return frozenset(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


Outputs = dict[str, np.ndarray]
"""An operation's outputs by name (float64)."""

Bounds = dict[str, Bound | None]
"""A `Bound` per output, or None where the result must be exact."""

BoundsFn = Callable[[Case, Outputs], Bounds]
"""(case, oracle outputs) -> a `Bound` per output, or None where the result must be exact."""


def by_name(*args: Any, **kwargs: Any) -> NoReturn:
    """The default `oracle` and `torch` of a row: the function of the row's name in the module of the
    row's family (`refsae.oracle.<family>`, `refsae.torch.<family>`), which the table puts in its place
    (`refsae.checking.table.resolve`). Called directly, the row was not resolved."""
    raise RuntimeError("a row's function is found by name when the table is built (table.resolve)")


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One row of the table, by keyword (OPS-1). `oracle` and `torch` default to the functions of the
    row's name in its family's modules; `example` holds the options of the row's canonical example
    (`refsae.checking.examples.canonical_case`)."""

    name: str
    summary: str
    clauses: tuple[str, ...]
    arrays: tuple[str, ...]
    outputs: tuple[str, ...]
    cases: Callable[[str], st.SearchStrategy[Case]]
    bounds: BoundsFn
    example: Mapping[str, Any] = field(default_factory=dict)
    """Keyword options of the row's canonical example: a small valid input (the error-input tests)."""
    dtypes: tuple[str, ...] = DTYPES
    oracle: Callable[..., Any] = by_name
    """The definition; by default `refsae.oracle.<family>.<name>`."""
    torch: Callable[..., Any] = by_name
    """refsae.torch's implementation; by default `refsae.torch.<family>.<name>`."""
    family: str = ""
    """The module of `refsae.checking.rows` that holds the row (set by the table)."""
    compare_via: Callable[[Case, dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    """Optional: compare through a float64 function of the outputs instead of the outputs themselves
    (e.g. the objective at a returned minimiser, where any minimiser is valid). Applied to both sides;
    `bounds` then describes the projected outputs."""
    edge_clauses: tuple[tuple[str, Callable[[Case], bool]], ...] = ()
    """Clauses about an edge case (a zero decoder row, an instance with no dead latent), each with the
    predicate telling whether a case exercises it: a failure confined to such cases is the edge
    clause's alone, and the row's other clauses are judged on the other cases (CONF-10)."""
    edge_elements: Mapping[str, Callable[[Case], dict[str, np.ndarray]]] = field(default_factory=dict)
    """Optional, per edge clause: the output elements the clause is about (a boolean mask per output,
    e.g. the zero rows of `W_dec` for CON-2), so that its own check compares only those (CONF-10)."""
    working_bounds: BoundsFn | None = None
    """Optional: bounds of outputs the row requires exact (`None` in `bounds`: a count, a mean of
    counts) when they are computed in floating point at a working precision, e.g. a mean of B counts
    accumulated in float32. Only the conformance suite's precision check uses them (CONF-14): the
    spec still requires the exact value."""
    output_clauses: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Optional: the clauses an output's value is defined by, where they are fewer than the row's: a
    failure there contradicts those clauses only (CONF-10)."""
    fast: Callable[..., Any] | None = None
    """refsae.torch's fast path for the row, where it has one (a hand-written backward in reused
    buffers, an in-place constraint): checked against the oracle on the same cases and bounds as
    `torch` (PERF-1)."""

    def call(
        self, fn: Callable[..., Any], arrays: Mapping[str, Any], options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Call `fn` the canonical way: arrays positionally in `self.arrays` order, options by keyword.
        Dotted names group: `param.W_enc`, `param.b_enc` … become one positional mapping
        `{W_enc: …, b_enc: …}`, in the place of the group's first member."""
        positional: list[Any] = []
        groups: dict[str, dict[str, Any]] = {}
        for k in self.arrays:
            if "." not in k:
                positional.append(arrays[k])
                continue
            group, name = k.split(".", 1)
            if group not in groups:  # the group's place is that of its first member
                groups[group] = {}
                positional.append(groups[group])
            groups[group][name] = arrays[k]
        return as_outputs(fn(*positional, **options), self.outputs)

    @property
    def convention_axes(self) -> tuple[str, ...]:
        """The convention axes the result depends on, read off the oracle's keyword parameters: a
        `conventions` bundle covers the four core axes, `encode=`, `aux_decoder=` … one each (CONF-3)."""
        params = _keyword_only(self.oracle)
        bundle = CORE_AXES if "conventions" in params else {}
        return tuple(axis for axis in AXES if axis in params or axis in bundle)

    def convention_options(self) -> frozenset[str]:
        """The keyword options carrying this row's conventions: its axes, `conventions`, and `eps`
        where it is the normalised decoder's (Adam's `eps` is a hyperparameter, not a convention)."""
        params = _keyword_only(self.oracle)
        keys = {k for k in params if k in OPTION_KEYS}
        if "decoder" not in params:
            keys.discard("eps")
        return frozenset(keys)

    def reference(self, case: Case) -> dict[str, np.ndarray]:
        """The oracle's outputs on a case."""
        return {k: np.asarray(v) for k, v in self.call(self.oracle, case.arrays, case.options).items()}


def exact(*names: str) -> BoundsFn:
    """The bounds of a row whose outputs `names` must equal the oracle's exactly."""
    return lambda case, out: dict.fromkeys(names)


def exact_outputs(case: Case, out: dict[str, np.ndarray]) -> dict[str, Bound | None]:
    """Every output exact (a row whose outputs are copies, masks or counts)."""
    return dict.fromkeys(out)
