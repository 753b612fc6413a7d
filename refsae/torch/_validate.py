"""Value checks for `refsae.torch` (shapes are checked by jaxtyping, values here).

All checks obey `REFSAE_CHECKS` (see `refsae._typecheck`). Finiteness checks read a boolean back
from the device (a synchronisation on CUDA): switch checks off for production training loops.
"""

from __future__ import annotations

import torch

from refsae._typecheck import CHECKS_ENABLED

FLOAT_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


def same_dtype_and_device(**tensors: torch.Tensor) -> None:
    """All floating tensors of one call share one dtype and one device (NOT-7)."""
    if not CHECKS_ENABLED:
        return
    items = list(tensors.items())
    name0, t0 = items[0]
    for name, t in items:
        if t.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name} has dtype {t.dtype}; refsae.torch supports {FLOAT_DTYPES}")
        if t.dtype != t0.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but {name0} has {t0.dtype}: one dtype per call")
        if t.device != t0.device:
            raise ValueError(f"{name} is on {t.device} but {name0} is on {t0.device}: one device per call")
        if t.layout != torch.strided:
            raise TypeError(f"{name} has layout {t.layout}; refsae.torch takes dense (strided) tensors")


def finite(**tensors: torch.Tensor) -> None:
    """Raise `ValueError` naming the first tensor that holds NaN or ±Inf (NOT-5)."""
    if not CHECKS_ENABLED:
        return
    for name, t in tensors.items():
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or Inf; refsae operations are defined on finite inputs")


def nonempty_batch(x: torch.Tensor, name: str = "x") -> None:
    """Raise `ValueError` when the batch axis (axis 0) is empty (NOT-6)."""
    if x.shape[0] == 0:
        raise ValueError(
            f"{name} has an empty batch (shape {tuple(x.shape)}); every batch reduction needs batch >= 1"
        )


def check(*, batch: torch.Tensor | None = None, batch_name: str = "x", **tensors: torch.Tensor) -> None:
    """The checks every public function runs: one dtype/device, non-empty batch, finite values."""
    same_dtype_and_device(**tensors)
    if batch is not None:
        nonempty_batch(batch, batch_name)
    finite(**tensors)
