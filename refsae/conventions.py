"""Named conventions: the choices on which SAE libraries silently disagree.

Each name is defined by a spec page; the `Conventions` bundle selects one name per axis.

| axis | names | spec |
|---|---|---|
| `encode` | `tied` (subtract b_dec before encoding), `untied` | encode.md ENC-2, ENC-3 |
| `decoder` | `constrained` (W_dec as is), `normalised` (rows / (norm + eps)) | decode.md DEC-2, DEC-3 |
| `reconstruction` | `sum`, `mean`, `fvu` | losses.md LOSS-1..LOSS-3 |
| `sparsity` | `l1`, `l1_decoder_norm` | losses.md LOSS-4, LOSS-5 |
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, get_args

EncodeConvention = Literal["tied", "untied"]
DecoderConvention = Literal["constrained", "normalised"]
ReconstructionConvention = Literal["sum", "mean", "fvu"]
SparsityConvention = Literal["l1", "l1_decoder_norm"]
FoldInto = Literal["weights", "biases"]
NormTarget = Literal["mean_norm_sqrt_d_in", "mean_squared_norm_one"]
Ste = Literal["threshold_only", "also_input"]

ENCODE: tuple[str, ...] = get_args(EncodeConvention)
DECODER: tuple[str, ...] = get_args(DecoderConvention)
RECONSTRUCTION: tuple[str, ...] = get_args(ReconstructionConvention)
SPARSITY: tuple[str, ...] = get_args(SparsityConvention)

DEFAULT_EPS = 1e-8

CORE_AXES: dict[str, tuple[str, ...]] = {
    "encode": ENCODE,
    "decoder": DECODER,
    "reconstruction": RECONSTRUCTION,
    "sparsity": SPARSITY,
}
"""The axes of the `Conventions` bundle, in canonical order (the first name is the default)."""

OPERATION_AXES: dict[str, tuple[str, ...]] = {
    "update": ("mean", "ema"),  # batchtopk.md BTOPK-5: the inference threshold's estimate
    "parametrisation": ("theta", "log_theta"),  # jumprelu.md JUMP-5: the stored threshold parameter
    "ste": get_args(Ste),  # jumprelu.md JUMP-14, JUMP-15: where the straight-through estimate goes
    "aux_decoder": ("detached", "attached"),  # gated.md GATE-4: the auxiliary reconstruction's decoder
    "values": ("relu", "raw"),  # auxk.md AUXK-3
    "aux_decode": ("without_b_dec", "with_b_dec", "cancelled_b_dec"),  # AUXK-4
    "residual": ("detached", "attached"),  # AUXK-4
    "scale": ("unscaled", "dead_fraction"),  # AUXK-5
    "normalisation": ("residual_variance", "input_variance", "sum"),  # AUXK-7
    "fold_into": get_args(FoldInto),  # folding.md FOLD-5, FOLD-6: where an input scale is folded
    "norm_target": get_args(NormTarget),  # normalisation.md NORM-2, NORM-3: what an input scale makes 1
    "levels": ("summed", "averaged"),  # matryoshka.md MAT-5, MAT-6: how the levels' losses combine
}
"""Conventions of single operations, passed as keyword options of their functions (the first name is
the default). The case strategies draw them with `refsae.checking.strategies.convention`, so that the
conformance suite can pin and detect them like the bundle's (CONF-3)."""

AXES: dict[str, tuple[str, ...]] = {**CORE_AXES, **OPERATION_AXES}
"""Every convention axis and its names, in canonical order (the first name is the default)."""

CLAUSES: dict[tuple[str, str], str] = {
    ("encode", "tied"): "ENC-2",
    ("encode", "untied"): "ENC-3",
    ("decoder", "constrained"): "DEC-2",
    ("decoder", "normalised"): "DEC-3",
    ("reconstruction", "sum"): "LOSS-1",
    ("reconstruction", "mean"): "LOSS-2",
    ("reconstruction", "fvu"): "LOSS-3",
    ("sparsity", "l1"): "LOSS-4",
    ("sparsity", "l1_decoder_norm"): "LOSS-5",
    ("fold_into", "weights"): "FOLD-5",
    ("fold_into", "biases"): "FOLD-6",
    ("ste", "threshold_only"): "JUMP-14",
    ("ste", "also_input"): "JUMP-15",
    ("norm_target", "mean_norm_sqrt_d_in"): "NORM-2",
    ("norm_target", "mean_squared_norm_one"): "NORM-3",
    ("levels", "summed"): "MAT-5",
    ("levels", "averaged"): "MAT-6",
}
"""The clause defining each (axis, name): the conformance suite reports the clause of a convention
other than the detected one as `unsupported`, not `fail` (CONF-4)."""

