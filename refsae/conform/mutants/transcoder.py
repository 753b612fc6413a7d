"""Mutants of the transcoder rows (specs/transcoder.md TC-2..TC-6)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from refsae import torch as rt
from refsae.conform.mutants.record import Mutant
from refsae.torch.gradients import autograd_gradients


def _centred_input(x: Tensor, b_dec: Tensor) -> Tensor:
    """x − b_dec where the widths agree (the SAE's tied encode), else x − mean(b_dec)."""
    return x - (b_dec if b_dec.shape[-1] == x.shape[-1] else b_dec.mean(dim=-1, keepdim=True))


def forward_subtracts_b_dec(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, W_skip: Tensor, **options: Any
) -> tuple[Tensor, Tensor]:
    """The encoder reads x − b_dec, the bug SAELens #516 and sparsify #49 fixed."""
    f = torch.relu(torch.einsum("b...i,...ij->b...j", _centred_input(x, b_dec), W_enc) + b_enc)
    return f, rt.transcoder_decode(f, x, W_dec, b_dec, W_skip, **options)


def skip_not_trained(*arrays: Tensor, **options: Any) -> dict[str, Tensor]:
    """W_skip used in the forward pass but detached: it never learns."""
    x, y, W_enc, b_enc, W_dec, b_dec, W_skip = arrays
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}

    def loss(x_: Tensor, **p: Tensor) -> Tensor:
        parts = (p["W_enc"], p["b_enc"], p["W_dec"], p["b_dec"], W_skip.detach())
        total: Tensor = rt.transcoder_total_loss(x_, y, *parts, **options)
        return total

    return {**autograd_gradients(loss, x, params), "W_skip": torch.zeros_like(W_skip)}


def topk_gradient_without_relu_mask(*arrays: Tensor, **options: Any) -> dict[str, Tensor]:
    """TopK's selected latents pass gradient to the encoder even where z <= 0 (their value was clamped
    to 0): the mask `selected` instead of `selected ∧ z > 0` (TOPK-5)."""
    x, y, W_enc, b_enc, W_dec, b_dec, W_skip = arrays
    k = options["k"]
    rest = {n: v for n, v in options.items() if n != "k"}
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec, "W_skip": W_skip}

    def loss(x_: Tensor, **p: Tensor) -> Tensor:
        z = torch.einsum("b...i,...ij->b...j", x_, p["W_enc"]) + p["b_enc"]
        values, indices = torch.topk(z, k, dim=-1)
        straight = values + (values.clamp_min(0) - values).detach()  # forward: ReLU; backward: identity
        f = torch.zeros_like(z).scatter(-1, indices, straight)
        y_hat = rt.transcoder_decode(
            f, x_, p["W_dec"], p["b_dec"], p["W_skip"], decoder=rest["decoder"], eps=rest["eps"]
        )
        R = rt.reconstruction_loss(y, y_hat, reconstruction=rest["reconstruction"])
        S = rt.sparsity_loss(f, p["W_dec"], sparsity=rest["sparsity"])
        total: Tensor = (R + rest["l1_coefficient"] * S).sum()
        return total

    return autograd_gradients(loss, x, params)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "transcoder_forward_subtracts_b_dec",
        "transcoder_forward",
        "TC-2",
        "the encoder reads x − b_dec (SAELens #516, sparsify #49)",
        forward_subtracts_b_dec,
    ),
    Mutant(
        "transcoder_skip_not_trained",
        "transcoder_loss_gradients",
        "TC-6",
        "W_skip detached: its gradient is 0",
        skip_not_trained,
        output="W_skip",
    ),
    Mutant(
        "topk_transcoder_gradient_without_relu_mask",
        "topk_transcoder_loss_gradients",
        "TC-6",
        "selected latents with z <= 0 pass gradient to the encoder (sparsify's fused encoder)",
        topk_gradient_without_relu_mask,
        max_examples=300,
    ),
)
