"""Adam with PyTorch's semantics, and the reset of chosen latents' optimizer state (OPT).

Parameters, gradients and moments are mappings keyed by the parameter names W_enc, b_enc, W_dec,
b_dec (NOT-1 shapes). One step, for every parameter p with gradient g (`torch.optim.Adam`, OPT-1):

    g ← g + weight_decay · p                     (only when weight_decay > 0, L2 form, OPT-2)
    m ← β1 m + (1 − β1) g
    v ← β2 v + (1 − β2) g²
    t ← t + 1
    p ← p − lr · (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + eps)     eps outside the square root
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from jaxtyping import Shaped, TypeCheckError

from refsae._typecheck import typechecked
from refsae.oracle import _validate
from refsae.oracle._shapes import DecoderWeights, EncoderWeights, InputVector, LatentVector

__all__ = ["AdamUpdate", "adam_reset_latents", "adam_step"]

PARAMETERS: tuple[str, ...] = ("W_enc", "b_enc", "W_dec", "b_dec")

LATENT_AXIS: dict[str, int | None] = {"W_enc": -1, "b_enc": -1, "W_dec": -2, "b_dec": None}
"""The axis of each parameter that indexes latents (OPT-4); b_dec belongs to no latent."""

Arrays = Mapping[str, np.ndarray]


def check_hyperparameters(lr: float, betas: tuple[float, float], eps: float, weight_decay: float) -> None:
    """lr > 0, 0 <= β < 1, eps > 0, weight_decay >= 0, all finite (OPT-3)."""
    checks = {
        "lr": math.isfinite(lr) and lr > 0,
        "betas": len(betas) == 2 and all(math.isfinite(b) and 0 <= b < 1 for b in betas),
        "eps": math.isfinite(eps) and eps > 0,
        "weight_decay": math.isfinite(weight_decay) and weight_decay >= 0,
    }
    for name, ok in checks.items():
        if not ok:
            raise ValueError(f"Adam {name} out of range: lr > 0, 0 <= betas < 1, eps > 0, weight_decay >= 0")


@typechecked
def _sae_shapes(
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
) -> None:
    """The four arrays of one mapping have the canonical shapes of one SAE (NOT-1, NOT-3)."""


def check_maps(
    maps: Mapping[str, Mapping[str, Any]],
    shapes: Callable[..., None],
    values: Callable[[dict[str, Any]], None],
) -> None:
    """The structure shared by the oracle's and refsae.torch's parameter-map checks: every mapping
    (label → {W_enc, b_enc, W_dec, b_dec}) holds exactly the four parameters; `shapes` (a typechecked
    function of the four) sees consistent canonical shapes, its `TypeCheckError` re-raised naming the
    mapping; every mapping has the first one's shapes; then `values` checks all arrays by dotted name
    (`param.W_enc`)."""
    (reference_label, reference), *_ = maps.items()
    for label, mapping in maps.items():
        if set(mapping) != set(PARAMETERS):
            raise ValueError(f"{label} must map exactly {', '.join(PARAMETERS)}; got {', '.join(mapping)}")
        try:
            shapes(**{name: mapping[name] for name in PARAMETERS})
        except TypeCheckError as error:
            raise TypeCheckError(f"in the mapping {label!r}: {error}") from None
        for name in PARAMETERS:
            if mapping[name].shape != reference[name].shape:
                raise ValueError(
                    f"{label}.{name} has shape {tuple(mapping[name].shape)}, "
                    f"{reference_label}.{name} has {tuple(reference[name].shape)}"
                )
    values({f"{label}.{name}": m[name] for label, m in maps.items() for name in PARAMETERS})


def check_parameter_maps(reference: Arrays, reference_label: str = "param", **others: Arrays) -> None:
    """Every mapping holds exactly the four parameters, float64 and of consistent canonical shapes
    (a `jaxtyping.TypeCheckError` naming the mapping, the array and the dimensions otherwise), each
    with the reference's shapes, all finite (NOT-3, NOT-5)."""
    check_maps({reference_label: reference, **others}, _sae_shapes, lambda arrays: _validate.finite(**arrays))


@dataclass(frozen=True)
class AdamUpdate:
    """The result of one Adam step: new parameters and moments; `step` counts steps taken."""

    param: dict[str, np.ndarray]
    exp_avg: dict[str, np.ndarray]
    exp_avg_sq: dict[str, np.ndarray]
    step: int

    def as_dict(self) -> dict[str, dict[str, np.ndarray]]:
        return {"param": self.param, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}


