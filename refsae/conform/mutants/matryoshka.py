"""Mutants of the Matryoshka rows (specs/matryoshka.md MAT-2..MAT-7)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from refsae import torch as rt
from refsae.conform.mutants.record import Mutant
from refsae.oracle.matryoshka import level_weights
from refsae.torch.batchtopk import selected
from refsae.torch.forward import decoder_directions, pre_activations
from refsae.torch.gradients import autograd_gradients
from refsae.torch.losses import reconstruction_loss


def levels_averaged_twice(*arrays: Tensor, **options: Any) -> Tensor:
    """The weights 1/n and then the mean over levels: Σ_i R_i / n² (dictionary_learning's default)."""
    loss: Tensor = rt.matryoshka_batchtopk_total_loss(*arrays, **{**options, "levels": "averaged"})
    return loss / len(options["widths"])


def inner_levels_without_b_dec(f: Tensor, W_dec: Tensor, b_dec: Tensor, **options: Any) -> Tensor:
    x_hats = rt.matryoshka_decode(f, W_dec, b_dec, **options)
    return torch.cat([x_hats[:-1] - b_dec, x_hats[-1:]])


def _loss(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, *, per_level: bool, detach: bool,
    **o: Any,
) -> Tensor:  # fmt: skip
    """The levels' loss, each level selecting its own k·B among its prefix (`per_level`), or the inner
    levels decoding detached latents (`detach`)."""
    c = o["conventions"]
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    W_hat = decoder_directions(W_dec, decoder=c.decoder, eps=c.eps)
    widths = o["widths"]
    f_all = torch.where(selected(z.detach(), o["k"]), torch.relu(z), torch.zeros_like(z))
    total = torch.zeros((), dtype=x.dtype, device=x.device)
    for i, (w, m) in enumerate(zip(level_weights(len(widths), o["levels"]), widths, strict=True)):
        if per_level:
            z_m = z[..., :m]
            f = torch.where(selected(z_m.detach(), min(o["k"], m)), torch.relu(z_m), torch.zeros_like(z_m))
        else:
            f = f_all[..., :m].detach() if detach and i < len(widths) - 1 else f_all[..., :m]
        x_hat = torch.einsum("b...j,...ji->b...i", f, W_hat[..., :m, :]) + b_dec
        total = total + w * reconstruction_loss(x, x_hat, reconstruction=c.reconstruction).sum()
    return total


def selection_per_level(*arrays: Tensor, **options: Any) -> Tensor:
    return _loss(*arrays, per_level=True, detach=False, **options)


def inner_levels_train_decoder_only(*arrays: Tensor, **options: Any) -> dict[str, Tensor]:
    x, W_enc, b_enc, W_dec, b_dec = arrays
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    return autograd_gradients(
        lambda *a, **o: _loss(*a, per_level=False, detach=True, **o), x, params, **options
    )


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "matryoshka_levels_averaged_twice",
        "matryoshka_batchtopk_total_loss",
        "MAT-3",
        "each level weighted 1/n and the weighted losses averaged again: Σ R_i / n²",
        levels_averaged_twice,
    ),
    Mutant(
        "matryoshka_inner_levels_without_b_dec",
        "matryoshka_decode",
        "MAT-2",
        "b_dec added to the full level only",
        inner_levels_without_b_dec,
    ),
    Mutant(
        "matryoshka_selection_per_level",
        "matryoshka_batchtopk_total_loss",
        "MAT-4",
        "each level selects its own k·B latents among its prefix (a TopK per level)",
        selection_per_level,
        max_examples=300,
        # not claimed in bfloat16: on seeds 1..20 its checker flagged it on 5 seeds within 300 examples
        # and on 19 within 1000 (first flag at example 457 median, 924 latest). Why (measured on 1500
        # bfloat16 cases of the row): the cases hold a gap at the k·B-th value (MAT-8), so the global
        # selection is the chosen latents, and an inner level's own selection only adds latents; where
        # the others were pushed below 0 those are 0, or a prefix already holds its k·B, and the loss
        # is unchanged: 89 % of the cases. On the other 11 % the change is 0.13 % of the magnitude
        # Σ(|x̂| + |x|)² (median), 1.2 % of the allowed error (17 % at the 90th percentile): the bound is
        # 21 bfloat16 roundings (2^-8 each) of that magnitude, 9 % of it, against 1e-6 of it in
        # float32. 6 % of those cases, 0.2 % of all, exceed it.
        dtypes=("float32",),
    ),
    Mutant(
        "matryoshka_inner_levels_train_decoder_only",
        "matryoshka_batchtopk_loss_gradients",
        "MAT-7",
        "the inner levels decode detached latents: the encoder learns from the full level only",
        inner_levels_train_decoder_only,
    ),
)
