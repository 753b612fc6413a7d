"""The conformance suite: point it at an SAE implementation, learn clause by clause where it agrees
with the specification, which convention it follows, and a minimal counterexample where it does not
(specs/conformance-suite.md, CONF-1..CONF-8).

    >>> from refsae.conform import conform, load
    >>> report = conform(load("refsae"), operations=["encode"], max_examples=5)
    >>> report.summary["fail"], sorted({c.status for c in report.clauses})
    (0, ['pass'])
"""

from refsae.conform.adapter import Adapter
from refsae.conform.report import ClauseResult, Report
from refsae.conform.repro import oracle_outputs
from refsae.conform.runner import Engine, conform
from refsae.conform.targets import BUILTIN, TargetError, load

__all__ = [
    "BUILTIN",
    "Adapter",
    "ClauseResult",
    "Engine",
    "Report",
    "TargetError",
    "conform",
    "load",
    "oracle_outputs",
]
