"""The loss gradients in PyTorch, by autograd (GRAD; the fused backward: `refsae.torch.fast.gradients`).

Every function works on CPU and CUDA in float64, float32, bfloat16 and float16, with or without
the instance axis, with no Python loop over batch or latents; each is the twin of the function of
the same name in `refsae.oracle.gradients` and is proven against it by the rows of
`refsae.checking.rows.gradients`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import (
    Conventions,
)
from refsae.torch._shapes import DecoderWeights, EncoderWeights, InputBatch, InputVector, LatentVector
from refsae.torch.losses import total_loss

__all__ = ["loss_gradients"]


@typechecked
def loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    l1_coefficient: float,
    conventions: Conventions = Conventions(),
) -> dict[str, Tensor]:
    """Autograd gradients of `total_loss` keyed W_enc, b_enc, W_dec, b_dec (GRAD-1)."""
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    return autograd_gradients(total_loss, x, params, l1_coefficient=l1_coefficient, conventions=conventions)


def autograd_gradients(
    loss_fn: Callable[..., Tensor], x: Tensor, params: dict[str, Tensor], **options: Any
) -> dict[str, Tensor]:
    """∂ loss_fn(x, **params, **options) / ∂params by autograd, on detached leaf copies (the inputs
    are left untouched), keyed like `params`: the one way every `*_loss_gradients` of refsae.torch
    differentiates its loss."""
    leaves = {name: p.detach().requires_grad_(True) for name, p in params.items()}
    with torch.enable_grad():
        loss = loss_fn(x.detach(), **leaves, **options)
        grads = torch.autograd.grad(loss, list(leaves.values()))
    return dict(zip(leaves, grads, strict=True))
