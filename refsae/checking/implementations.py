"""Implementations checked against the oracle through the operation table (IMP-1).

An implementation maps an operation name and a canonical `Case` to named float64 NumPy outputs.
`TorchImplementation` is refsae.torch's: it converts the case's arrays to tensors of the case's
dtype on one device, calls the table's torch function, and converts the outputs back exactly.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from refsae.cases import Case
from refsae.checking import table
from refsae.checking.strategies import TORCH_DTYPES


class Implementation(Protocol):
    """What the checker needs of an implementation."""

    @property
    def name(self) -> str: ...

    def supports(self, operation: str) -> bool: ...

    def run(self, operation: str, case: Case) -> dict[str, np.ndarray]: ...


def to_tensor(a: np.ndarray, dtype: str, device: str) -> torch.Tensor:
    """Exact conversion of a canonical array (integers stay int64)."""
    t = torch.from_numpy(np.array(a, order="C"))  # not ascontiguousarray: it makes a 0-d array 1-d
    return t.to(device=device) if a.dtype.kind == "i" else t.to(device=device, dtype=TORCH_DTYPES[dtype])


def to_numpy(t: object) -> np.ndarray:
    """Exact conversion of an output back to float64 NumPy (every dtype widens exactly)."""
    if isinstance(t, torch.Tensor):
        return t.detach().to(device="cpu", dtype=torch.float64).numpy().copy()
    return np.asarray(t, dtype=np.float64)


class TorchImplementation:
    """refsae.torch on one device; with `fast=True`, the rows' fast paths (`Operation.fast`, PERF-1)."""

    def __init__(self, device: str = "cpu", *, fast: bool = False) -> None:
        self.device = device
        self.fast = fast
        self.name = f"refsae.torch{'.fast' if fast else ''}[{device}]"
        if torch.device(device).type == "cuda":
            # TOL-3 assumes float32 accumulation; cuBLAS may reduce half-precision GEMMs in half
            # precision unless told not to.
            torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
            torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False

    def supports(self, operation: str) -> bool:
        return operation in table.BY_NAME and (not self.fast or table.BY_NAME[operation].fast is not None)

    def run(self, operation: str, case: Case) -> dict[str, np.ndarray]:
        op = table.get(operation)
        tensors = {k: to_tensor(v, case.dtype, self.device) for k, v in case.arrays.items()}
        fn = op.fast if self.fast and op.fast is not None else op.torch
        return {k: to_numpy(v) for k, v in op.call(fn, tensors, case.options).items()}
