"""The base of the adapters of nn.Module libraries (refsae/conform/module_adapter.py), on a toy library."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from hypothesis.errors import UnsatisfiedAssumption
from torch import Tensor, nn

from refsae.cases import Case
from refsae.checking import table
from refsae.checking.check import compare
from refsae.conform import conform
from refsae.conform.adapter import Domain
from refsae.conform.module_adapter import ModuleAdapter, ParameterMapError
from refsae.conform.targets import BUILTIN
from refsae.conventions import Conventions


class ToySAE(nn.Module):
    """A toy library: nn.Linear layouts, tied decoder bias, sum-of-squares reconstruction, L1."""

    def __init__(self, d_in: int, d_sae: int) -> None:
        super().__init__()
        self.encoder, self.decoder = nn.Linear(d_in, d_sae), nn.Linear(d_sae, d_in)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = torch.relu(self.encoder(x - self.decoder.bias))
        return f, self.decoder(f)

    def loss(self, x: Tensor, l1: float) -> Tensor:
        f, x_hat = self(x)
        loss: Tensor = ((x_hat - x) ** 2).sum(-1).mean() + l1 * f.abs().sum(-1).mean()
        return loss


class Toy(ModuleAdapter):
    name: ClassVar[str] = "toy"
    parameters: ClassVar[Mapping[str, str]] = {
        "W_enc": "encoder.weight.T",
        "b_enc": "encoder.bias",
        "W_dec": "decoder.weight.T",
        "b_dec": "decoder.bias",
    }
    loss_rows: ClassVar[tuple[str, ...]] = ("total_loss", "loss_gradients")
    domains: ClassVar[tuple[Domain, ...]] = (
        Domain(
            "small_l1",
            "the toy's docs promise l1 < 1 only",
            ("total_loss",),
            lambda c: c.options["l1_coefficient"] < 1,
        ),
    )

    def build(self, like: Mapping[str, Tensor], **options: Any) -> Any:
        return ToySAE(*like["W_enc"].shape).to(like["W_enc"].dtype)

    def loss(self, module: Any, x: Tensor, **options: Any) -> Tensor:
        return torch.as_tensor(module.loss(x, options["l1_coefficient"]))


class Untransposed(Toy):
    """The map forgets that nn.Linear stores the encoder weight transposed."""

    parameters: ClassVar[Mapping[str, str]] = {**Toy.parameters, "W_enc": "encoder.weight"}


def _params(d_in: int = 3, d_sae: int = 5) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(0)
    shapes = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    return {k: torch.randn(s, generator=g, dtype=torch.float64) for k, s in shapes.items()}


def _case(l1_coefficient: float) -> Any:
    """A case as `run` reads it (arrays, options, dtype)."""
    arrays = {"x": np.ones((2, 3)), **{k: v.numpy() for k, v in _params().items()}}
    return SimpleNamespace(arrays=arrays, options={"l1_coefficient": l1_coefficient}, dtype="float64")


def _oracle_case(l1_coefficient: float) -> Case:
    """The same case with the toy's conventions named (tied, constrained, sum, l1), for the oracle."""
    options = {"l1_coefficient": l1_coefficient, "conventions": Conventions()}
    return Case(_case(l1_coefficient).arrays, options)


def test_the_loss_rows_are_written_from_the_declared_build_and_loss() -> None:
    """The written `total_loss` row is the toy's loss, equal to the oracle's within the row's bound."""
    adapter = Toy()
    assert adapter.operations() == ("total_loss", "loss_gradients")  # only the declared rows
    out = adapter.run("total_loss", _case(0.5))
    op, case = table.get("total_loss"), _oracle_case(0.5)
    compare(op, case, op.reference(case), out)  # raises Mismatch beyond the allowed error (TOL-1)


class WrittenGradients(Toy):
    """A subclass that writes one loss row itself, as a library's adapter does for a row with options."""

    def loss_gradients(self, *arrays: Tensor, **options: Any) -> dict[str, Tensor]:
        return {"written": arrays[0]}


class BelowWritten(WrittenGradients):
    """A subclass of it that writes nothing."""


