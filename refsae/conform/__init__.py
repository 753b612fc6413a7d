"""The conformance suite: point it at an SAE implementation, learn clause by clause where it agrees
with the specification, which convention it follows, and a minimal counterexample where it does not
(specs/conformance-suite.md, CONF-1..CONF-21). Each finding gets one verdict (CONF-12): `bug`,
`error`, `convention`, `precision`, `precondition`, `tie`; only `bug` and `error` fail a run.

    >>> from refsae.conform import conform, load
    >>> report = conform(load("refsae"), operations=["encode"], max_examples=5)
    >>> report.verdicts["bug"], [f.verdict for f in report.findings]
    (0, ['pass'])
"""

from refsae.conform.adapter import Adapter
from refsae.conform.report import ClauseResult, Finding, Report
from refsae.conform.repro import oracle_outputs
from refsae.conform.runner import Engine, conform
from refsae.conform.targets import BUILTIN, TargetError, load

__all__ = [
    "BUILTIN",
    "Adapter",
    "ClauseResult",
    "Engine",
    "Finding",
    "Report",
    "TargetError",
    "conform",
    "load",
    "oracle_outputs",
]
