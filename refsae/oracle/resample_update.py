"""The parameter update of dead-latent resampling, given the chosen inputs explicitly (RES-10..RES-15).

Randomness never blocks exact comparison: which inputs (or directions) a latent receives is an
argument, drawn beforehand by the sampler (RES-1..RES-5). The update is then deterministic.

`dead` is a 0/1 (or bool) mask (*inst, d_sae); `chosen` (*inst, d_sae, d_in) holds, for every
latent, the input it is given (rows of non-dead latents are ignored). The result holds the new
parameters and `resampled`, the 0/1 mask of latents actually changed (dead latents whose direction
was not zero, RES-13); the optimizer state of exactly those latents is then reset (OPT-4).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from jaxtyping import Shaped

from refsae._typecheck import typechecked
from refsae.oracle import _validate
from refsae.oracle._shapes import DecoderWeights, LatentVector
from refsae.oracle.constraints import row_scale
from refsae.oracle.optimizer import Arrays, check_parameter_maps

__all__ = ["resample_anthropic", "resample_simple"]


@typechecked
def _latent_shapes(
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    dead: Shaped[np.ndarray, "*inst d_sae"],
    chosen: DecoderWeights | None = None,
    directions: DecoderWeights | None = None,
) -> None:
    """The mask and the per-latent inputs match the parameters' latents and d_in (NOT-3)."""


def _check(param: Arrays, dead: np.ndarray, scale: float, **given: np.ndarray) -> np.ndarray:
    check_parameter_maps(param)
    _latent_shapes(param["b_enc"], param["W_dec"], dead, **given)
    if dead.dtype.kind not in "biu" or not np.isin(dead, (0, 1)).all():
        raise ValueError("dead must be a 0/1 or boolean mask of shape (*inst, d_sae)")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"the encoder scale must be a finite number > 0, got {scale!r}")
    _validate.finite(**given)
    return dead.astype(bool)


def _apply(
    param: Arrays, ok: np.ndarray, direction: np.ndarray, encoder_norm: np.ndarray
) -> dict[str, np.ndarray]:
    """W_dec_j = direction_j, W_enc[:, j] = encoder_norm · direction_j, b_enc_j = 0 where ok (RES-11)."""
    W_dec = np.where(ok[..., None], direction, param["W_dec"])
    W_enc_new = np.swapaxes(direction * encoder_norm[..., None, None], -1, -2)
    W_enc = np.where(ok[..., None, :], W_enc_new, param["W_enc"])
    b_enc = np.where(ok, 0.0, param["b_enc"])
    return {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": param["b_dec"].copy()}


def _unit_rows(v: np.ndarray, dead: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = v / row_scale(v)  # exact; a tiny direction is still a direction (CON-4)
    norms = np.linalg.norm(v, axis=-1)
    ok = dead & (norms > 0)
    direction = np.where(ok[..., None], v / np.where(norms > 0, norms, 1.0)[..., None], 0.0)
    return ok, direction


@typechecked
def resample_anthropic(
    param: Arrays,
    dead: Shaped[np.ndarray, "*inst d_sae"],
    chosen: DecoderWeights,
    *,
    centred: bool = False,
    encoder_scale: float = 0.2,
) -> dict[str, Any]:
    """Anthropic's resampling (Towards Monosemanticity, RES-10, RES-11): for each dead latent j with
    input v_j (or v_j − b_dec when `centred`, as in ARENA, RES-12): W_dec_j = v_j/‖v_j‖;
    W_enc[:, j] = that direction × encoder_scale × the mean norm of the *alive* encoder columns
    (1 when no latent is alive, RES-14); b_enc_j = 0. A zero v_j leaves latent j as it is (RES-13).

    >>> import numpy as np
    >>> param = {"W_enc": np.array([[2.0, 5.0]]), "b_enc": np.array([1.0, 1.0]),
    ...          "W_dec": np.ones((2, 1)), "b_dec": np.zeros(1)}          # d_in = 1, d_sae = 2
    >>> out = resample_anthropic(param, np.array([0, 1]), np.array([[0.0], [-3.0]]))
    >>> out["param"]["W_dec"].tolist(), out["param"]["W_enc"].tolist(), out["resampled"].tolist()
    ([[1.0], [-1.0]], [[2.0, -0.4]], [False, True])
    """
    is_dead = _check(param, dead, encoder_scale, chosen=chosen)
    v = chosen - param["b_dec"][..., None, :] if centred else chosen
    ok, direction = _unit_rows(v, is_dead)
    column_norms = np.linalg.norm(param["W_enc"], axis=-2)
    alive = ~is_dead
    n_alive = alive.sum(axis=-1)
    mean_alive = np.where(n_alive > 0, (column_norms * alive).sum(axis=-1) / np.maximum(n_alive, 1), 1.0)
    new = _apply(param, ok, direction, encoder_scale * np.broadcast_to(mean_alive, ok.shape[:-1]))
    return {"param": new, "resampled": ok}


@typechecked
def resample_simple(
    param: Arrays,
    dead: Shaped[np.ndarray, "*inst d_sae"],
    directions: DecoderWeights,
    *,
    encoder_scale: float = 1.0,
) -> dict[str, Any]:
    """The simple method (ARENA's resample_simple, RES-15): for each dead latent j with a given random
    direction v_j: W_dec_j = v̂_j = v_j/‖v_j‖, W_enc[:, j] = encoder_scale · v̂_j, b_enc_j = 0; a zero
    v_j leaves latent j as it is (RES-13)."""
    is_dead = _check(param, dead, encoder_scale, directions=directions)
    ok, direction = _unit_rows(directions, is_dead)
    new = _apply(param, ok, direction, np.full(ok.shape[:-1], encoder_scale))
    return {"param": new, "resampled": ok}
