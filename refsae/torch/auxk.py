"""The AuxK auxiliary loss in PyTorch (AUXK-1..AUXK-9): live latents masked to −inf, one
`torch.topk` of the largest possible k over the instances, then each instance keeps its own
min(k_aux, n_dead) (no Python loop); plain autograd."""

from __future__ import annotations

import torch
from jaxtyping import Shaped
from torch import Tensor

from refsae._typecheck import CHECKS_ENABLED, typechecked
from refsae.conventions import DEFAULT_EPS, DecoderConvention
from refsae.oracle.auxk import AuxDecode, AuxKOptions, Normalisation, Residual, Scale, Values
from refsae.torch import _validate
from refsae.torch._shapes import DecoderWeights, InputBatch, InputVector, LatentBatch, Scalar
from refsae.torch.forward import decoder_directions
from refsae.torch.losses import total_variance

__all__ = ["auxk_latents", "auxk_loss", "auxk_loss_gradients"]


def dead_mask(dead: Tensor) -> Tensor:
    """The dead mask as bool; 0/1 or boolean only (AUXK-1)."""
    if dead.dtype.is_floating_point or dead.dtype.is_complex:
        raise ValueError("dead must be a 0/1 or boolean mask of shape (*inst, d_sae)")
    if CHECKS_ENABLED and not bool(((dead == 0) | (dead == 1)).all()):
        raise ValueError("dead must be a 0/1 or boolean mask of shape (*inst, d_sae)")
    return dead.bool()


@typechecked
def auxk_latents(
    z: LatentBatch,
    dead: Shaped[Tensor, "*inst d_sae"],
    *,
    k_aux: int,
    values: Values = "relu",
) -> LatentBatch:
    """v(z) at the min(k_aux, n_dead) largest dead pre-activations per example, 0 elsewhere
    (AUXK-2, AUXK-3); differentiable in z."""
    AuxKOptions(k_aux, values)
    _validate.check(batch=z, batch_name="z", z=z)
    is_dead = dead_mask(dead).to(z.device)
    k_each = is_dead.sum(dim=-1).clamp(max=k_aux)  # (*inst)
    k_max = min(k_aux, z.shape[-1])
    top, indices = torch.topk(torch.where(is_dead, z, float("-inf")), k_max, dim=-1, sorted=True)
    keep = torch.arange(k_max, device=z.device) < k_each[..., None]
    kept = torch.where(keep, torch.relu(top) if values == "relu" else top, torch.zeros_like(top))
    return torch.zeros_like(z).scatter(-1, indices, kept)


@typechecked
def auxk_loss(
    x: InputBatch,
    x_hat: InputBatch,
    z: LatentBatch,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    dead: Shaped[Tensor, "*inst d_sae"],
    *,
    k_aux: int,
    values: Values = "relu",
    aux_decode: AuxDecode = "without_b_dec",
    scale: Scale = "unscaled",
    normalisation: Normalisation = "residual_variance",
    residual: Residual = "detached",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> Scalar:
    """Σ_inst s · Σ_{b,d} (ê − e)² / D (AUXK-1..AUXK-7)."""
    o = AuxKOptions(k_aux, values, aux_decode, scale, normalisation, residual, decoder, eps)
    _validate.check(batch=x, x=x, x_hat=x_hat, z=z, W_dec=W_dec, b_dec=b_dec)
    a = auxk_latents(z, dead, k_aux=k_aux, values=values)
    e = x - (x_hat if residual == "attached" else x_hat.detach())
    e_hat = torch.einsum("b...j,...ji->b...i", a, decoder_directions(W_dec, decoder=decoder, eps=eps))
    if o.aux_decode == "with_b_dec":
        e_hat = e_hat + b_dec
    elif o.aux_decode == "cancelled_b_dec":  # OpenAI's train.py: b_dec on both sides, one detached
        e_hat = e_hat + b_dec - b_dec.detach()
    n_dead = dead_mask(dead).to(z.device).sum(dim=-1)
    # s = min(n_dead / k_aux, 1): the quotient in float64, then one rounding to the dtype
    ratio = (n_dead.to(torch.float64) / k_aux).clamp(max=1.0)
    s = torch.where(n_dead > 0, ratio if scale == "dead_fraction" else torch.ones_like(ratio), 0.0)
    s = s.to(device=x.device, dtype=x.dtype)
    if normalisation == "sum":
        D = torch.full(n_dead.shape, float(x.shape[0]), dtype=x.dtype, device=x.device)
    else:
        D = total_variance(e.detach() if normalisation == "residual_variance" else x)
        if bool(((D == 0) & (n_dead > 0)).any()):
            raise ValueError(f"the {normalisation} normaliser is zero (e.g. a batch of 1): AuxK is undefined")
        # D = 1 where no latent is dead (AUXK-6: s = 0, and D must not matter: a tiny variance would
        # overflow the backward's 1/D in float16, and 0 · inf is NaN; found by the ci profile)
        D = torch.where((D > 0) & (n_dead > 0), D, torch.ones_like(D))
    loss: Tensor = (s * ((e_hat - e) ** 2).sum(dim=(0, -1)) / D).sum()
    return loss


@typechecked
def auxk_loss_gradients(
    x: InputBatch,
    x_hat: InputBatch,
    z: LatentBatch,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    dead: Shaped[Tensor, "*inst d_sae"],
    *,
    k_aux: int,
    values: Values = "relu",
    aux_decode: AuxDecode = "without_b_dec",
    scale: Scale = "unscaled",
    normalisation: Normalisation = "residual_variance",
    residual: Residual = "detached",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> dict[str, Tensor]:
    """Autograd gradients of `auxk_loss` keyed z, W_dec, b_dec, x_hat; an input the loss does not
    reach (b_dec without it, x_hat detached) gets an exact zero gradient (AUXK-8)."""
    leaves = {
        name: t.detach().requires_grad_(True)
        for name, t in (("z", z), ("W_dec", W_dec), ("b_dec", b_dec), ("x_hat", x_hat))
    }
    with torch.enable_grad():
        loss = auxk_loss(
            x.detach(),
            leaves["x_hat"],
            leaves["z"],
            leaves["W_dec"],
            leaves["b_dec"],
            dead,
            k_aux=k_aux,
            values=values,
            aux_decode=aux_decode,
            scale=scale,
            normalisation=normalisation,
            residual=residual,
            decoder=decoder,
            eps=eps,
        )
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    return {
        name: torch.zeros_like(leaf) if g is None else g
        for (name, leaf), g in zip(leaves.items(), grads, strict=True)
    }
