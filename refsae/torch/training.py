"""The training step in PyTorch, in the specified order (STEP-1..STEP-3).

`train_step_` is what a training loop calls: forward, loss, backward, parallel-gradient removal,
`optimizer.step()`, then the unit-norm constraint. `training_step` is its functional twin for the
operation table: it loads the given parameters and Adam state into an `SAE` and a
`torch.optim.Adam`, runs `train_step_`, and returns the new state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from refsae.conventions import Conventions, check_choice
from refsae.oracle.matryoshka import Levels
from refsae.oracle.optimizer import PARAMETERS, check_hyperparameters
from refsae.torch.fast.constraints import remove_parallel_component_, renormalise_rows_
from refsae.torch.fast.gradients import fused_loss_and_gradients
from refsae.torch.fast.matryoshka import matryoshka_batchtopk_fused_loss_and_gradients
from refsae.torch.fast.topk import topk_fused_loss_and_gradients
from refsae.torch.fast.transcoder import transcoder_fused_loss_and_gradients
from refsae.torch.matryoshka import matryoshka_batchtopk_total_loss
from refsae.torch.model import SAE, SAEConfig
from refsae.torch.optimizer import check_parameter_maps
from refsae.torch.transcoder_model import Transcoder

__all__ = ["matryoshka_train_step_", "train_step_", "training_step", "transcoder_train_step_"]

TensorMap = Mapping[str, Tensor]


BACKWARDS = ("fused", "autograd")


def train_step_(sae: SAE, optimizer: torch.optim.Optimizer, x: Tensor, *, backward: str = "fused") -> Tensor:
    """One step in the specified order (STEP-1); parallel removal and the constraint only under the
    `constrained` decoder (STEP-2). Returns the loss before the step.

    `backward="fused"` (default) computes the loss and all four gradients by the hand-written backward
    of `refsae.torch.fast.gradients` (ReLU; into the parameters' existing `.grad` tensors) or
    `refsae.torch.fast.topk` (TopK SAEs) in the model's workspace (PERF-1..PERF-3); `"autograd"` runs
    `sae.loss(x).backward()`. Both are checked against the oracle."""
    check_choice("backward", backward, BACKWARDS)
    constrained = sae.config.conventions.decoder == "constrained"
    if backward == "autograd":
        optimizer.zero_grad(set_to_none=True)
        loss = sae.loss(x)
        loss.backward()  # type: ignore[no-untyped-call]
        if constrained and sae._hook is None:
            sae.remove_parallel_grad_()
    else:
        loss = _fused_backward(sae, x)
        if constrained:  # a registered hook never fires without autograd: remove here either way (PAR-4)
            remove_parallel_component_(sae.W_dec.detach(), sae.W_dec.grad)  # type: ignore[arg-type]
    optimizer.step()
    if constrained:
        sae.constrain_()
    return loss.detach()


def _fused_backward(sae: SAE, x: Tensor) -> Tensor:
    params = {name: getattr(sae, name) for name in PARAMETERS}
    args = (x, sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec)
    lam, c, ws = sae.config.l1_coefficient, sae.config.conventions, sae.workspace
    out = {n: p.grad for n, p in params.items() if p.grad is not None and p.grad.shape == p.shape}
    if sae.config.k is not None:
        loss, grads = topk_fused_loss_and_gradients(
            *args, k=sae.config.k, l1_coefficient=lam, conventions=c, workspace=ws, out=out
        )
    else:
        loss, grads = fused_loss_and_gradients(
            *args, l1_coefficient=lam, conventions=c, workspace=ws, out=out
        )
    for name, p in params.items():
        if p.grad is not grads[name]:
            p.grad = grads[name]
    return loss


def matryoshka_train_step_(
    sae: SAE,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    *,
    k: int,
    widths: Sequence[int],
    levels: Levels = "summed",
    backward: str = "fused",
) -> Tensor:
    """One Matryoshka BatchTopK step of `sae` (its parameters and conventions; its own `k` and λ are
    not used) in the specified order (STEP-1): the loss of MAT-3/MAT-4 and its gradients, the
    parallel-gradient removal, `optimizer.step()`, the unit-norm constraint (the last two only under the
    `constrained` decoder, STEP-2). `backward="fused"` (default) uses the grouped sparse backward of
    `refsae.torch.fast.matryoshka` (PERF-7); `"autograd"` differentiates
    `matryoshka_batchtopk_total_loss` (one masked decode per level). Returns the loss before the step."""
    check_choice("backward", backward, BACKWARDS)
    c = sae.config.conventions
    args = (x, sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec)
    options: dict[str, Any] = {"k": k, "widths": widths, "levels": levels, "conventions": c}
    if backward == "autograd":
        optimizer.zero_grad(set_to_none=True)
        loss = matryoshka_batchtopk_total_loss(*args, **options)
        loss.backward()  # type: ignore[no-untyped-call]
    else:
        loss, grads = matryoshka_batchtopk_fused_loss_and_gradients(*args, **options, workspace=sae.workspace)
        for name in PARAMETERS:
            getattr(sae, name).grad = grads[name]
    update_(optimizer, sae.W_dec, c.decoder == "constrained")
    return loss.detach()


def transcoder_train_step_(
    tc: Transcoder, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor, *, backward: str = "fused"
) -> Tensor:
    """One transcoder step in the specified order (STEP-1): the loss of TC-5 and its gradients (TC-6),
    the parallel-gradient removal on W_dec, `optimizer.step()`, the unit-norm constraint (the last two
    only under the `constrained` decoder, STEP-2). `backward="fused"` (default) uses
    `refsae.torch.fast.transcoder` (PERF-8: PERF-1's dense backward for ReLU, PERF-3's sparse one for
    TopK, into the parameters' existing `.grad` tensors where it can); `"autograd"` differentiates
    `tc.loss(x, y)`. Returns the loss before the step."""
    check_choice("backward", backward, BACKWARDS)
    params = dict(tc.named_parameters())
    if backward == "autograd":
        optimizer.zero_grad(set_to_none=True)
        loss = tc.loss(x, y)
        loss.backward()  # type: ignore[no-untyped-call]
    else:
        c = tc.config
        out = {n: p.grad for n, p in params.items() if p.grad is not None and p.grad.shape == p.shape}
        loss, grads = transcoder_fused_loss_and_gradients(
            x,
            y,
            tc.W_enc,
            tc.b_enc,
            tc.W_dec,
            tc.b_dec,
            tc.W_skip,
            k=c.k,
            l1_coefficient=c.l1_coefficient,
            reconstruction=c.reconstruction,
            sparsity=c.sparsity,
            decoder=c.decoder,
            eps=c.eps,
            workspace=tc.workspace,
            out=out,
        )
        for name, p in params.items():
            if p.grad is not grads[name]:
                p.grad = grads[name]
    update_(optimizer, tc.W_dec, tc.config.decoder == "constrained")
    return loss.detach()


def update_(optimizer: torch.optim.Optimizer, W_dec: torch.nn.Parameter, constrained: bool) -> None:
    """STEP-1 after the gradients: under the `constrained` decoder the parallel-gradient removal on
    W_dec (PAR-1), `optimizer.step()`, then the rows renormalised (CON-1, CON-3); otherwise the step."""
    if constrained and W_dec.grad is not None:
        remove_parallel_component_(W_dec.detach(), W_dec.grad)
    optimizer.step()
    if constrained:
        renormalise_rows_(W_dec)


def training_step(
    x: Tensor,
    param: TensorMap,
    exp_avg: TensorMap,
    exp_avg_sq: TensorMap,
    *,
    step: int,
    lr: float,
    l1_coefficient: float,
    conventions: Conventions = Conventions(),
    betas: tuple[float, float] = (0.9, 0.999),
    adam_eps: float = 1e-8,
    weight_decay: float = 0.0,
    order: str = "specified",
    backward: str = "fused",
    k: int | None = None,
) -> dict[str, Any]:
    """Functional twin of `train_step_` with the oracle's signature (the `specified` order only; with
    `k`, a TopK SAE's step)."""
    if order != "specified":
        raise ValueError("refsae.torch implements the specified order only (STEP-1)")
    check_hyperparameters(lr, betas, adam_eps, weight_decay)
    check_parameter_maps(param, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    W_enc = param["W_enc"]
    inst = W_enc.shape[:-2]
    config = SAEConfig(
        d_in=W_enc.shape[-2],
        d_sae=W_enc.shape[-1],
        n_inst=inst[0] if inst else None,
        l1_coefficient=l1_coefficient,
        conventions=conventions,
        k=k,
        dtype=W_enc.dtype,
        device=W_enc.device,
    )
    sae = SAE(config)
    with torch.no_grad():
        for name in PARAMETERS:
            getattr(sae, name).copy_(param[name])
    optimizer = torch.optim.Adam(
        sae.parameters(), lr=lr, betas=betas, eps=adam_eps, weight_decay=weight_decay
    )
    for name in PARAMETERS:
        optimizer.state[getattr(sae, name)] = {
            "step": torch.tensor(float(step)),
            "exp_avg": exp_avg[name].detach().clone(),
            "exp_avg_sq": exp_avg_sq[name].detach().clone(),
        }
    loss = train_step_(sae, optimizer, x, backward=backward)
    return {
        "param": {n: getattr(sae, n).detach() for n in PARAMETERS},
        "exp_avg": {n: optimizer.state[getattr(sae, n)]["exp_avg"] for n in PARAMETERS},
        "exp_avg_sq": {n: optimizer.state[getattr(sae, n)]["exp_avg_sq"] for n in PARAMETERS},
        "loss": loss,
    }
