"""The data-parallel training step (DIST-2..DIST-5; specs/distributed.md).

The whole batch x (B, [n_inst,] d_in) is split into W equal slices, one per process, in rank order. Each
process computes its slice's part of the whole batch's loss (`Share`: its examples' terms over the whole
batch's normaliser D and B), and its gradients; one all_reduce SUM gives every process the whole batch's
loss and gradients, and every replica then takes STEP-1's update (PAR-1, Adam, CON-1) on identical
values, so the replicas stay identical bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from refsae.conventions import check_choice
from refsae.oracle.optimizer import PARAMETERS
from refsae.torch.dead import fire_counts
from refsae.torch.distributed.agreement import (
    check_agreement,
    optimizer_state,
    replica_fingerprint,
    whole_batch_size,
)
from refsae.torch.fast.gradients import Share, fused_loss_and_gradients
from refsae.torch.fast.topk import topk_fused_loss_and_gradients
from refsae.torch.losses import sparsity_loss
from refsae.torch.model import SAE
from refsae.torch.training import BACKWARDS, update_

__all__ = [
    "data_parallel_fire_counts",
    "data_parallel_steps_since_fired",
    "data_parallel_train_step_",
    "whole_batch_share",
]


def whole_batch_share(x: Tensor, reconstruction: str, group: dist.ProcessGroup | None = None) -> Share:
    """This process's `Share` of the whole batch (DIST-2): B, and the reconstruction's D of the whole
    batch: B (sum), B·d_in (mean), or under fvu the whole batch's total variance per instance,
    Σ_b ‖x_b − x̄‖² with x̄ the whole batch's mean (two all_reduce SUMs: Σ_b x_b, then the squares)."""
    batch = whole_batch_size(x, group)
    if reconstruction == "sum":
        return Share(batch, float(batch))
    if reconstruction == "mean":
        return Share(batch, float(batch * x.shape[-1]))
    check_choice("reconstruction", reconstruction, ("sum", "mean", "fvu"))
    variance = whole_batch_variance(x, batch, group)
    if bool((variance == 0).any()):
        raise ValueError("fvu is undefined for a batch whose total variance is zero (e.g. batch of 1)")
    return Share(batch, variance)


def whole_batch_variance(t: Tensor, batch: int, group: dist.ProcessGroup | None) -> Tensor:
    """Σ_b ‖t_b − t̄‖² per instance over the whole batch of `batch` rows, split in slices over `group`'s
    processes, from this process's slice `t` (t̄ the whole batch's mean; two all_reduce SUMs, DIST-2)."""
    with torch.no_grad():
        mean = t.sum(dim=0)
        dist.all_reduce(mean, group=group)
        mean /= batch
        variance = ((t - mean) ** 2).sum(dim=(0, -1))
        dist.all_reduce(variance, group=group)
    return variance


def _autograd_share(sae: SAE, x: Tensor, share: Share) -> Tensor:
    """The share's loss by autograd: Σ_{b∈r} ‖x̂_b − x_b‖² / D + λ (B_r/B) S_r, S_r the slice's mean
    penalty (LOSS-4, LOSS-5), summed over instances; `.backward()` leaves its gradients in `.grad`."""
    f, x_hat = sae(x)
    squared = ((x_hat - x) ** 2).sum(dim=(0, -1))
    S = sparsity_loss(f, sae.W_dec, sparsity=sae.config.conventions.sparsity)
    loss: Tensor = (
        squared / share.denominator + sae.config.l1_coefficient * S * (x.shape[0] / share.batch)
    ).sum()
    return loss


def data_parallel_train_step_(
    sae: SAE,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    *,
    group: dist.ProcessGroup | None = None,
    backward: str = "fused",
    check_replicas: bool = True,
) -> Tensor:
    """`train_step_` (STEP-1) on this process's slice `x` of the whole batch, equal to the step on the
    whole batch (DIST-2, DIST-3): the slice's share of the loss and its gradients (fused, or autograd),
    one all_reduce SUM of the gradients and the loss, then PAR-1, `optimizer.step()` and CON-1 on every
    replica. Returns the whole batch's loss before the step.

    `check_replicas` (default) first checks that every process holds the same parameters and optimizer
    state (DIST-6: a `ValueError` on every process otherwise); a training loop may check once and pass
    False after. Collectives wait at most the process group's timeout."""
    check_choice("backward", backward, BACKWARDS)
    if check_replicas:
        tensors = [getattr(sae, n) for n in PARAMETERS] + optimizer_state(optimizer)
        check_agreement(replica_fingerprint(tensors), "the replicas' parameters and optimizer state", group)
    c = sae.config.conventions
    share = whole_batch_share(x, c.reconstruction, group)
    params = [getattr(sae, n) for n in PARAMETERS]
    if backward == "autograd":
        optimizer.zero_grad(set_to_none=True)
        loss = _autograd_share(sae, x, share)
        loss.backward()  # type: ignore[no-untyped-call]
        loss = loss.detach()
    else:
        out = {n: p.grad for n, p in zip(PARAMETERS, params, strict=True) if p.grad is not None}
        args: dict[str, Any] = {"l1_coefficient": sae.config.l1_coefficient, "conventions": c}
        args |= {"workspace": sae.workspace, "out": out, "share": share}
        weights = (x, sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec)
        if sae.config.k is not None:
            loss, grads = topk_fused_loss_and_gradients(*weights, k=sae.config.k, **args)
        else:
            loss, grads = fused_loss_and_gradients(*weights, **args)
        for name, p in zip(PARAMETERS, params, strict=True):
            if p.grad is not grads[name]:
                p.grad = grads[name]
    _sum_(params, loss, group)
    update_(optimizer, sae.W_dec, c.decoder == "constrained")
    return loss


def _sum_(params: list[torch.nn.Parameter], loss: Tensor, group: dist.ProcessGroup | None) -> None:
    """One all_reduce SUM of every gradient and the loss, flattened into one buffer (DIST-3)."""
    grads: list[Tensor] = []
    for p in params:
        assert p.grad is not None
        grads.append(p.grad)
    flat = torch.cat([g.reshape(-1) for g in grads] + [loss.reshape(1).to(grads[0].dtype)])
    dist.all_reduce(flat, group=group)
    start = 0
    for g in grads:
        g.copy_(flat[start : start + g.numel()].view_as(g))
        start += g.numel()
    loss.copy_(flat[start])


def data_parallel_fire_counts(f: Tensor, group: dist.ProcessGroup | None = None) -> Tensor:
    """Each latent's number of firing examples in the whole batch: the slices' counts summed (DIST-5,
    DEAD-1)."""
    counts = fire_counts(f)
    dist.all_reduce(counts, group=group)
    return counts


def data_parallel_steps_since_fired(
    steps_since: Tensor, f: Tensor, group: dist.ProcessGroup | None = None
) -> Tensor:
    """DEAD-3's counter on the whole batch: 0 where the latent fired on an example of any slice (an
    all_reduce MAX of the slices' fired masks), `steps_since + 1` elsewhere (DIST-5). The same as each
    process updating a copy on its slice and taking the MIN over processes (OpenAI's `train.py`)."""
    fired = (f > 0).any(dim=0).to(torch.int64)
    dist.all_reduce(fired, op=dist.ReduceOp.MAX, group=group)
    return torch.where(fired.bool(), torch.zeros_like(steps_since), steps_since + 1)
