"""The verdicts of the conformance suite (CONF-12): one per finding (target × operation).

| verdict | meaning | fails `refsae conform`? |
|---|---|---|
| `pass` | the row agrees with the spec under the conventions detected | no |
| `bug` | wrong under every named convention and equivalence, inside the library's domain | yes |
| `error` | the library raised on a valid, non-degenerate input | yes |
| `convention` | matches a named equivalence of the spec (EQ-1), e.g. `l1` with λ' = λ·B | `--strict` |
| `precision` | passes when the allowed error is derived at a lower working precision | `--strict` |
| `precondition` | fails only outside a domain the library's own code guarantees | `--strict` |
| `tie` | differs only at exact ties at a kink, where the spec names both rules | `--strict` |
| `unsupported` | the target does not provide the row, or follows another named convention | never |
"""

from __future__ import annotations

from dataclasses import dataclass, field

from refsae.checking.check import Outcome

__all__ = ["FAILING", "FINDINGS", "MEANING", "SEVERITIES", "VERDICTS", "RowVerdict", "fails"]

VERDICTS: tuple[str, ...] = (
    "pass",
    "bug",
    "error",
    "convention",
    "precision",
    "precondition",
    "tie",
    "unsupported",
)
"""Every verdict, in the order reports count them."""

FAILING: frozenset[str] = frozenset({"bug", "error"})
"""Verdicts that make `refsae conform` exit 1 and a plugin test fail (CONF-12)."""

FINDINGS: frozenset[str] = frozenset({"bug", "error", "convention", "precision", "precondition", "tie"})
"""Verdicts that are findings (every verdict but `pass` and `unsupported`): `--strict` fails on each."""

SEVERITIES: dict[str, str] = {
    "generic": "a wrong value on generic inputs",
    "degenerate": "NaN, inf or a crash on a degenerate input (a zero row, one point, every latent dead …)",
}
"""The severity of a `bug` (CONF-17)."""

MEANING: dict[str, str] = {
    "pass": "agrees with the spec under the detected conventions",
    "bug": "wrong under every named convention and equivalence, inside the library's domain (CONF-17)",
    "error": "the library raised on a valid input that is not degenerate (CONF-17)",
    "convention": "matches a named convention or equivalence of the spec (CONF-13, EQ-1)",
    "precision": "the same mathematics at a lower working precision (CONF-14)",
    "precondition": "fails only outside a domain the library's own code guarantees (CONF-15)",
    "tie": "differs only at exact ties at a kink, where the spec names both rules (CONF-16)",
    "unsupported": "not provided, or another named convention than the clause defines (CONF-2, CONF-4)",
}
"""One line per verdict, as the reports' legend prints it."""


def fails(verdict: str, *, strict: bool = False) -> bool:
    """True when `verdict` makes a run fail: `bug` and `error`; with `strict`, every finding."""
    return verdict in (FINDINGS if strict else FAILING)


@dataclass
class RowVerdict:
    """What the suite found for one operation: its verdict (CONF-12) and the evidence."""

    operation: str
    status: str = "pass"
    """The check under the spec and the detected conventions: pass | fail | error | unsupported."""
    verdict: str = "pass"
    """One of `verdicts.VERDICTS`."""
    convention: str = ""
    names: dict[str, str] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    message: str = ""
    reproduction: str = ""
    rest: Outcome | None = None
    """The check without the edge clauses' cases, where a failure's counterexample exercised one."""
    confined: set[str] | None = None
    """The edge clauses a failure is confined to (CONF-10): the row passes on every other case; None
    when the failure is not confined (or the row does not fail)."""
    clauses: tuple[str, ...] = ()
    """The clauses the finding is about: those its failing checks contradict (CONF-10)."""
    severity: str = ""
    """A bug's severity: `generic` or `degenerate` (CONF-17)."""
    detail: str = ""
    """What the verdict rests on, for a reader: the equivalence and its formula, the working
    precision and the error in its units of roundoff, the domain and its reason, the claim."""
    equivalence: str = ""
    working: dict[str, str] = field(default_factory=dict)
    """Failing dtype -> the working precision it passes at (precision)."""
    domain: str = ""
