"""A mutant: one row's torch function replaced by a plausible bug (CHK-1, CONF-8), usable as a checker
`Implementation` and as a conformance adapter; the canonical adapter it is measured against."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from hypothesis import assume
from torch import Tensor

from refsae.cases import Case
from refsae.checking import table
from refsae.checking.implementations import TorchImplementation, to_numpy, to_tensor
from refsae.conform.adapter import Domain
from refsae.conform.refsae_adapter import FixedRefsae
from refsae.conventions import Conventions

CANONICAL = Conventions()
CLAIMS = {"encode": "tied", "decoder": "constrained", "reconstruction": "sum", "sparsity": "l1"}


class CorrectRefsae(FixedRefsae):
    """The control: refsae.torch with canonical conventions, claimed; must pass everything."""

    name: ClassVar[str] = "refsae.canonical"
    conventions: ClassVar[Conventions] = CANONICAL
    claims: ClassVar[Mapping[str, str]] = CLAIMS


class MutantImplementation(TorchImplementation):
    """refsae.torch on the CPU with the mutant's row computed by its change (the checker's use), on the
    cases inside the mutant's declared scopes (a variant that, like its library, computes only there)."""

    def __init__(self, mutant: Mutant) -> None:
        super().__init__("cpu")
        self.mutant = mutant
        self.name = f"mutant[{mutant.name}]"

    def run(self, operation: str, case: Case) -> dict[str, np.ndarray]:
        if operation != self.mutant.operation:
            return super().run(operation, case)
        for domain in self.mutant.domains:  # a variant computes only inside its declared scope
            if domain.kind == "scope":
                assume(domain.admits(operation, case))
        op = table.get(operation)
        tensors = {k: to_tensor(v, case.dtype, self.device) for k, v in case.arrays.items()}
        return {k: to_numpy(v) for k, v in op.call(self.mutant.change, tensors, case.options).items()}


@dataclass(frozen=True)
class Mutant:
    """One bug: `change` replaces the torch function of row `operation` and breaks `clause`."""

    name: str
    operation: str
    clause: str
    description: str
    change: Callable[..., Any]
    """Called as the row calls its torch function (`Operation.call`)."""
    dtypes: tuple[str, ...] = ("float32", "bfloat16")
    """The dtypes in which the checker must flag it within `max_examples` examples (CHK-1)."""
    max_examples: int = 100
    output: str = ""
    """Where set, the checker's failure must be a mismatch at this output (CHK-2)."""
    unseen_by_selftest: str = ""
    """Why the self-test's fixed canonical conventions cannot expose the bug; empty: they must."""
    verdict: str = "bug"
    """The verdict the self-test must give it (CONF-21): `bug` for a bug; `convention`, `precision`,
    `precondition` or `tie` for a variant that is one of those by construction."""
    domains: tuple[Domain, ...] = ()
    """Domains its adapter declares (a precondition variant's `unit_rows`)."""
    working_precision: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Working precisions its adapter declares (`Adapter.working_precision`)."""
    equivalence_parameters: Mapping[str, Any] = field(default_factory=dict)
    """Constants its adapter declares (`Adapter.equivalence_parameters`: a capacity factor)."""

    def adapter(self) -> CorrectRefsae:
        """The conformance adapter (CONF-8): the canonical fixed refsae with the change in place."""
        target = f"refsae.conform.mutants:mutant_{self.name}"
        attributes = {
            "name": target,
            "domains": self.domains,
            "working_precision": dict(self.working_precision),
            "equivalence_parameters": dict(self.equivalence_parameters),
        }
        cls = type(f"Mutant_{self.name}", (CorrectRefsae,), attributes)
        adapter: CorrectRefsae = cls()
        setattr(adapter, self.operation, self.change)  # RefsaeAdapter.function picks it up
        return adapter

    def implementation(self) -> MutantImplementation:
        """The checker implementation (CHK-1): refsae.torch with the change in place."""
        return MutantImplementation(self)


def as_numpy(t: Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def like(a: Any, t: Tensor) -> Tensor:
    return torch.as_tensor(np.asarray(a), dtype=t.dtype, device=t.device)


CANONICAL_ONLY = "the bug shows only under {}, and the self-test's adapter fixes that option at {}"
NAMED = (
    "to an adapter with fixed conventions, ignoring `{0}` is having the named convention {0}={1}, "
    "which the suite detects and reports rather than fails (CONF-3); the checker passes `{0}`"
)
F64 = ("float64",)
ALL_BUT_F16 = ("float64", "float32", "bfloat16")
