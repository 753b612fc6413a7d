"""A base for adapters of `torch.nn.Module` libraries (CONF-6): declare, and the loss rows follow.

An adapter of a library whose SAE is an `nn.Module` declares

- `parameters`: the parameter map, canonical name -> the attribute path of the library's tensor in
  the module (`"encoder.weight.T"`: an `nn.Linear` weight, the canonical array transposed; where
  `build` returns a trainer, `holder` names its attribute holding the module);
- `build(like, **options)`: the library's module (or trainer) for the row's canonical arrays `like`
  (their sizes, dtype, device) and options, with the settings it fixes (`fixed`, documented);
- `loss(module, x, **options)`: how the library computes its training loss on a batch;
- `loss_rows`: the table's loss rows it provides (`"total_loss"`, `"loss_gradients"`, …) and
  `domains` (`refsae.conform.adapter.Domain`): the cases the library computes a row on, by name and
  reason (a precondition the report can name), never a silent skip.

From these the base writes every row of `loss_rows`: a `*total_loss` row is `loss` of the loaded
module (no autograd), a `*loss_gradients` row is its `backward()`, each parameter's `.grad` read back
through the map (transposed back; zeros where the loss does not reach a parameter). `load` copies the
canonical tensors into the module and refuses a map that names no tensor of the module or gives it
another shape (`ParameterMapError`); a library with its own loading path (`load_state_dict`,
assigned `nn.Parameter`s) overrides it. The other rows stay methods named as the row (`Adapter`),
built with `model(values, **options)`: `build`, then `load`.

    class MyAdapter(ModuleAdapter):
        parameters = {"W_enc": "encoder.weight.T", "b_enc": "encoder.bias",
                      "W_dec": "decoder.weight.T", "b_dec": "decoder.bias"}
        loss_rows = ("total_loss", "loss_gradients")

        def build(self, like, **options):
            return MySAE(*like["W_enc"].shape).to(like["W_enc"].dtype)

        def loss(self, module, x, *, l1_coefficient):
            return module.loss(x, l1_coefficient)
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from refsae.conform.adapter import Adapter

TRANSPOSED = ".T"
"""The suffix of a map entry whose library tensor is the canonical array transposed (last two axes)."""


class ParameterMapError(ValueError):
    """A parameter map that does not fit the library's module (a missing tensor, another shape)."""


@functools.cache
def library(name: str) -> Any:
    """The library module `name`, imported on first use (refsae imports without the libraries)."""
    return importlib.import_module(name)


def grad_or_zeros(t: Tensor) -> Tensor:
    """`t.grad`, or zeros where the library's loss has no graph to `t` (its gradient is 0)."""
    return t.grad if t.grad is not None else torch.zeros_like(t)


