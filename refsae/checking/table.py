"""The operation table: every row of every family, in one tuple (OPS-1).

A family is a module of `refsae.checking.rows` named as its twins `refsae.oracle.<family>` and
`refsae.torch.<family>`; it holds its case strategies, error bounds and `ROWS`. This module gathers
the rows in `FAMILIES` order, finds each row's oracle and torch functions by name where the row
does not name them, and checks that the table is well formed (unique names, every function found).
The property tests, `refsae check`, the conformance suite and the clause index all read `TABLE`.

Adding an operation: its oracle function (`refsae/oracle/<family>.py`, in `__all__`), its torch
twin (`refsae/torch/<family>.py`), its row (with cases and bounds) in
`refsae/checking/rows/<family>.py`, its spec clauses; a new family is also one line in `FAMILIES`.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType

from refsae.checking.equivalence import Equivalence
from refsae.checking.operation import Operation, by_name
from refsae.checking.rows import (
    auxk,
    batchtopk,
    constraints,
    dead,
    evaluation,
    folding,
    forward,
    gated,
    gradients,
    init,
    jumprelu,
    jumprelu_penalties,
    jumprelu_transcoder,
    losses,
    matryoshka,
    metrics,
    normalisation,
    optimizer,
    resample_update,
    resampling,
    sharded,
    topk,
    training,
    transcoder,
)

__all__ = ["BY_NAME", "EQUIVALENCES", "FAMILIES", "TABLE", "Operation", "equivalences_of", "get", "resolve"]

FAMILIES: tuple[ModuleType, ...] = (
    forward,
    losses,
    gradients,
    constraints,
    metrics,
    evaluation,
    folding,
    normalisation,
    optimizer,
    resample_update,
    training,
    dead,
    resampling,
    init,
    topk,
    sharded,
    jumprelu,
    jumprelu_penalties,
    batchtopk,
    matryoshka,
    gated,
    auxk,
    transcoder,
    jumprelu_transcoder,
)
"""The families in table order (the order of reports and of `refsae check`)."""


def resolve(op: Operation, family: str) -> Operation:
    """`op` with its family set and its oracle and torch functions found by name where it names none:
    `refsae.oracle.<family>.<name>` and `refsae.torch.<family>.<name>`."""
    found = {}
    for side in ("oracle", "torch"):
        if getattr(op, side) is by_name:
            module = importlib.import_module(f"refsae.{side}.{family}")
            if not callable(getattr(module, op.name, None)):
                raise LookupError(f"row {op.name!r}: refsae.{side}.{family} has no function {op.name!r}")
            found[side] = getattr(module, op.name)
    return dataclasses.replace(op, family=family, **found)


def _gather() -> tuple[Operation, ...]:
    rows = tuple(resolve(op, module.__name__.rsplit(".", 1)[1]) for module in FAMILIES for op in module.ROWS)
    names = [op.name for op in rows]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate row names: {sorted({n for n in names if names.count(n) > 1})}")
    return rows


TABLE: tuple[Operation, ...] = _gather()

BY_NAME: dict[str, Operation] = {op.name: op for op in TABLE}


def get(name: str) -> Operation:
    """The row called `name`; `KeyError` listing the known names otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no operation {name!r}; known: {', '.join(BY_NAME)}") from None


def _equivalences() -> tuple[Equivalence, ...]:
    found = tuple(eq for module in FAMILIES for eq in getattr(module, "EQUIVALENCES", ()))
    names = [eq.name for eq in found]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate equivalence names: {sorted({n for n in names if names.count(n) > 1})}")
    for eq in found:
        unknown = [r for r in eq.rows if r not in BY_NAME]
        if unknown:
            raise LookupError(f"equivalence {eq.name!r} names unknown rows {unknown}")
    return found


EQUIVALENCES: tuple[Equivalence, ...] = _equivalences()
"""Every family's named equivalences (EQ-1), in table order."""


def equivalences_of(name: str) -> tuple[Equivalence, ...]:
    """The equivalences that apply to the row called `name`."""
    return tuple(eq for eq in EQUIVALENCES if eq.applies(name))