def adam_step(
    param: Arrays,
    grad: Arrays,
    exp_avg: Arrays,
    exp_avg_sq: Arrays,
    *,
    step: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> AdamUpdate:
    """One Adam step from `step` steps taken (0 for fresh state) (OPT-1, OPT-2, OPT-3).

    >>> import numpy as np
    >>> shapes = {"W_enc": (1, 1), "b_enc": (1,), "W_dec": (1, 1), "b_dec": (1,)}   # d_in = d_sae = 1
    >>> zero = {k: np.zeros(s) for k, s in shapes.items()}
    >>> g = {k: np.full(s, 4.0) for k, s in shapes.items()}
    >>> out = adam_step(zero, g, zero, zero, step=0, lr=0.1, eps=1e-300)
    >>> out.param["W_enc"].tolist(), out.step      # the first step moves by lr · sign(g)
    ([[-0.1]], 1)
    """
    check_hyperparameters(lr, betas, eps, weight_decay)
    if not (isinstance(step, int) and step >= 0):
        raise ValueError(f"step counts the steps already taken: an integer >= 0, got {step!r}")
    check_parameter_maps(param, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    beta1, beta2 = betas
    t = step + 1
    new_p, new_m, new_v = {}, {}, {}
    for name in PARAMETERS:
        g = grad[name] + weight_decay * param[name] if weight_decay > 0 else grad[name]
        m = beta1 * exp_avg[name] + (1 - beta1) * g
        v = beta2 * exp_avg_sq[name] + (1 - beta2) * g * g
        update = (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
        new_p[name], new_m[name], new_v[name] = param[name] - lr * update, m, v
    return AdamUpdate(new_p, new_m, new_v, t)


def latent_mask(name: str, latents: np.ndarray) -> np.ndarray | None:
    """The mask of parameter `name`'s elements that belong to the chosen latents, broadcastable to
    its shape: W_enc (*inst, d_in, d_sae) → (*inst, 1, d_sae); b_enc → (*inst, d_sae);
    W_dec (*inst, d_sae, d_in) → (*inst, d_sae, 1); b_dec → None (OPT-4)."""
    mask = latents.astype(bool)
    return {"W_enc": mask[..., None, :], "b_enc": mask, "W_dec": mask[..., None], "b_dec": None}[name]


@typechecked
def _latents_shape(b_enc: LatentVector, latents: Shaped[np.ndarray, "*inst d_sae"]) -> None:
    """The latent mask has the shape of b_enc (NOT-3)."""


@typechecked
def adam_reset_latents(
    exp_avg: Arrays,
    exp_avg_sq: Arrays,
    latents: Shaped[np.ndarray, "*inst d_sae"],
) -> dict[str, dict[str, np.ndarray]]:
    """Zero both moments of exactly the slices that belong to the chosen latents (OPT-4): column j of
    W_enc, entry j of b_enc, row j of W_dec, per instance; b_dec and every other latent untouched
    bit for bit (OPT-5). `latents` is a 0/1 (or bool) mask (*inst, d_sae). The step counter is not
    part of the reset (OPT-6).

    >>> import numpy as np
    >>> m = {"W_enc": np.ones((2, 3)), "b_enc": np.ones(3), "W_dec": np.ones((3, 2)), "b_dec": np.ones(2)}
    >>> out = adam_reset_latents(m, m, np.array([0, 1, 0]))
    >>> out["exp_avg"]["W_enc"].tolist(), out["exp_avg"]["b_dec"].tolist()
    ([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]], [1.0, 1.0])
    """
    if latents.dtype.kind not in "biu" or not np.isin(latents, (0, 1)).all():
        raise ValueError("latents must be a 0/1 or boolean mask of shape (*inst, d_sae)")
    check_parameter_maps(exp_avg, "exp_avg", exp_avg_sq=exp_avg_sq)
    _latents_shape(exp_avg["b_enc"], latents)
    out: dict[str, dict[str, np.ndarray]] = {"exp_avg": {}, "exp_avg_sq": {}}
    for label, moments in (("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
        for name in PARAMETERS:
            mask = latent_mask(name, latents)
            out[label][name] = moments[name].copy() if mask is None else np.where(mask, 0.0, moments[name])
    return out
