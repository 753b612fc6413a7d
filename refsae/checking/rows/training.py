"""The training step (training-step.md): its case strategy, error bound and row, chained from the
gradient, parallel-removal, Adam and constraint bounds.
"""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import strategies as st

from refsae import oracle
from refsae import torch as rt
from refsae.cases import Case
from refsae.checking import bounds
from refsae.checking.cases import group
from refsae.checking.operation import Bounds, Operation, Outputs
from refsae.checking.rows.constraints import parallel_removed_bound, renormalised_bound
from refsae.checking.rows.losses import loss_cases
from refsae.checking.rows.optimizer import ADAM_DTYPES, adam_bound, adam_hyperparameters, adam_moments
from refsae.checking.tolerances import Bound
from refsae.conventions import Conventions
from refsae.oracle.optimizer import PARAMETERS, Arrays


@st.composite
def training_cases(draw: st.DrawFn, dtype: str) -> Case:
    """A full SAE case with the kink margin (STR-7), Adam moments and hyperparameters."""
    base = draw(loss_cases(dtype, kink_margin=True, backward=True))
    params = {k: base.arrays[k] for k in PARAMETERS}
    fresh = draw(st.booleans())
    arrays = {"x": base.arrays["x"], **{f"param.{k}": v for k, v in params.items()}}
    arrays.update(adam_moments(draw, params, dtype, fresh))
    hyper = adam_hyperparameters(draw, fresh)
    options = {**base.options, **hyper, "adam_eps": draw(st.sampled_from((1e-8, 1e-6)))}
    return Case(arrays, options, dtype)


def training_step_bound(
    x: np.ndarray,
    param: Arrays,
    exp_avg: Arrays,
    exp_avg_sq: Arrays,
    *,
    step: int,
    lr: float,
    l1_coefficient: float,
    conventions: Conventions,
    betas: tuple[float, float],
    adam_eps: float,
    weight_decay: float,
) -> dict[str, Bound]:
    """Gradients → parallel removal → Adam → constraint (STEP-1), chained, around the oracle's values."""
    from refsae.oracle.optimizer import adam_step

    p, c = param, conventions
    args = (x, p["W_enc"], p["b_enc"], p["W_dec"], p["b_dec"])
    grads = oracle.loss_gradients(*args, l1_coefficient=l1_coefficient, conventions=c).as_dict()
    gbounds = bounds.loss_gradients(*args, l1_coefficient, c)
    constrained = c.decoder == "constrained"
    if constrained:
        grads["W_dec"] = oracle.remove_parallel_component(p["W_dec"], grads["W_dec"])
        gbounds["W_dec"] = parallel_removed_bound(p["W_dec"], gbounds["W_dec"])
    out = adam_bound(
        p,
        gbounds,
        grads,
        exp_avg,
        exp_avg_sq,
        step=step,
        lr=lr,
        betas=betas,
        eps=adam_eps,
        weight_decay=weight_decay,
    )
    if constrained:
        stepped = adam_step(
            p,
            grads,
            exp_avg,
            exp_avg_sq,
            step=step,
            lr=lr,
            betas=betas,
            eps=adam_eps,
            weight_decay=weight_decay,
        ).param["W_dec"]
        out["param.W_dec"] = renormalised_bound(stepped, out["param.W_dec"])
    x_hat = oracle.forward(*args, encode=c.encode, decoder=c.decoder, eps=c.eps)[1]
    out["loss"] = bounds.total_loss(*args, x_hat, l1_coefficient, c)
    return out


STATE = tuple(f"{g}.{k}" for g in ("param", "exp_avg", "exp_avg_sq") for k in PARAMETERS)
"""The parameters and Adam state a step reads and returns, as dotted array names."""


def training_step_bounds(case: Case, out: Outputs) -> Bounds:
    parts = (group(case, g) for g in ("param", "exp_avg", "exp_avg_sq"))
    return dict(training_step_bound(case.arrays["x"], *parts, **case.options))


ROWS = (
    Operation(
        name="training_step",
        summary="forward, loss, backward, parallel removal, Adam, constraint: the specified order",
        clauses=("STEP-1", "STEP-2", "STEP-3", "STEP-5"),
        arrays=("x", *STATE),
        outputs=(*STATE, "loss"),
        cases=training_cases,
        bounds=training_step_bounds,
        example={"step": 3, "lr": 1e-3, "l1_coefficient": 0.5, "conventions": Conventions()},
        dtypes=ADAM_DTYPES,
        torch=functools.partial(rt.training_step, backward="autograd"),
        fast=functools.partial(rt.training_step, backward="fused"),
    ),
)