def test_a_loss_row_written_by_a_class_is_kept_by_its_subclasses_and_the_rest_are_written() -> None:
    """`ModuleAdapter` writes each declared loss row, except one a class on the way down wrote
    itself: a subclass (another configuration of the same library class) keeps its parent's."""
    x = torch.ones(2, 3)
    for adapter in (WrittenGradients(), BelowWritten()):
        assert adapter.loss_gradients(x) == {"written": x}
        assert getattr(getattr(type(adapter), "total_loss"), "generated_loss_row", False)  # noqa: B009


def test_gradients_come_back_through_the_map_in_the_canonical_layout() -> None:
    """The written `loss_gradients` row reads each `.grad` back through the map (transposed back):
    the oracle's gradients within the row's bounds, in the canonical shapes."""
    grads = Toy().run("loss_gradients", _case(0.5))
    op, case = table.get("loss_gradients"), _oracle_case(0.5)
    expected = op.reference(case)
    assert {k: v.shape for k, v in grads.items()} == {k: v.shape for k, v in expected.items()}
    compare(op, case, expected, grads)


def test_a_parameter_map_missing_a_transpose_is_refused_naming_the_parameter() -> None:
    with pytest.raises(ParameterMapError, match=r"'W_enc' -> 'encoder\.weight'"):
        Untransposed().model(_params())


def test_a_parameter_map_naming_no_tensor_of_the_module_is_refused() -> None:
    class Misnamed(Toy):
        parameters: ClassVar[Mapping[str, str]] = {**Toy.parameters, "b_dec": "decoder.offset"}

    with pytest.raises(ParameterMapError, match="no 'offset'"):
        Misnamed().model(_params())


def test_a_row_array_the_map_does_not_place_is_refused() -> None:
    class Partial(Toy):
        parameters: ClassVar[Mapping[str, str]] = {k: v for k, v in Toy.parameters.items() if k != "b_dec"}

    with pytest.raises(ParameterMapError, match="'b_dec'"):
        Partial().run("loss_gradients", _case(0.5))


def test_a_declared_domain_is_enumerable_by_name_reason_and_rows() -> None:
    (domain,) = Toy.domains
    assert (domain.name, domain.ops) == ("small_l1", ("total_loss",))
    assert domain.reason == "the toy's docs promise l1 < 1 only"
    assert domain.admits("total_loss", _case(0.5)) and not domain.admits("total_loss", _case(2.0))
    assert domain.admits("loss_gradients", _case(2.0))  # a row it does not name is not narrowed


@pytest.mark.filterwarnings("ignore:Using `assume` outside a property-based test")
def test_a_case_outside_a_declared_domain_is_skipped_as_hypothesis_assume_does() -> None:
    with pytest.raises(UnsatisfiedAssumption):
        Toy().run("total_loss", _case(2.0))
    assert Toy().run("loss_gradients", _case(2.0))["W_enc"].shape == (3, 5)


def test_the_toy_library_passes_its_loss_rows_under_the_conventions_it_follows() -> None:
    report = conform(Toy(), operations=["total_loss", "loss_gradients"], max_examples=5)
    assert report.summary["bug"] == 0 and report.summary["error"] == 0
    assert report.conventions["reconstruction"] == "sum" and report.conventions["encode"] == "tied"


def test_the_suite_reports_a_wrong_parameter_map_never_a_pass() -> None:
    report = conform(Untransposed(), operations=["total_loss"], max_examples=5)
    assert report.summary["pass"] == 0 and report.summary["bug"] + report.summary["error"] > 0


def test_every_peer_adapter_declares_its_domains_on_rows_it_provides() -> None:
    domains = 0
    for target, spec in BUILTIN.items():
        module, _, attr = spec.partition(":")
        adapter = getattr(importlib.import_module(module), attr)()
        for domain in adapter.domains:
            assert domain.name and domain.reason, target
            assert set(domain.ops) & set(adapter.operations()), (target, domain.name)
            domains += 1
    assert domains >= 6


def test_an_adapter_declaring_loss_rows_without_its_loss_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match=r"declares loss_rows \(total_loss\) but no loss$"):

        class NoLoss(ModuleAdapter):
            loss_rows: ClassVar[tuple[str, ...]] = ("total_loss",)

            def build(self, like: Mapping[str, Tensor], **options: Any) -> Any:
                return ToySAE(*like["W_enc"].shape)