ABSENT_PARAMETERS: tuple[str, ...] = ("b_dec", "W_skip")
"""Parameters a library may not have (CONF-11): while pinned `absent`, the strategies draw them as
exact zeros."""

OPTION_KEYS: frozenset[str] = frozenset({*AXES, "eps", "conventions"})
"""Keyword options of the table's functions that carry conventions (a fixed-convention library's
adapter does not receive them, CONF-2)."""

_PINNED: ContextVar[Mapping[str, object]] = ContextVar(
    "refsae_pinned_conventions", default=MappingProxyType({})
)


@contextmanager
def pinned(**axes: object) -> Iterator[None]:
    """While active, the case strategies draw only the given name on each given axis (and `eps`, when
    given, for the normalised decoder; `instances=False`: shapes without an instance axis;
    `absent=("b_dec",)`: those parameters drawn as zeros, CONF-11): the conformance suite checks a
    fixed-convention library under the conventions it follows (CONF-3)."""
    for axis, value in axes.items():
        if axis == "eps":
            check_eps(value)  # type: ignore[arg-type]
        elif axis == "absent":
            if not (isinstance(value, tuple) and all(v in ABSENT_PARAMETERS for v in value)):
                raise ValueError(f"absent must be a tuple of {', '.join(ABSENT_PARAMETERS)}, got {value!r}")
        elif axis == "instances":
            if not isinstance(value, bool):
                raise ValueError(f"instances must be True or False, got {value!r}")
        elif axis not in AXES:
            raise ValueError(f"unknown convention axis {axis!r}; expected one of {', '.join(AXES)}, eps")
        else:
            check_choice(axis, str(value), AXES[axis])
    token = _PINNED.set({**_PINNED.get(), **axes})
    try:
        yield
    finally:
        _PINNED.reset(token)


def pinned_value(axis: str) -> object | None:
    """The name pinned on `axis` (or the pinned eps), None when free."""
    return _PINNED.get().get(axis)


def check_choice(axis: str, value: str, allowed: tuple[str, ...]) -> None:
    """Raise `ValueError` naming the allowed conventions when `value` is not one of them."""
    if value not in allowed:
        raise ValueError(f"unknown {axis} convention {value!r}; expected one of {', '.join(allowed)}")


def check_eps(eps: float) -> None:
    """`eps` of the normalised decoder must be a finite number > 0 (DEC-5)."""
    if isinstance(eps, bool) or not (isinstance(eps, int | float) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")


def check_coefficient(name: str, value: float) -> None:
    """Loss coefficients must be finite and >= 0 (LOSS-7)."""
    if isinstance(value, bool) or not (
        isinstance(value, int | float) and math.isfinite(value) and value >= 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class Conventions:
    """One choice per axis; the defaults are refsae's canonical SAE (tied, constrained, sum, l1)."""

    encode: EncodeConvention = "tied"
    decoder: DecoderConvention = "constrained"
    reconstruction: ReconstructionConvention = "sum"
    sparsity: SparsityConvention = "l1"
    eps: float = DEFAULT_EPS

    def __post_init__(self) -> None:
        check_choice("encode", self.encode, ENCODE)
        check_choice("decoder", self.decoder, DECODER)
        check_choice("reconstruction", self.reconstruction, RECONSTRUCTION)
        check_choice("sparsity", self.sparsity, SPARSITY)
        check_eps(self.eps)

    def label(self) -> str:
        """Short human-readable name, e.g. `tied/constrained/sum/l1`."""
        return f"{self.encode}/{self.decoder}/{self.reconstruction}/{self.sparsity}"
