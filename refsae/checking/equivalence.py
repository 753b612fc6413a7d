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
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from refsae.cases import Case

__all__ = ["Equivalence", "EquivalenceKind", "Reference"]

EquivalenceKind = Literal["convention", "tie"]

Reference = Callable[[Any, Case, Mapping[str, Any]], dict[str, np.ndarray]]
"""(row, case, parameters) -> the row's outputs under the equivalence, float64. `row` is the
`Operation` (its `reference(case)` is the spec's outputs); `parameters` are the equivalence's
`parameters` updated with those the adapter declares (`Adapter.equivalence_parameters`)."""


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

    def applies(self, operation: str) -> bool:
        return operation in self.rows

    def outputs(
        self, op: Any, case: Case, parameters: Mapping[str, Any] | None = None
    ) -> dict[str, np.ndarray]:
        """The row's float64 outputs under this equivalence."""
        params = {**self.parameters, **(parameters or {})}
        return {k: np.asarray(v, dtype=np.float64) for k, v in self.reference(op, case, params).items()}
