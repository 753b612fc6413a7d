"""Adam (optimizer.md): case strategies, error bounds and rows of `adam_step` and `adam_reset_latents`.

Adam is elementwise. With every quantity positive where it matters (v, √v̂ + eps) no cancellation
occurs in the denominator, and first-order propagation (derivative × error) gives the magnitudes
below. A zero second moment reached by cancellation of an inexact gradient has no first-order
bound (√ is not Lipschitz at 0): such elements get an infinite allowance and are left unchecked
(STEP-5); they need an exactly cancelling gradient and do not occur with continuous data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae.cases import Case
from refsae.checking import strategies as rs
from refsae.checking.cases import group, sae_case
from refsae.checking.operation import Bounds, Operation, Outputs, exact_outputs
from refsae.checking.tolerances import LARGEST, Bound, leaf
from refsae.oracle.optimizer import PARAMETERS, Arrays


def adam_moments(
    draw: st.DrawFn, params: dict[str, np.ndarray], dtype: str, fresh: bool
) -> dict[str, np.ndarray]:
    """exp_avg (any sign) and exp_avg_sq (>= 0), zero when `fresh`. A state Adam can reach: where
    exp_avg_sq is 0 every past gradient was 0, so exp_avg is 0 there too (a non-zero m over v = 0
    divides by √v̂ + eps ≈ eps as soon as the new gradient is computed as 0, which no first-order
    bound covers; drawn so, it failed the training step in bfloat16)."""
    out: dict[str, np.ndarray] = {}
    for name, p in params.items():
        if fresh:
            out[f"exp_avg.{name}"] = np.zeros_like(p)
            out[f"exp_avg_sq.{name}"] = np.zeros_like(p)
            continue
        scale = draw(rs.scales(dtype))
        v = rs.round_to(draw(rs.arrays(p.shape, dtype, scale)) ** 2, dtype)
        out[f"exp_avg.{name}"] = np.where(v == 0, 0.0, draw(rs.arrays(p.shape, dtype, scale)))
        out[f"exp_avg_sq.{name}"] = v
    return out


def adam_hyperparameters(draw: st.DrawFn, fresh: bool) -> dict[str, Any]:
    return {
        "step": 0 if fresh else draw(st.integers(1, 2000)),
        "lr": draw(st.sampled_from((1e-4, 1e-3, 1e-2))),
        "betas": draw(st.sampled_from(((0.9, 0.999), (0.0, 0.999), (0.5, 0.9)))),
        "weight_decay": draw(st.sampled_from((0.0, 0.01))),
    }


def finite_in(dtype: str, arrays: dict[str, np.ndarray]) -> bool:
    return max(float(np.abs(a).max(initial=0.0)) for a in arrays.values()) ** 2 < LARGEST[dtype] / 16


@st.composite
def adam_cases(draw: st.DrawFn, dtype: str) -> Case:
    """Parameters, gradients and moments of every parameter; fresh state (step 0) sometimes."""
    _, params = draw(sae_case(dtype, with_x=False))
    fresh = draw(st.booleans())
    arrays = {f"param.{k}": v for k, v in params.items()}
    arrays.update(
        {f"grad.{k}": draw(rs.arrays(v.shape, dtype, draw(rs.scales(dtype)))) for k, v in params.items()}
    )
    arrays.update(adam_moments(draw, params, dtype, fresh))
    options = {**adam_hyperparameters(draw, fresh), "eps": draw(st.sampled_from((1e-8, 1e-6)))}
    assume(finite_in(dtype, arrays))
    return Case(arrays, options, dtype)


@st.composite
def reset_cases(draw: st.DrawFn, dtype: str) -> Case:
    """Moments and a 0/1 latent mask (none, some or all latents)."""
    shape, params = draw(sae_case(dtype, with_x=False))
    arrays = adam_moments(draw, params, dtype, fresh=False)
    arrays["latents"] = np.array(
        draw(
            st.lists(
                st.integers(0, 1),
                min_size=len(params["b_enc"].ravel()),
                max_size=len(params["b_enc"].ravel()),
            )
        ),
        dtype=np.int64,
    ).reshape(params["b_enc"].shape)
    del shape
    # a second moment is a square: in float16 it overflows for |draw| > 256 (STR-4)
    assume(all(float(np.abs(a).max(initial=0.0)) < LARGEST[dtype] / 16 for a in arrays.values()))
    return Case(arrays, {}, dtype)


def adam_bound(
    param: Arrays,
    grad: dict[str, Bound],
    grad_value: Arrays,
    exp_avg: Arrays,
    exp_avg_sq: Arrays,
    *,
    step: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
) -> dict[str, Bound]:
    """Bounds of the new parameters and moments (`param.W_enc`, `exp_avg.W_enc`, …), torch's order:
    lerp for m, mul + addcmul for v, sqrt / √bc2 + eps, then addcdiv."""
    beta1, beta2 = betas
    t = step + 1
    bc1, bc2 = 1 - beta1**t, 1 - beta2**t
    out: dict[str, Bound] = {}
    for name in PARAMETERS:
        p, g, m, v = param[name], grad_value[name], exp_avg[name], exp_avg_sq[name]
        gb = grad[name]
        if weight_decay > 0:
            g = g + weight_decay * p
            gb = gb.then(gb.magnitude + weight_decay * np.abs(p), k_acc=1, k_store=1)
        w = 1 - beta1
        m_new = beta1 * m + w * g
        mb = gb.then(np.abs(m) + w * (gb.magnitude + np.abs(m)), k_acc=2, k_store=1)
        v_new = beta2 * v + (1 - beta2) * g * g
        # M of g² is M_g² (TOL-4: the formula on magnitudes), not 2|g|·M_g: the first-order form drops
        # |Δg|², which is all there is where the exact g is 0 and the computed one is not (a gradient
        # that cancels exactly, such as the parallel-removed gradient of a d_in = 1 row)
        vb = Bound(beta2 * np.abs(v) + (1 - beta2) * gb.magnitude**2, 2 * gb.k_acc + 3, 2 * gb.k_store + 2)
        s = np.sqrt(v_new / bc2)
        with np.errstate(divide="ignore", invalid="ignore"):
            M_s = np.where(vb.magnitude == 0, 0.0, np.where(s > 0, vb.magnitude / bc2 / (2 * s), np.inf))
        d = s + eps
        M_d = M_s + d
        # m̂/d: a zero m_new needs no bound on d (the computed d is >= eps all the same), so the
        # second term is 0 there even where M_d is infinite (0 · ∞ would be NaN)
        with np.errstate(invalid="ignore"):
            second = np.where(m_new == 0, 0.0, (np.abs(m_new) / bc1) * M_d / d**2)
        M_q = (mb.magnitude / bc1) / d + second
        k_acc, k_store = mb.k_acc + vb.k_acc + 6, mb.k_store + vb.k_store + 4
        out[f"param.{name}"] = Bound(np.abs(p) + lr * M_q, k_acc, k_store)
        out[f"exp_avg.{name}"] = mb
        out[f"exp_avg_sq.{name}"] = vb
    return out


def adam_exact_inputs_bound(
    param: Arrays, grad: Arrays, exp_avg: Arrays, exp_avg_sq: Arrays, **hyper: object
) -> dict[str, Bound]:
    """Adam from exact (case) gradients: the gradient is a leaf."""
    return adam_bound(param, {k: leaf(v) for k, v in grad.items()}, grad, exp_avg, exp_avg_sq, **hyper)  # type: ignore[arg-type]


ADAM_DTYPES: tuple[str, ...] = ("float64", "float32", "bfloat16")
"""Adam is not run in float16 (OPT-7): eps = 1e-8 rounds to 0 there and g² underflows below 2^-24,
so torch.optim.Adam divides a non-zero m by 0; mixed precision keeps float32 optimizer state."""

MOMENTS = tuple(f"{g}.{k}" for g in ("exp_avg", "exp_avg_sq") for k in PARAMETERS)
"""The Adam state of every parameter, as dotted array names (`exp_avg.W_enc` …)."""


def adam_step_bounds(case: Case, out: Outputs) -> Bounds:
    parts = (group(case, g) for g in ("param", "grad", "exp_avg", "exp_avg_sq"))
    return dict(adam_exact_inputs_bound(*parts, **case.options))


ROWS = (
    Operation(
        name="adam_step",
        summary="one Adam step with PyTorch's semantics (torch.optim.Adam itself on the torch side)",
        clauses=("OPT-1", "OPT-2", "OPT-3"),
        arrays=tuple(f"{g}.{k}" for g in ("param", "grad", "exp_avg", "exp_avg_sq") for k in PARAMETERS),
        outputs=(*(f"param.{k}" for k in PARAMETERS), *MOMENTS),
        cases=adam_cases,
        bounds=adam_step_bounds,
        example={"step": 3, "lr": 1e-3},
        dtypes=ADAM_DTYPES,
    ),
    Operation(
        name="adam_reset_latents",
        summary="zero both Adam moments of the chosen latents' slices, nothing else",
        clauses=("OPT-4", "OPT-5"),
        arrays=(*MOMENTS, "latents"),
        outputs=MOMENTS,
        cases=reset_cases,
        bounds=exact_outputs,
    ),
)
