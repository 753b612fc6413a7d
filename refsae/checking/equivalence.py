"""`Equivalence`: a named reparametrisation of a row's definition (EQ-1; specs/equivalences.md).

Libraries often compute a row's mathematics under a different but stated parametrisation: an L1
penalty summed over the batch (the spec's `l1` with λ' = λ·B), a loss averaged over the components
(`loss / n_components`), a renormalisation guarded by an eps (`W_dec_j / (‖W_dec_j‖ + eps)`),
SAELens's TopK that selects on `z_j ‖W_dec_j‖` and decodes `f_j / ‖W_dec_j‖` (a normalised decoder with
the encoder rescaled). Each is an `Equivalence`: a name, the formula that relates it to the spec, the
clause that defines it, the rows it applies to and a float64 `reference` (built from the oracle) that
the row is checked against in its place. The conformance suite searches a row's equivalences before it
says that the row matches no named convention, and a row that passes under one is a `convention`
finding, not a failure (CONF-13).

A `tie` equivalence is the other rule at a kink (`z >= θ` where the spec says `z > θ`; another order
among equal k-th values): the two references differ only on exact ties, so a row that passes under it
and not under the spec differs only there (a `tie` finding, CONF-16).

Each family keeps its equivalences with its rows (`EQUIVALENCES` in `refsae.checking.rows.<family>`),
their float64 functions in `refsae.oracle.<family>`; `refsae.checking.table.EQUIVALENCES` gathers them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal

import numpy as np

from refsae.cases import Case

__all__ = [
    "Equivalence",
    "EquivalenceBounds",
    "EquivalenceKind",
    "Parameters",
    "Reference",
    "calling",
    "with_options",
]

EquivalenceKind = Literal["convention", "tie"]

Parameters = Mapping[str, Any]
"""An equivalence's parameters by name (`eps`, `target_l0` …)."""

Reference = Callable[[Any, Case, Mapping[str, Any]], dict[str, np.ndarray]]
"""(row, case, parameters) -> the row's outputs under the equivalence, float64. `row` is the
`Operation` (its `reference(case)` is the spec's outputs); `parameters` are the equivalence's
`parameters` updated with those the adapter declares (`Adapter.equivalence_parameters`)."""

EquivalenceBounds = Callable[[Any, Case, dict[str, np.ndarray], Mapping[str, Any]], dict[str, Any]]
"""(row, case, outputs under the equivalence, parameters) -> a `Bound` per output (None: exact), as a
row's `bounds` (OPS-1), for the equivalence's computation."""


@dataclass(frozen=True, kw_only=True)
class Equivalence:
    """One named equivalence of one or more rows (EQ-1)."""

    name: str
    """Short identifier, as reports print it: `l1_batch_sum`, `norm_plus_eps(1e-6)` …"""
    formula: str
    """How it relates to the spec, for a reader: "l1 with λ' = λ·B"."""
    clause: str
    """The clause of specs/equivalences.md that defines it (EQ-n)."""
    rows: tuple[str, ...]
    """The rows it applies to."""
    reference: Reference
    kind: EquivalenceKind = "convention"
    about: tuple[str, ...] = ()
    """The spec clauses whose definition it reparametrises (CON-1 for an eps in the renormalisation):
    a finding under it marks those of the row's clauses; empty: every clause the failure marks."""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """Default parameters of `reference` (an adapter may declare others, e.g. a library's target L0)."""
    bounds: EquivalenceBounds | None = None
    """The error bounds of the row's outputs under the equivalence, where the row's own do not hold
    (a penalty B times larger, latents scaled by the decoder norms); None: the row's bounds."""

    requires: tuple[str, ...] = ()
    """Parameters an adapter must declare (`Adapter.equivalence_parameters`) for the suite to search
    this equivalence: a library's own constants (its target L0, its iteration limit and tolerance),
    which the suite does not guess."""

    def searched_for(self, declared: Mapping[str, Any]) -> bool:
        """Whether an adapter declaring `declared` parameters gets this equivalence searched."""
        return all(p in declared for p in self.requires)

    def applies(self, operation: str) -> bool:
        return operation in self.rows

    def row(self, op: Any, parameters: Mapping[str, Any] | None = None) -> Any:
        """The row `op` with its bounds replaced by the equivalence's, where it has its own: what
        `check.compare` takes to compare an implementation's outputs with `outputs(op, case, …)`."""
        if self.bounds is None:
            return op
        bounds, params = self.bounds, {**self.parameters, **(parameters or {})}
        return replace(op, bounds=lambda case, out: bounds(op, case, out, params))

    def outputs(
        self, op: Any, case: Case, parameters: Mapping[str, Any] | None = None
    ) -> dict[str, np.ndarray]:
        """The row's float64 outputs under this equivalence."""
        params = {**self.parameters, **(parameters or {})}
        return {k: np.asarray(v, dtype=np.float64) for k, v in self.reference(op, case, params).items()}


def calling(functions: Mapping[str, Callable[..., Any]]) -> Reference:
    """The `reference` that calls, for each row it applies to, the float64 function `functions[row]`
    the canonical way (`Operation.call`: the case's arrays positionally, its options by keyword), with
    the equivalence's parameters as further keywords."""

    def reference(op: Any, case: Case, parameters: Parameters) -> dict[str, np.ndarray]:
        function = partial(functions[op.name], **parameters)
        outputs: dict[str, np.ndarray] = op.call(function, case.arrays, case.options)
        return outputs

    return reference


def with_options(case: Case, **options: Any) -> Case:
    """`case` with the given options replaced (its arrays and dtype unchanged)."""
    return replace(case, options={**case.options, **options})
