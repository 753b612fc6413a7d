"""The resampling updates in PyTorch (RES-10..RES-15), twins of `refsae.oracle.resample_update`.

Given the dead latents and the chosen inputs (or directions), they return the new parameters and the
mask of resampled latents; every random choice is made by the caller (RES-16).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from jaxtyping import Shaped
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.torch._shapes import DecoderWeights, LatentVector
from refsae.torch._validate import finite, same_dtype_and_device
from refsae.torch.constraints import row_scale
from refsae.torch.optimizer import check_parameter_maps

__all__ = ["resample_anthropic", "resample_simple"]


TensorMap = Mapping[str, Tensor]


def _unit_rows(v: Tensor, dead: Tensor) -> tuple[Tensor, Tensor]:
    v = v / row_scale(v)  # exact; a tiny direction is still a direction (CON-4)
    norms = torch.linalg.vector_norm(v, dim=-1)
    ok = dead & (norms > 0)
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    return ok, torch.where(ok[..., None], v / safe[..., None], torch.zeros_like(v))


def _apply(param: TensorMap, ok: Tensor, direction: Tensor, encoder_norm: Tensor) -> dict[str, Tensor]:
    W_enc_new = (direction * encoder_norm[..., None, None]).transpose(-1, -2)
    return {
        "W_enc": torch.where(ok[..., None, :], W_enc_new, param["W_enc"]),
        "b_enc": torch.where(ok, torch.zeros_like(param["b_enc"]), param["b_enc"]),
        "W_dec": torch.where(ok[..., None], direction, param["W_dec"]),
        "b_dec": param["b_dec"].clone(),
    }


@typechecked
def _latent_shapes(
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    dead: Shaped[Tensor, "*inst d_sae"],
    chosen: DecoderWeights | None = None,
    directions: DecoderWeights | None = None,
) -> None:
    """The mask and the per-latent inputs match the parameters' latents and d_in (NOT-3)."""


def _dead_mask(param: TensorMap, dead: Tensor, scale: float, **given: Tensor) -> Tensor:
    """Validate a resampling call the oracle's way; the dead mask as bool."""
    check_parameter_maps(param)
    _latent_shapes(param["b_enc"], param["W_dec"], dead, **given)
    if not bool(((dead == 0) | (dead == 1)).all()):
        raise ValueError("dead must be a 0/1 or boolean mask of shape (*inst, d_sae)")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"the encoder scale must be a finite number > 0, got {scale!r}")
    same_dtype_and_device(**given, W_dec=param["W_dec"])
    finite(**given)
    return dead.to(torch.bool)


@typechecked
def resample_anthropic(
    param: TensorMap,
    dead: Shaped[Tensor, "*inst d_sae"],
    chosen: DecoderWeights,
    *,
    centred: bool = False,
    encoder_scale: float = 0.2,
) -> dict[str, Any]:
    """Anthropic's resampling update given the chosen inputs (RES-10..RES-14), no Python loops."""
    is_dead = _dead_mask(param, dead, encoder_scale, chosen=chosen)
    v = chosen - param["b_dec"][..., None, :] if centred else chosen
    ok, direction = _unit_rows(v, is_dead)
    column_norms = torch.linalg.vector_norm(param["W_enc"], dim=-2)
    alive = ~is_dead
    n_alive = alive.sum(dim=-1)
    mean_alive = (column_norms * alive).sum(dim=-1) / n_alive.clamp(min=1)
    mean_alive = torch.where(n_alive > 0, mean_alive, torch.ones_like(mean_alive))
    new = _apply(param, ok, direction, encoder_scale * mean_alive)
    return {"param": new, "resampled": ok}


@typechecked
def resample_simple(
    param: TensorMap,
    dead: Shaped[Tensor, "*inst d_sae"],
    directions: DecoderWeights,
    *,
    encoder_scale: float = 1.0,
) -> dict[str, Any]:
    """The simple resampling update given explicit directions (RES-15)."""
    ok, direction = _unit_rows(directions, _dead_mask(param, dead, encoder_scale, directions=directions))
    new = _apply(
        param,
        ok,
        direction,
        torch.full(ok.shape[:-1], encoder_scale, dtype=directions.dtype, device=directions.device),
    )
    return {"param": new, "resampled": ok}