def backward_to(loss: Tensor, leaves: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """`loss.backward()` where the loss has a graph (a library's constant 0 has none), and the
    gradient of each leaf (zeros where the loss does not reach it)."""
    if loss.requires_grad:
        loss.backward()  # type: ignore[no-untyped-call]
    return {name: grad_or_zeros(t) for name, t in leaves.items()}


def pad(t: Tensor, width: int) -> Tensor:
    """`t` with zero columns appended up to `width` on its last axis (exact zeros in every sum)."""
    return torch.nn.functional.pad(t, (0, width - t.shape[-1]))


def eye_and_zeros(like: Tensor) -> tuple[Tensor, Tensor]:
    """`I (d, d)` and `0 (d,)` for `d = like.shape[-1]`, in `like`'s dtype and device: an identity
    encoder, whose pre-activations are its input exactly (`z @ I` adds only exact zeros)."""
    d = like.shape[-1]
    eye = torch.eye(d, dtype=like.dtype, device=like.device)
    return eye, torch.zeros(d, dtype=like.dtype, device=like.device)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep a library's progress prints out of the suite's output."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class ModuleAdapter(Adapter):
    """Base of the adapters of `nn.Module` libraries; see the module docstring."""

    parameters: ClassVar[Mapping[str, str]] = {}
    """Canonical name -> attribute path of the library's tensor (`.T`: transposed)."""
    loss_rows: ClassVar[tuple[str, ...]] = ()
    """The loss rows written from `build`, `load` and `loss` (`*total_loss`, `*loss_gradients`)."""
    fixed: ClassVar[Mapping[str, Any]] = {}
    """Settings the adapter fixes in the library's configuration (warm-ups off, …), for `build`."""
    holder: ClassVar[str] = ""
    """Where the map's paths start when `build` returns a trainer: its attribute holding the module
    (dictionary_learning's `ae`); a bare module is addressed directly."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [hook for hook in ("build", "loss") if getattr(cls, hook) is getattr(ModuleAdapter, hook)]
        if cls.loss_rows and missing:  # the written rows call both: refuse the class, not a later case
            rows = ", ".join(cls.loss_rows)
            raise TypeError(f"{cls.__name__} declares loss_rows ({rows}) but no {' or '.join(missing)}")
        for row in cls.loss_rows:  # written for each row unless a class on the way down wrote its own
            existing = getattr(cls, row, None)
            if existing is None or getattr(existing, "generated_loss_row", False):
                setattr(cls, row, _loss_row(row))

    # --- what an adapter declares ---

    def build(self, *like_and_options: Any, **options: Any) -> Any:
        """`build(like, **options)`: the library's module (or trainer) for the row's canonical arrays
        `like` and its options (an override names the options it reads)."""
        raise NotImplementedError(f"{type(self).__name__}.build")

    def loss(self, *module_and_x: Any, **options: Any) -> Tensor:
        """`loss(module, x, **options)`: the library's training loss of `module` (as `build` returned
        it, loaded) on the batch `x`."""
        raise NotImplementedError(f"{type(self).__name__}.loss")

    # --- the parameter map ---

    def target_of(self, module: Any, name: str) -> Tensor:
        """The library tensor of canonical `name` (as stored: not transposed)."""
        path = self.parameters.get(name)
        if path is None:
            raise ParameterMapError(f"{self.target}: no library tensor is mapped to {name!r}")
        t: Any = getattr(module, self.holder, module) if self.holder else module
        for attr in path.removesuffix(TRANSPOSED).split("."):
            t = getattr(t, attr, None)
            if t is None:
                raise ParameterMapError(f"{self.target}: {name!r} -> {path!r}: the module has no {attr!r}")
        if not isinstance(t, Tensor):
            raise ParameterMapError(f"{self.target}: {name!r} -> {path!r} is a {type(t).__name__}")
        return t

    def to_library(self, name: str, t: Tensor) -> Tensor:
        """A canonical tensor in the library's layout (and back: a transpose is its own inverse)."""
        return t.transpose(-1, -2) if self.parameters[name].endswith(TRANSPOSED) else t

    def load(self, module: Any, values: Mapping[str, Tensor]) -> Any:
        """Copy canonical `values` into the module's tensors through the map; returns the module."""
        with torch.no_grad():
            for name, value in values.items():
                target, given = self.target_of(module, name), self.to_library(name, value)
                if target.shape != given.shape:
                    raise ParameterMapError(
                        f"{self.target}: {name!r} -> {self.parameters[name]!r} holds shape "
                        f"{tuple(target.shape)}, the canonical array gives {tuple(given.shape)}"
                    )
                target.copy_(given)
        return module

    def model(self, values: Mapping[str, Tensor], **options: Any) -> Any:
        """`build` for `values` (a row's arrays) and `options`, loaded with the parameters among
        `values` (all but the batch `x` and the `absent` ones)."""
        params = {k: v for k, v in values.items() if k != "x" and k not in self.absent}
        return self.load(self.build(values, **options), params)

    def named(self, module: Any) -> dict[str, Tensor]:
        """Every mapped library tensor of `module`, by canonical name (as stored)."""
        return {name: self.target_of(module, name) for name in self.parameters}

    def gradients(self, module: Any, names: tuple[str, ...]) -> tuple[Tensor, ...]:
        """The `.grad` of each named parameter, in the canonical layout (zeros where none)."""
        return tuple(self.to_library(n, grad_or_zeros(self.target_of(module, n))) for n in names)


def _loss_row(row: str) -> Callable[..., Any]:
    """The method of loss row `row`: `loss` of the loaded module, or its gradients."""

    def method(self: ModuleAdapter, *arrays: Tensor, **options: Any) -> Any:
        names = self.row_arrays(row)
        module = self.model(dict(zip(names, arrays, strict=True)), **options)
        x = arrays[0]
        if row.endswith("total_loss"):
            with torch.no_grad():
                return self.loss(module, x, **options)
        self.loss(module, x, **options).backward()  # type: ignore[no-untyped-call]
        outputs = dict(zip(names[1:], self.row_outputs(row), strict=True))
        present = tuple(k for k in outputs if k not in self.absent)  # an absent one has no gradient
        return dict(zip((outputs[k] for k in present), self.gradients(module, present), strict=True))

    method.__name__ = method.__qualname__ = row
    method.generated_loss_row = True  # type: ignore[attr-defined]
    method.__doc__ = f"`{row}`: the library's loss (`loss`) of the module `build` returns, loaded."
    return method
