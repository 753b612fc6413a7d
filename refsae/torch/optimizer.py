"""Adam through `torch.optim.Adam` itself, and the reset of chosen latents' moments (OPT).

`adam_step` runs PyTorch's own optimizer on a copy of the given state: the table checks
torch.optim.Adam against the oracle's definition (OPT-1). `reset_adam_latents_` edits a live
optimizer in place, exactly like `adam_reset_latents` does functionally (OPT-4..OPT-6).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from jaxtyping import Shaped
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.oracle.optimizer import PARAMETERS, check_hyperparameters, check_maps
from refsae.torch._shapes import DecoderWeights, EncoderWeights, InputVector, LatentVector
from refsae.torch._validate import finite, same_dtype_and_device

__all__ = ["adam_reset_latents", "adam_step", "reset_adam_latents_"]

TensorMap = Mapping[str, Tensor]


@typechecked
def _sae_shapes(
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
) -> None:
    """The four tensors of one mapping have the canonical shapes of one SAE (NOT-1, NOT-3)."""


def _values(tensors: dict[str, Tensor]) -> None:
    same_dtype_and_device(**tensors)
    finite(**tensors)


def check_parameter_maps(reference: TensorMap, reference_label: str = "param", **others: TensorMap) -> None:
    """The torch twin of `refsae.oracle.optimizer.check_parameter_maps` (the same `check_maps`):
    exactly the four parameters, consistent canonical shapes (`TypeCheckError` naming mapping,
    tensor and dimensions), the reference's shapes, one dtype and device, finite (NOT-3, NOT-5, NOT-7)."""
    check_maps({reference_label: reference, **others}, _sae_shapes, _values)


def adam_step(
    param: TensorMap,
    grad: TensorMap,
    exp_avg: TensorMap,
    exp_avg_sq: TensorMap,
    *,
    step: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> dict[str, dict[str, Tensor]]:
    """One `torch.optim.Adam` step on copies, from `step` steps taken (OPT-1); returns the new
    parameters and moments keyed like the oracle's `AdamUpdate.as_dict()`."""
    check_hyperparameters(lr, betas, eps, weight_decay)
    if not (isinstance(step, int) and step >= 0):
        raise ValueError(f"step counts the steps already taken: an integer >= 0, got {step!r}")
    check_parameter_maps(param, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    leaves = {k: torch.nn.Parameter(param[k].detach().clone()) for k in PARAMETERS}
    optimizer = torch.optim.Adam(
        list(leaves.values()), lr=lr, betas=betas, eps=eps, weight_decay=weight_decay
    )
    for k, p in leaves.items():
        p.grad = grad[k].detach().clone()
        optimizer.state[p] = {  # loaded even at step 0, so given moments are honoured
            "step": torch.tensor(float(step)),
            "exp_avg": exp_avg[k].detach().clone(),
            "exp_avg_sq": exp_avg_sq[k].detach().clone(),
        }
    optimizer.step()
    out: dict[str, dict[str, Tensor]] = {"param": {}, "exp_avg": {}, "exp_avg_sq": {}}
    for k, p in leaves.items():
        out["param"][k] = p.detach()
        out["exp_avg"][k] = optimizer.state[p]["exp_avg"]
        out["exp_avg_sq"][k] = optimizer.state[p]["exp_avg_sq"]
    return out


def _masks(latents: Tensor) -> dict[str, Tensor | None]:
    mask = latents.to(torch.bool)
    return {"W_enc": mask[..., None, :], "b_enc": mask, "W_dec": mask[..., None], "b_dec": None}


def _check_latents(latents: Tensor) -> None:
    if latents.dtype not in (torch.bool, torch.int64, torch.int32, torch.uint8) or not bool(
        ((latents == 0) | (latents == 1)).all()
    ):
        raise ValueError("latents must be a 0/1 or boolean mask of shape (*inst, d_sae)")


@typechecked
def _latents_shape(b_enc: LatentVector, latents: Shaped[Tensor, "*inst d_sae"]) -> None:
    """The latent mask has the shape of b_enc (NOT-3)."""


@typechecked
def adam_reset_latents(
    exp_avg: TensorMap, exp_avg_sq: TensorMap, latents: Shaped[Tensor, "*inst d_sae"]
) -> dict[str, dict[str, Tensor]]:
    """Functional twin of `reset_adam_latents_`: zero both moments of the chosen latents (OPT-4)."""
    _check_latents(latents)
    check_parameter_maps(exp_avg, "exp_avg", exp_avg_sq=exp_avg_sq)
    _latents_shape(exp_avg["b_enc"], latents)
    masks = _masks(latents)
    out: dict[str, dict[str, Tensor]] = {"exp_avg": {}, "exp_avg_sq": {}}
    for label, moments in (("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
        for name in PARAMETERS:
            mask = masks[name]
            m = moments[name]
            out[label][name] = m.clone() if mask is None else m.masked_fill(mask, 0.0)
    return out


@torch.no_grad()
def reset_adam_latents_(optimizer: torch.optim.Optimizer, params: TensorMap, latents: Tensor) -> None:
    """Zero, in place, the Adam moments of the chosen latents' slices of `params` (W_enc, b_enc,
    W_dec; b_dec untouched); the step counters stay as they are (OPT-6). Parameters the optimizer
    has no state for yet (before the first step) are skipped: their moments are zero already."""
    _check_latents(latents)
    masks = _masks(latents)
    for name in PARAMETERS:
        mask = masks[name]
        state = optimizer.state.get(params[name]) if mask is not None else None
        if not state:
            continue
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            if key in state:
                state[key].masked_fill_(mask, 0.0)
