"""The conformance suite as a pytest plugin (CONF-5): `pytest --refsae-target=TARGET` adds one test per
(operation, clause) of the table to the session, so that a library runs the suite inside its own
test suite. Registered under the `pytest11` entry point `refsae`; it does nothing without the option.

    pytest --refsae-target=refsae.conform.mutants:correct --refsae-ops=encode,decode -q
    pytest --refsae-target=mylib.tests.refsae_adapter:MyAdapter --refsae-profile=dev

A clause that passes is a passed test, `unsupported` is a skip carrying the reason, `bug` and
`error` are failures whose report is the suite's message and reproduction (CONF-12); a clause with
another finding (`convention`, `precision`, `precondition`, `tie`) passes, its verdict recorded in
the test's `user_properties`, and fails under `--refsae-strict`. Test ids are
`refsae[TARGET]::OPERATION::CLAUSE`, so `-k encode` selects rows as usual. One engine per target
computes each row's verdict once, on the first of its clauses that runs.

Nothing here imports torch or the adapters until the option is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from refsae.conform.runner import Engine


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("refsae", "refsae conformance suite")
    group.addoption(
        "--refsae-target",
        action="append",
        default=[],
        metavar="TARGET",
        help="run the refsae conformance suite on TARGET (a built-in adapter or module:factory); repeatable",
    )
    group.addoption("--refsae-profile", default=None, help="hypothesis profile: dev | ci | thorough")
    group.addoption("--refsae-max-examples", type=int, default=None, help="examples per operation and dtype")
    group.addoption("--refsae-ops", default=None, help="comma-separated operation names (default: all)")
    group.addoption(
        "--refsae-strict",
        action="store_true",
        default=False,
        help="fail on every finding (convention, precision, precondition, tie), not only bug and error",
    )


class ClauseFailure(Exception):
    """A clause the implementation fails (or errors on): the suite's message and reproduction."""


class TargetCollector(pytest.Collector):
    """The clauses of one target, grouped by operation."""

    def __init__(self, *, target: str, engine: Engine, operations: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.engine = engine
        self.operations = operations

    def collect(self) -> Iterator[pytest.Item]:
        from refsae.checking import table

        for name in self.operations:
            for clause in table.get(name).clauses:
                yield ClauseItem.from_parent(self, name=f"{name}::{clause}", operation=name, clause=clause)


class ClauseItem(pytest.Item):
    """One (operation, clause) of the table, judged by the target's engine."""

    def __init__(self, *, operation: str, clause: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.operation = operation
        self.clause = clause

    def runtest(self) -> None:
        parent = self.parent
        assert isinstance(parent, TargetCollector)
        results = parent.engine.clause_results(self.operation)
        result = next(r for r in results if r.clause == self.clause)
        from refsae.conform.verdicts import fails

        if result.status == "unsupported":
            pytest.skip(result.message or "unsupported")
        self.user_properties.append(("refsae_verdict", result.status))
        if fails(result.status, strict=self.config.getoption("refsae_strict")):
            finding = parent.engine.finding(self.operation)
            text = f"{result.status}: {result.clause} ({result.operation}), convention {result.convention}\n"
            if result.text:
                text += f"{result.clause}: {result.text}\n"
            if finding.detail:
                text += f"{finding.detail}\n"
            text += result.message
            if result.reproduction:
                text += f"\n\nReproduction:\n\n{result.reproduction}"
            raise ClauseFailure(text)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ClauseFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int | None, str]:
        parent = self.parent
        target = parent.target if isinstance(parent, TargetCollector) else "?"
        return target, None, f"refsae[{target}] {self.operation} {self.clause}"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    targets: list[str] = config.getoption("refsae_target")
    if not targets:
        return
    from refsae.checking import table
    from refsae.conform.runner import Engine
    from refsae.conform.targets import TargetError, load

    names = config.getoption("refsae_ops")
    operations = (
        [op.name for op in table.TABLE] if names is None else [n.strip() for n in names.split(",") if n]
    )
    unknown = [n for n in operations if n not in table.BY_NAME]
    if unknown:
        raise pytest.UsageError(
            f"--refsae-ops: no operation {', '.join(unknown)}; known: {', '.join(table.BY_NAME)}"
        )
    for target in targets:
        try:
            adapter = load(target)
        except TargetError as exc:
            raise pytest.UsageError(f"--refsae-target: {exc}") from None
        engine = Engine(
            adapter,
            profile=config.getoption("refsae_profile"),
            max_examples=config.getoption("refsae_max_examples"),
        )
        collector = TargetCollector.from_parent(
            session,
            name=f"refsae[{target}]",
            nodeid=f"refsae[{target}]",
            target=target,
            engine=engine,
            operations=operations,
        )
        items.extend(collector.collect())
