"""Mutants of JumpReLU's tanh and pre-activation penalties (specs/jumprelu.md JUMP-9..JUMP-12)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from refsae import torch as rt
from refsae.conform.mutants.record import Mutant
from refsae.torch.forward import pre_activations
from refsae.torch.gradients import autograd_gradients
from refsae.torch.jumprelu import JumpReLUFunction


def _tanh_loss(norms: bool, through_threshold: bool) -> Callable[..., Tensor]:
    def loss(
        x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, theta: Tensor, **o: Any
    ) -> Tensor:
        c = o["conventions"]
        base = rt.jumprelu_total_loss(
            x, W_enc, b_enc, W_dec, b_dec, theta, l0_coefficient=0.0, bandwidth=o["bandwidth"], conventions=c
        )
        z = pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
        if through_threshold:
            f: Tensor = JumpReLUFunction.apply(z, theta, o["bandwidth"])  # type: ignore[no-untyped-call]
        else:
            f = z * (z > theta).to(z.dtype)  # plain autograd: θ gets nothing from the penalty
        s = torch.linalg.vector_norm(W_dec, dim=-1) if norms else torch.ones_like(theta)
        penalty = torch.tanh(o["tanh_scale"] * f * s).sum(dim=(0, -1)) / x.shape[0]
        total: Tensor = base + o["l0_coefficient"] * penalty.sum()
        return total

    return loss


def tanh_without_decoder_norm(*arrays: Tensor, **options: Any) -> Tensor:
    return _tanh_loss(norms=False, through_threshold=True)(*arrays, **options)


def tanh_penalty_skips_threshold(*arrays: Tensor, **options: Any) -> dict[str, Tensor]:
    x, W_enc, b_enc, W_dec, b_dec, theta = arrays
    o = {k: v for k, v in options.items() if k != "parametrisation"}
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec, "theta": theta}
    out = autograd_gradients(_tanh_loss(norms=True, through_threshold=False), x, params, **o)
    grad_theta = out.pop("theta")
    log = options.get("parametrisation") == "log_theta"
    out["threshold"] = theta * grad_theta if log else grad_theta
    return out


def ste_to_input_with_wrong_sign(*arrays: Tensor, **options: Any) -> dict[str, Tensor]:
    """Under `also_input`, the estimate added to z with θ's sign (−) instead of the opposite one."""
    out = dict(rt.jumprelu_loss_gradients(*arrays, **{**options, "ste": "threshold_only"}))
    if options.get("ste") == "also_input":
        extra = rt.jumprelu_loss_gradients(*arrays, **options)
        for k in ("W_enc", "b_enc", "b_dec"):
            out[k] = 2 * out[k] - extra[k]
    return out


def pre_act_ignores_dead_mask(*arrays: Tensor, **options: Any) -> Tensor:
    *params, dead = arrays
    x, W_enc, b_enc, W_dec, b_dec, theta = params
    everyone = torch.ones_like(dead)
    return rt.jumprelu_pre_act_penalty(x, W_enc, b_enc, W_dec, b_dec, theta, everyone, **options)


def pre_act_without_decoder_norm(*arrays: Tensor, **options: Any) -> Tensor:
    x, W_enc, b_enc, _, b_dec, theta, dead = arrays
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=options["encode"])
    terms = dead.to(x.dtype) * torch.relu(theta - z)
    loss: Tensor = options["pre_act_coefficient"] * terms.sum(dim=(0, -1)).sum() / x.shape[0]
    return loss


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "tanh_without_decoder_norm",
        "jumprelu_tanh_total_loss",
        "JUMP-9",
        "tanh(c f) without the decoder norm",
        tanh_without_decoder_norm,
        # bfloat16's bounds hide it on most examples: on seeds 1..20 the first flag came at example 90
        # (median) and 525 (latest), so 100 examples missed it on 9 seeds (conformance/mutant_seeds.md)
        max_examples=1000,
    ),
    Mutant(
        "tanh_penalty_skips_threshold",
        "jumprelu_tanh_loss_gradients",
        "JUMP-10",
        "the penalty differentiated by plain autograd: θ gets no straight-through gradient from it",
        tanh_penalty_skips_threshold,
    ),
    Mutant(
        "ste_to_input_with_wrong_sign",
        "jumprelu_loss_gradients",
        "JUMP-15",
        "the straight-through estimate passed to z with the threshold's sign",
        ste_to_input_with_wrong_sign,
        unseen_by_selftest="only `ste=also_input` is wrong; the canonical adapter's `ste` is detected, and "
        "`threshold_only` is right",
    ),
    Mutant(
        "pre_act_ignores_dead_mask",
        "jumprelu_pre_act_penalty",
        "JUMP-11",
        "every latent penalised, not only the dead ones",
        pre_act_ignores_dead_mask,
    ),
    Mutant(
        "pre_act_without_decoder_norm",
        "jumprelu_pre_act_penalty",
        "JUMP-11",
        "relu(θ − z) not weighted by ‖W_dec_j‖",
        pre_act_without_decoder_norm,
    ),
)
