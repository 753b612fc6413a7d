"""Mutants of the activation variants' rows: TopK, JumpReLU, BatchTopK, Gated, AuxK.

Each record names its row, the clause it breaks and the change (`refsae.conform.mutants.record`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from refsae import torch as rt
from refsae.conform.mutants.record import ALL_BUT_F16, CANONICAL_ONLY, F64, NAMED, Mutant
from refsae.conventions import Conventions
from refsae.torch.gradients import autograd_gradients


def _gated_loss_b_dec_attached(
    x: Tensor,
    W_enc: Tensor,
    b_gate: Tensor,
    r_mag: Tensor,
    b_mag: Tensor,
    W_dec: Tensor,
    b_dec: Tensor,
    *,
    l1_coefficient: float,
    conventions: Conventions,
    aux_decoder: str,
) -> Tensor:
    """The auxiliary reconstruction with W_dec detached but b_dec not: a one-word slip."""
    c = conventions
    pi_gate, pi_mag = rt.gated_pre_activations(x, W_enc, b_gate, r_mag, b_mag, b_dec, encode=c.encode)
    x_hat = rt.decode(
        (pi_gate > 0).to(x.dtype) * torch.relu(pi_mag), W_dec, b_dec, decoder=c.decoder, eps=c.eps
    )
    a = torch.relu(pi_gate)
    x_aux = rt.decode(a, W_dec.detach(), b_dec, decoder=c.decoder, eps=c.eps)
    R = rt.reconstruction_loss
    loss: Tensor = (
        R(x, x_hat, reconstruction=c.reconstruction)
        + l1_coefficient * rt.sparsity_loss(a, W_dec, sparsity=c.sparsity)
        + R(x, x_aux, reconstruction=c.reconstruction)
    ).sum()
    return loss


def topk_keeps_negatives(z: Tensor, *, k: int) -> Tensor:
    values, indices = z.topk(k, dim=-1)
    return torch.zeros_like(z).scatter(-1, indices, values)


def topk_by_magnitude(z: Tensor, *, k: int) -> Tensor:
    indices = torch.topk(z.abs(), k, dim=-1).indices
    return torch.zeros_like(z).scatter(-1, indices, torch.relu(z.gather(-1, indices)))


def decode_sparse_without_b_dec(
    values: Tensor, indices: Tensor, W_dec: Tensor, b_dec: Tensor, **kw: Any
) -> Tensor:
    return rt.decode_sparse(values, indices, W_dec, torch.zeros_like(b_dec), **kw)


def jumprelu_non_strict(z: Tensor, theta: Tensor) -> Tensor:
    return z * (z >= theta).to(z.dtype)


def jumprelu_threshold_gradient_without_theta(*args: Tensor, **kw: Any) -> dict[str, Tensor]:
    out = rt.jumprelu_loss_gradients(*args, **kw)
    reconstruction = rt.jumprelu_loss_gradients(*args, **{**kw, "l0_coefficient": 0.0})["threshold"]
    out["threshold"] = out["threshold"] - reconstruction + reconstruction / args[-1]
    return out


def jumprelu_l0_trains_the_encoder(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, theta: Tensor, **kw: Any
) -> dict[str, Tensor]:
    out = dict(rt.jumprelu_loss_gradients(x, W_enc, b_enc, W_dec, b_dec, theta, **kw))
    c: Conventions = kw["conventions"]
    z = rt.pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    K = ((z - theta).abs() < kw["bandwidth"] / 2).to(z.dtype)
    out["b_enc"] = out["b_enc"] + kw["l0_coefficient"] / x.shape[0] / kw["bandwidth"] * K.sum(dim=0)
    return out


def batchtopk_per_example(z: Tensor, *, k: int) -> Tensor:
    return rt.topk(z, k=k)


def batchtopk_threshold_min_over_zeros(
    threshold: Tensor, f: Tensor, *, n_batches: int, update: str = "mean", beta: float = 0.99
) -> Tensor:
    m = f.amin(dim=(0, -1))
    if update == "ema":
        return beta * threshold + (1 - beta) * m
    return threshold + (m - threshold) / (n_batches + 1)


def gated_magnitude_uses_gate_bias(
    x: Tensor, W_enc: Tensor, b_gate: Tensor, r_mag: Tensor, b_mag: Tensor, b_dec: Tensor, **kw: Any
) -> tuple[Tensor, Tensor]:
    return rt.gated_encode(x, W_enc, b_gate, r_mag, b_gate, b_dec, **kw)


def gated_penalty_on_f(
    x: Tensor,
    W_enc: Tensor,
    b_gate: Tensor,
    r_mag: Tensor,
    b_mag: Tensor,
    W_dec: Tensor,
    b_dec: Tensor,
    *,
    l1_coefficient: float,
    conventions: Conventions,
    aux_decoder: str,
) -> Tensor:
    """The sparsity penalty on the latents f instead of the gate's ReLU(π_gate): a standard-SAE habit."""
    c = conventions
    f, pi_gate = rt.gated_encode(x, W_enc, b_gate, r_mag, b_mag, b_dec, encode=c.encode)
    R = rt.reconstruction_loss
    x_aux = rt.decode(torch.relu(pi_gate), W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    loss: Tensor = (
        R(x, rt.decode(f, W_dec, b_dec, decoder=c.decoder, eps=c.eps), reconstruction=c.reconstruction)
        + l1_coefficient * rt.sparsity_loss(f, W_dec, sparsity=c.sparsity)
        + R(x, x_aux, reconstruction=c.reconstruction)
    ).sum()
    return loss


def gated_gradients_b_dec_attached(
    x: Tensor,
    W_enc: Tensor,
    b_gate: Tensor,
    r_mag: Tensor,
    b_mag: Tensor,
    W_dec: Tensor,
    b_dec: Tensor,
    **kw: Any,
) -> dict[str, Tensor]:
    params = {
        "W_enc": W_enc,
        "b_gate": b_gate,
        "r_mag": r_mag,
        "b_mag": b_mag,
        "W_dec": W_dec,
        "b_dec": b_dec,
    }
    return autograd_gradients(_gated_loss_b_dec_attached, x, params, **kw)


def auxk_selects_among_all_latents(z: Tensor, dead: Tensor, **kw: Any) -> Tensor:
    return rt.auxk_latents(z, torch.ones_like(dead), **kw)


def auxk_loss_without_scale(*arrays: Tensor, **options: Any) -> Tensor:
    return rt.auxk_loss(*arrays, **{**options, "scale": "unscaled"})


def auxk_loss_decodes_with_b_dec(*arrays: Tensor, **options: Any) -> Tensor:
    return rt.auxk_loss(*arrays, **{**options, "aux_decode": "with_b_dec"})


def auxk_gradients_residual_attached(*arrays: Tensor, **options: Any) -> dict[str, Tensor]:
    return rt.auxk_loss_gradients(*arrays, **{**options, "residual": "attached"})


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "topk_keeps_negatives",
        "topk",
        "TOPK-1",
        "no ReLU after the top-k selection",
        topk_keeps_negatives,
        dtypes=ALL_BUT_F16,
        output="f",
    ),
    Mutant(
        "topk_by_magnitude",
        "topk",
        "TOPK-1",
        "selects the k largest |z| instead of the k largest z",
        topk_by_magnitude,
        dtypes=ALL_BUT_F16,
        output="f",
    ),
    Mutant(
        "decode_sparse_without_b_dec",
        "decode_sparse",
        "TOPK-4",
        "the sparse decode forgets b_dec",
        decode_sparse_without_b_dec,
    ),
    Mutant(
        "jumprelu_non_strict",
        "jumprelu",
        "JUMP-1",
        "z >= θ instead of z > θ",
        jumprelu_non_strict,
        verdict="tie",
    ),
    Mutant(
        "jumprelu_threshold_gradient_without_theta",
        "jumprelu_loss_gradients",
        "JUMP-3",
        "the reconstruction's pseudo-gradient of θ without its θ factor (−g·K/ε instead of −θ·g·K/ε)",
        jumprelu_threshold_gradient_without_theta,
    ),
    Mutant(
        "jumprelu_l0_trains_the_encoder",
        "jumprelu_loss_gradients",
        "JUMP-4",
        "the L0 step passes its pseudo-derivative +(1/ε)K to z as well",
        jumprelu_l0_trains_the_encoder,
        dtypes=F64,
        output="b_enc",
    ),
    Mutant(
        "batchtopk_per_example",
        "batchtopk",
        "BTOPK-1",
        "k per example instead of k·B per batch",
        batchtopk_per_example,
        dtypes=ALL_BUT_F16,
    ),
    Mutant(
        "batchtopk_threshold_min_over_zeros",
        "batchtopk_update_threshold",
        "BTOPK-4",
        "the batch minimum over all latents, zeros included, instead of the positive ones",
        batchtopk_threshold_min_over_zeros,
        dtypes=F64,
    ),
    Mutant(
        "gated_magnitude_uses_gate_bias",
        "gated_encode",
        "GATE-1",
        "the magnitude path adds b_gate instead of b_mag",
        gated_magnitude_uses_gate_bias,
    ),
    Mutant(
        "gated_penalty_on_f",
        "gated_total_loss",
        "GATE-3",
        "the sparsity penalty on f instead of ReLU(π_gate)",
        gated_penalty_on_f,
        dtypes=("float32",),
        output="loss",
    ),
    Mutant(
        "gated_gradients_b_dec_attached",
        "gated_loss_gradients",
        "GATE-4",
        "the auxiliary decode detaches W_dec but not b_dec",
        gated_gradients_b_dec_attached,
        dtypes=("float32",),
        output="b_dec",
    ),
    Mutant(
        "auxk_selects_among_all_latents",
        "auxk_latents",
        "AUXK-2",
        "the auxiliary top-k ignores the dead mask",
        auxk_selects_among_all_latents,
    ),
    # the bug shows only where scale=dead_fraction and an instance has some, not all, latents dead:
    # under the ci profile the row's strategy first draws such a case at example 110 (measured)
    Mutant(
        "auxk_loss_without_scale",
        "auxk_loss",
        "AUXK-5",
        "ignores `scale` (always unscaled)",
        auxk_loss_without_scale,
        dtypes=("float32",),
        output="loss",
        max_examples=300,
        unseen_by_selftest=CANONICAL_ONLY.format("scale=dead_fraction", "unscaled"),
    ),
    Mutant(
        "auxk_loss_decodes_with_b_dec",
        "auxk_loss",
        "AUXK-4",
        "ignores `aux_decode` (always decodes with b_dec)",
        auxk_loss_decodes_with_b_dec,
        dtypes=("float32",),
        output="loss",
        unseen_by_selftest=NAMED.format("aux_decode", "with_b_dec"),
    ),
    Mutant(
        "auxk_gradients_residual_attached",
        "auxk_loss_gradients",
        "AUXK-8",
        "ignores `residual` (the residual left attached)",
        auxk_gradients_residual_attached,
        dtypes=("float32",),
        output="x_hat",
        unseen_by_selftest=NAMED.format("residual", "attached"),
    ),
)
