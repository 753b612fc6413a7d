"""Convention detection (CONF-3, CONF-4).

For an operation whose result depends on convention axes that are not known yet, every combination
of their names is probed: a few examples drawn under that combination (`conventions.pinned`), no
shrinking, in one dtype. The combinations on which the implementation agrees with the oracle
within tolerance are its matches: one match is the detected convention; several (the examples could
not tell them apart) are resolved by the claim, else by canonical order, and said; none is `none`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

from hypothesis import settings

from refsae.check import check
from refsae.conform.adapter import Adapter
from refsae.conventions import AXES, pinned
from refsae.ops import Operation

PROBE_EXAMPLES = 8
"""Examples per probed combination: the named conventions differ on almost every generic case
(sum vs mean by the factor d_in, tied vs untied by b_dec W_enc …), so a few suffice."""


@dataclass
class Detection:
    axes: tuple[str, ...]
    matches: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None

    @property
    def found(self) -> bool:
        return bool(self.matches)

    def choose(self, claims: dict[str, str]) -> dict[str, str]:
        """The claimed match if there is one, else the first in canonical order."""
        for m in self.matches:
            if all(claims.get(a, v) == v for a, v in m.items()):
                return m
        return self.matches[0]

    def note(self) -> str:
        if len(self.matches) <= 1:
            return ""
        alternatives = " or ".join(",".join(f"{a}={v}" for a, v in m.items()) for m in self.matches)
        return f"the examples could not tell {alternatives} apart"


def detect(
    op: Operation,
    adapter: Adapter,
    known: dict[str, str],
    dtype: str,
    *,
    examples: int = PROBE_EXAMPLES,
    profile: settings | None = None,
) -> Detection:
    """Probe every combination of `op`'s axes not in `known` (known ones stay pinned)."""
    free = tuple(a for a in op.convention_axes if a not in known)
    fixed = {a: known[a] for a in op.convention_axes if a in known}
    detection = Detection(free)
    for combo in product(*(AXES[a] for a in free)):
        names = dict(zip(free, combo, strict=True))
        instances = {} if adapter.instances else {"instances": False}
        with pinned(**fixed, **names, eps=adapter.eps, **instances):
            outcome = check(op, adapter, dtype, max_examples=examples, shrink=False, profile=profile)
        if outcome.status == "error":
            detection.error = outcome.failure
            return detection
        if outcome.status == "pass":
            detection.matches.append(names)
    return detection
