"""Convention detection (CONF-3, CONF-4).

For an operation whose result depends on convention axes that are neither known yet nor taken as
keywords by the adapter, every combination of their candidate names is probed: a few examples drawn
under that combination (`conventions.pinned`), no shrinking, in one dtype. The combinations on
which the implementation agrees with the oracle within tolerance are its matches. An axis on which
all matches agree is settled; an axis on which they differ (the examples of this row cannot tell
the names apart, e.g. `residual=` does not change a loss value) keeps the matching names as its
candidates for a later row to settle; no match at all is `none`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np
from hypothesis import settings

from refsae.cases import Case
from refsae.checking import table
from refsae.checking.check import check
from refsae.checking.equivalence import Equivalence
from refsae.checking.table import Operation
from refsae.conform.adapter import Adapter
from refsae.conventions import pinned

PROBE_EXAMPLES = 8
"""Examples per probed combination: the named conventions differ on almost every generic case
(sum vs mean by the factor d_in, tied vs untied by b_dec W_enc …), so a few suffice; a wrong
combination usually fails on its first example, so probing costs about one example per combination
plus `PROBE_EXAMPLES` per match."""


@dataclass
class Detection:
    """The matches of one probe over `axes`."""

    axes: tuple[str, ...]
    matches: list[dict[str, str]] = field(default_factory=list)
    equivalence: str = ""
    """The equivalence (EQ-1) under which the matches were found, when no combination matched the
    spec itself (CONF-13)."""
    error: str | None = None
    counterexample: Case | None = None
    """The case of `error` (as found, unshrunk)."""

    @property
    def found(self) -> bool:
        return bool(self.matches)

    def names(self, axis: str) -> tuple[str, ...]:
        """The names of `axis` among the matches, in canonical order of first appearance."""
        return tuple(dict.fromkeys(m[axis] for m in self.matches))

    def note(self) -> str:
        """Say which names the examples could not tell apart (empty when each axis is settled)."""
        open_ = [a for a in self.axes if len(self.names(a)) > 1]
        if not open_:
            return ""
        alternatives = "; ".join(f"{a}: {' or '.join(self.names(a))}" for a in open_)
        return f"the examples of this row could not tell apart {alternatives}"


def detect(
    op: Operation,
    adapter: Adapter,
    fixed: Mapping[str, object],
    candidates: Mapping[str, tuple[str, ...]],
    dtype: str,
    *,
    examples: int = PROBE_EXAMPLES,
    profile: settings | None = None,
    seed: int | None = None,
) -> Detection:
    """Probe every combination of `candidates` (axis -> names) with the `fixed` pins held; where none
    matches the spec, every combination again under each of the row's equivalences (CONF-13)."""
    axes = tuple(candidates)
    detection = Detection(axes)
    params = dict(adapter.equivalence_parameters)
    alternatives: list[tuple[str, Operation, Callable[[Case], dict[str, np.ndarray]] | None]] = [
        ("", op, None)
    ]
    alternatives += [
        (eq.name, eq.row(op, params), _reference(eq, op, params))
        for eq in table.equivalences_of(op.name)
        if eq.kind == "convention" and eq.searched_for(params)
    ]
    for name, row, reference in alternatives:
        for combo in product(*(candidates[a] for a in axes)):
            names = dict(zip(axes, combo, strict=True))
            with pinned(**fixed, **names):
                outcome = check(
                    row,
                    adapter,
                    dtype,
                    max_examples=examples,
                    shrink=False,
                    profile=profile,
                    seed=seed,
                    reference=reference,
                )
            if outcome.status == "error":  # an exception: kept, and said if nothing matches
                if detection.error is None:
                    detection.error, detection.counterexample = outcome.exception, outcome.counterexample
            elif outcome.status == "pass":
                detection.matches.append(names)
        if detection.matches:
            detection.equivalence = name
            break
    return detection


def _reference(
    eq: Equivalence, op: Operation, params: dict[str, Any]
) -> Callable[[Case], dict[str, np.ndarray]]:
    return lambda case: eq.outputs(op, case, params)
