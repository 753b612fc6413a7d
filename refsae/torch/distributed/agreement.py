"""Agreement across processes before a parallel step communicates (DIST-6): the same configuration and,
for replicas, the same parameters and optimizer state. A disagreement is found by every process from the
same gathered values, so every process raises the same `ValueError` and none is left waiting in a
collective the others never enter."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def replica_fingerprint(tensors: Iterable[Tensor]) -> str:
    """SHA-256 of the tensors' shapes, dtypes and bytes, in order: equal exactly when every bit is."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach()
        digest.update(f"{tuple(t.shape)}{t.dtype};".encode())
        digest.update(t.contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_agreement(value: Any, what: str, group: dist.ProcessGroup | None = None) -> None:
    """Gather `value` from every process of `group` (a small picklable object) and raise `ValueError` on
    every process, naming each process's value, unless all are equal (DIST-6)."""
    values: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(values, value, group=group)
    if any(v != values[0] for v in values):
        listed = ", ".join(f"rank {r}: {v}" for r, v in enumerate(values))
        raise ValueError(f"the processes disagree on {what} ({listed})")


def parameter_state(optimizer: torch.optim.Optimizer, p: Tensor) -> list[Tensor]:
    """The optimizer's state of one parameter (Adam's exp_avg, exp_avg_sq, step), by key."""
    state = optimizer.state.get(p, {})
    return [v if isinstance(v, Tensor) else torch.tensor(float(v)) for _, v in sorted(state.items())]


def optimizer_state(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    """Every tensor of the optimizer's state, in parameter order."""
    return [
        t for group in optimizer.param_groups for p in group["params"] for t in parameter_state(optimizer, p)
    ]


def whole_batch_size(x: Tensor, group: dist.ProcessGroup | None = None) -> int:
    """The whole batch's size B = W · B_r, after checking that every process holds a slice of the same
    shape, dtype and device type (DIST-2, DIST-6)."""
    check_agreement(
        (tuple(x.shape), str(x.dtype), x.device.type),
        "the batch slice (shape, dtype, device): the whole batch must split into equal slices, one per "
        "process, so B must be divisible by the world size",
        group,
    )
    return int(x.shape[0]) * dist.get_world_size(group)
