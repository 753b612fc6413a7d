"""The training step, its order fixed by clauses (STEP-1..STEP-5).

Specified order (STEP-1), for the `constrained` decoder:

1. forward and loss (LOSS-6) on the batch;
2. backward: the analytic gradients (GRAD-1);
3. parallel-gradient removal on ∂L/∂W_dec (PAR-1);
4. the Adam step (OPT-1);
5. the unit-norm constraint on W_dec (CON-1).

Under the `normalised` decoder the forward pass normalises, so steps 3 and 5 are not applied
(STEP-2). Two orders seen in the field are named so that a conformance run can tell them apart
(STEP-4): `constraint_before_step` (renormalise, then step: the rows leave the sphere) and
`removal_after_step` (the step uses the raw gradient; removing afterwards changes nothing).

`training_step_scaled` is the step on a multiple of the loss, as a library that averages it over the
instances takes it (the equivalence `components_mean`, EQ-3).
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import numpy as np

from refsae.conventions import Conventions, check_choice
from refsae.oracle.auxk import AuxKTerm, auxk_parameter_gradients
from refsae.oracle.batchtopk import batchtopk, batchtopk_loss_gradients, batchtopk_total_loss
from refsae.oracle.constraints import remove_parallel_component, renormalise_rows
from refsae.oracle.forward import decode, pre_activations
from refsae.oracle.gradients import loss_gradients
from refsae.oracle.losses import total_loss
from refsae.oracle.optimizer import Arrays, adam_step, check_parameter_maps
from refsae.oracle.topk import topk, topk_loss_gradients, topk_total_loss

__all__ = ["training_step", "training_step_scaled"]

EQUIVALENCE_FUNCTIONS: tuple[str, ...] = ("training_step_scaled",)
"""Functions of `__all__` that define named equivalences (specs/equivalences.md), not operations: the
conformance suite's references only, so refsae.torch has no twin of them."""

StepOrder = Literal["specified", "constraint_before_step", "removal_after_step"]
ORDERS: tuple[str, ...] = get_args(StepOrder)


def training_step(
    x: np.ndarray,
    param: Arrays,
    exp_avg: Arrays,
    exp_avg_sq: Arrays,
    *,
    step: int,
    lr: float,
    l1_coefficient: float,
    conventions: Conventions = Conventions(),
    betas: tuple[float, float] = (0.9, 0.999),
    adam_eps: float = 1e-8,
    weight_decay: float = 0.0,
    order: StepOrder = "specified",
    k: int | None = None,
    batch_k: int | None = None,
    auxk: AuxKTerm | None = None,
) -> dict[str, Any]:
    """One training step from `step` Adam steps taken; returns the new `param`, `exp_avg`,
    `exp_avg_sq` and the `loss` before the step (STEP-1..STEP-4). With `k`, the SAE is TopK's: its loss
    and gradients are TOPK-6's and TOPK-5's; with `batch_k`, BatchTopK's (BTOPK-3), k·B latents per
    batch; with `auxk`, the loss gains α · L_aux on the step's own reconstruction (AUXK-10); STEP-1's
    order is the same."""
    return training_step_scaled(
        x,
        param,
        exp_avg,
        exp_avg_sq,
        loss_scale=1.0,
        step=step,
        lr=lr,
        l1_coefficient=l1_coefficient,
        conventions=conventions,
        betas=betas,
        adam_eps=adam_eps,
        weight_decay=weight_decay,
        order=order,
        k=k,
        batch_k=batch_k,
        auxk=auxk,
    )


