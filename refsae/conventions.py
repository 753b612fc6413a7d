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
from dataclasses import dataclass
from typing import Literal, get_args

EncodeConvention = Literal["tied", "untied"]
DecoderConvention = Literal["constrained", "normalised"]
ReconstructionConvention = Literal["sum", "mean", "fvu"]
SparsityConvention = Literal["l1", "l1_decoder_norm"]

ENCODE: tuple[str, ...] = get_args(EncodeConvention)
DECODER: tuple[str, ...] = get_args(DecoderConvention)
RECONSTRUCTION: tuple[str, ...] = get_args(ReconstructionConvention)
SPARSITY: tuple[str, ...] = get_args(SparsityConvention)

DEFAULT_EPS = 1e-8


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
