"""Transcoder loss and gradients by the hand-written backward of the SAE fast paths (PERF-8; TC-2..TC-6).

A transcoder is the SAE's computation with three changes, and the fused cores take them as arguments
rather than being copied: the reconstruction target is y (the loss and its denominator are y's, TC-5),
the encoder reads x uncentred (the `untied` encode, TC-2), and the decode adds the skip term
x W_skipᵀ, one more matrix product forward (`addmm` into the residual's buffer) and one backward,
∂L/∂W_skip = g_ŷᵀ x (TC-6). So the ReLU transcoder runs PERF-1's five-product dense backward in the
model's workspace (`refsae.torch.fast.gradients.relu_fused`) and the TopK transcoder PERF-3's sparse
decode and backward (`refsae.torch.fast.topk.topk_instance`): at k of d_sae latents only the encoder
and the skip are dense. Without a skip connection (`W_skip=None`) the skip's two products are not
run and no W_skip gradient is returned.
"""

from __future__ import annotations

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import (
    DEFAULT_EPS,
    Conventions,
    DecoderConvention,
    ReconstructionConvention,
    SparsityConvention,
    check_coefficient,
)
from refsae.oracle.topk import check_k
from refsae.torch import _validate
from refsae.torch._shapes import (
    EncoderWeights,
    InputBatch,
    LatentVector,
    Scalar,
    SkipWeights,
    TargetBatch,
    TargetDecoderWeights,
    TargetVector,
)
from refsae.torch.fast.gradients import Workspace, relu_fused
from refsae.torch.fast.topk import topk_instance

__all__ = [
    "topk_transcoder_fused_loss_gradients",
    "transcoder_fused_loss_and_gradients",
    "transcoder_fused_loss_gradients",
]


@typechecked
def transcoder_fused_loss_and_gradients(
    x: InputBatch,
    y: TargetBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: TargetDecoderWeights,
    b_dec: TargetVector,
    W_skip: SkipWeights | None,
    *,
    k: int | None = None,
    l1_coefficient: float = 0.0,
    reconstruction: ReconstructionConvention = "sum",
    sparsity: SparsityConvention = "l1",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
    workspace: Workspace | None = None,
    out: dict[str, Tensor] | None = None,
) -> tuple[Scalar, dict[str, Tensor]]:
    """(the transcoder's total loss of TC-5, its gradients keyed W_enc, b_enc, W_dec, b_dec and, with
    a skip connection, W_skip) without autograd: ReLU latents (`k=None`, PERF-1's dense backward) or
    TopK latents (PERF-3's sparse one). `workspace` keeps the (batch, d_sae) buffers between calls;
    `out` maps a parameter name to a tensor to write its gradient into (ReLU, and W_enc without
    instances under TopK). The inputs are never written to."""
    check_coefficient("l1_coefficient", l1_coefficient)
    if k is not None:
        check_k(k, W_enc.shape[-1])
    _validate.check(batch=x, x=x, y=y, W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=b_dec)
    if W_skip is not None:
        _validate.check(x=x, W_skip=W_skip)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y has batch {y.shape[0]} and x has batch {x.shape[0]}: one target per input")
    c = Conventions(
        encode="untied", decoder=decoder, reconstruction=reconstruction, sparsity=sparsity, eps=eps
    )
    ws = Workspace() if workspace is None else workspace
    into = {} if out is None else out
    x, y, W_enc, b_enc = x.detach(), y.detach(), W_enc.detach(), b_enc.detach()
    W_dec, b_dec = W_dec.detach(), b_dec.detach()
    S = None if W_skip is None else W_skip.detach()
    lam = l1_coefficient
    with torch.no_grad():
        if k is None:
            return relu_fused(x, W_enc, b_enc, W_dec, b_dec, lam, c, ws, into, y=y, W_skip=S)
        if x.dim() == 2:
            given = {"W_enc": into["W_enc"]} if "W_enc" in into else {}
            return topk_instance(x, W_enc, b_enc, W_dec, b_dec, k, lam, c, ws, given, y=y, W_skip=S)
        parts = [
            topk_instance(
                x[:, i],
                W_enc[i],
                b_enc[i],
                W_dec[i],
                b_dec[i],
                k,
                lam,
                c,
                ws,
                {},
                y=y[:, i],
                W_skip=None if S is None else S[i],
            )
            for i in range(x.shape[1])
        ]
    loss = torch.stack([part[0] for part in parts]).sum()
    return loss, {name: torch.stack([part[1][name] for part in parts]) for name in parts[0][1]}


@typechecked
def transcoder_fused_loss_gradients(
    x: InputBatch,
    y: TargetBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: TargetDecoderWeights,
    b_dec: TargetVector,
    W_skip: SkipWeights,
    *,
    l1_coefficient: float = 0.0,
    reconstruction: ReconstructionConvention = "sum",
    sparsity: SparsityConvention = "l1",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> dict[str, Tensor]:
    """`transcoder_loss_gradients`' fast path (PERF-8): the ReLU transcoder's gradients."""
    return transcoder_fused_loss_and_gradients(
        x,
        y,
        W_enc,
        b_enc,
        W_dec,
        b_dec,
        W_skip,
        l1_coefficient=l1_coefficient,
        reconstruction=reconstruction,
        sparsity=sparsity,
        decoder=decoder,
        eps=eps,
    )[1]


@typechecked
def topk_transcoder_fused_loss_gradients(
    x: InputBatch,
    y: TargetBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: TargetDecoderWeights,
    b_dec: TargetVector,
    W_skip: SkipWeights,
    *,
    k: int,
    l1_coefficient: float = 0.0,
    reconstruction: ReconstructionConvention = "sum",
    sparsity: SparsityConvention = "l1",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> dict[str, Tensor]:
    """`topk_transcoder_loss_gradients`' fast path (PERF-8): the TopK transcoder's gradients."""
    return transcoder_fused_loss_and_gradients(
        x,
        y,
        W_enc,
        b_enc,
        W_dec,
        b_dec,
        W_skip,
        k=k,
        l1_coefficient=l1_coefficient,
        reconstruction=reconstruction,
        sparsity=sparsity,
        decoder=decoder,
        eps=eps,
    )[1]