def training_step_scaled(
    x: np.ndarray,
    param: Arrays,
    exp_avg: Arrays,
    exp_avg_sq: Arrays,
    *,
    loss_scale: float,
    step: int,
    lr: float,
    l1_coefficient: float,
    conventions: Conventions = Conventions(),
    betas: tuple[float, float] = (0.9, 0.999),
    adam_eps: float = 1e-8,
    weight_decay: float = 0.0,
    order: StepOrder = "specified",
    k: int | None = None,
    batch_k: int | None = None,
    auxk: AuxKTerm | None = None,
) -> dict[str, Any]:
    """`training_step` on the loss `loss_scale · L` (> 0): the loss it returns and every gradient Adam is
    fed are `loss_scale` times STEP-1's. With 1/n_inst it is the step of a library that averages the loss
    over its instances (`components_mean`, EQ-3); Adam's update is nearly invariant to the scale, but not
    through its `eps` nor from moments accumulated at another scale."""
    if not (isinstance(loss_scale, int | float) and math.isfinite(loss_scale) and loss_scale > 0):
        raise ValueError(f"loss_scale must be a finite number > 0, got {loss_scale!r}")
    check_choice("order", order, ORDERS)
    check_parameter_maps(param, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    p = dict(param)
    constrained = conventions.decoder == "constrained"
    args = (x, p["W_enc"], p["b_enc"], p["W_dec"], p["b_dec"])
    if k is not None and batch_k is not None:
        raise ValueError("give k (TopK) or batch_k (BatchTopK), not both")
    if batch_k is not None:
        options: dict[str, Any] = {"k": batch_k, "l1_coefficient": l1_coefficient, "conventions": conventions}
        loss = loss_scale * batchtopk_total_loss(*args, **options)
        gradients = batchtopk_loss_gradients(*args, **options).as_dict()
    elif k is None:
        loss = loss_scale * total_loss(*args, l1_coefficient=l1_coefficient, conventions=conventions)
        gradients = loss_gradients(*args, l1_coefficient=l1_coefficient, conventions=conventions).as_dict()
    else:
        loss = loss_scale * topk_total_loss(
            *args, k=k, l1_coefficient=l1_coefficient, conventions=conventions
        )
        gradients = topk_loss_gradients(
            *args, k=k, l1_coefficient=l1_coefficient, conventions=conventions
        ).as_dict()
    if auxk is not None:
        aux_loss, aux = auxk_parameter_gradients(
            x, p, _reconstruction(x, p, k, batch_k, conventions), auxk,
            encode=conventions.encode, decoder=conventions.decoder, eps=conventions.eps,
        )  # fmt: skip
        loss = loss + loss_scale * aux_loss
        gradients = {name: gradients[name] + aux[name] for name in gradients}
    grads = {name: loss_scale * g for name, g in gradients.items()}
    if constrained and order != "removal_after_step":
        grads["W_dec"] = remove_parallel_component(p["W_dec"], grads["W_dec"])
    if constrained and order == "constraint_before_step":
        p["W_dec"] = renormalise_rows(p["W_dec"])
    update = adam_step(
        p, grads, exp_avg, exp_avg_sq, step=step, lr=lr, betas=betas, eps=adam_eps, weight_decay=weight_decay
    )
    new_param = dict(update.param)
    if constrained and order != "constraint_before_step":
        new_param["W_dec"] = renormalise_rows(new_param["W_dec"])
    return {"param": new_param, "exp_avg": update.exp_avg, "exp_avg_sq": update.exp_avg_sq, "loss": loss}


def _reconstruction(
    x: np.ndarray, p: Arrays, k: int | None, batch_k: int | None, c: Conventions
) -> np.ndarray:
    """The step's x_hat: ReLU, TopK (TOPK-3) or BatchTopK (BTOPK-1) latents, decoded (DEC-1)."""
    z = pre_activations(x, p["W_enc"], p["b_enc"], p["b_dec"], encode=c.encode)
    f = np.maximum(z, 0.0) if k is None and batch_k is None else None
    if k is not None:
        f = topk(z, k=k)
    elif batch_k is not None:
        f = batchtopk(z, k=batch_k)
    assert f is not None
    return np.asarray(decode(f, p["W_dec"], p["b_dec"], decoder=c.decoder, eps=c.eps))
