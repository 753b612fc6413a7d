"""Error bounds of Adam, the resampling update and the training step (TOL-4, OPT, RES, STEP).

Adam is elementwise. With every quantity positive where it matters (v, √v̂ + eps) no cancellation
occurs in the denominator, and first-order propagation (derivative × error) gives the magnitudes
below. A zero second moment reached by cancellation of an inexact gradient has no first-order
bound (√ is not Lipschitz at 0): such elements get an infinite allowance and are left unchecked
(STEP-5); they need an exactly cancelling gradient and do not occur with continuous data.
"""

from __future__ import annotations

import numpy as np

from refsae import bounds as b
from refsae import bounds_gradients as bg
from refsae.conventions import Conventions
from refsae.oracle.optimizer import PARAMETERS, Arrays
from refsae.tolerances import Bound, leaf


def adam(
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


def adam_exact_inputs(
    param: Arrays, grad: Arrays, exp_avg: Arrays, exp_avg_sq: Arrays, **hyper: object
) -> dict[str, Bound]:
    """Adam from exact (case) gradients: the gradient is a leaf."""
    return adam(param, {k: leaf(v) for k, v in grad.items()}, grad, exp_avg, exp_avg_sq, **hyper)  # type: ignore[arg-type]


def renormalised(w: np.ndarray, wb: Bound) -> Bound:
    """ŵ = w/‖w‖ from an inexact w: |Δŵ| <= (|Δw| + |ŵ|(|ŵ|·|Δw|))/‖w‖, plus its own rounding."""
    n = np.linalg.norm(w, axis=-1, keepdims=True)
    unit = np.abs(w / np.where(n > 0, n, 1.0))
    with np.errstate(invalid="ignore"):  # 0 · ∞ where a zero component meets an unbounded error
        along = np.sum(np.where(unit == 0, 0.0, unit * wb.magnitude), axis=-1, keepdims=True)
        spread = np.where(unit == 0, 0.0, unit * along)
    # an exact zero row stays zero (CON-2) unless its computed value may not be zero: then the
    # direction it is normalised to is arbitrary and has no first-order bound (STEP-5)
    first_order = np.where(
        n > 0, (wb.magnitude + spread) / np.where(n > 0, n, 1.0), np.where(wb.magnitude > 0, np.inf, 0.0)
    )
    return wb.then(first_order + unit, k_acc=w.shape[-1] + 1, k_store=3)


def parallel_removed(W: np.ndarray, gb: Bound) -> Bound:
    """g − (g·w/‖w‖²) w, linear in an inexact g with W exact."""
    sq = np.sum(W * W, axis=-1, keepdims=True)
    safe = np.where(sq > 0, sq, np.inf)
    along = np.sum(gb.magnitude * np.abs(W), axis=-1, keepdims=True)
    return gb.then(gb.magnitude + np.abs(W) * along / safe, k_acc=2 * W.shape[-1] + 2, k_store=4)


def training_step(
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
    from refsae import oracle
    from refsae.oracle.optimizer import adam_step

    p, c = param, conventions
    args = (x, p["W_enc"], p["b_enc"], p["W_dec"], p["b_dec"])
    grads = oracle.loss_gradients(*args, l1_coefficient=l1_coefficient, conventions=c).as_dict()
    gbounds = bg.loss_gradients(*args, l1_coefficient, c)
    constrained = c.decoder == "constrained"
    if constrained:
        grads["W_dec"] = oracle.remove_parallel_component(p["W_dec"], grads["W_dec"])
        gbounds["W_dec"] = parallel_removed(p["W_dec"], gbounds["W_dec"])
    out = adam(
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
        out["param.W_dec"] = renormalised(stepped, out["param.W_dec"])
    x_hat = oracle.forward(*args, encode=c.encode, decoder=c.decoder, eps=c.eps)[1]
    out["loss"] = b.total_loss(*args, x_hat, l1_coefficient, c)
    return out


def resample(
    param: Arrays, dead: np.ndarray, chosen: np.ndarray, *, centred: bool, encoder_scale: float, simple: bool
) -> dict[str, Bound | None]:
    """W_dec_j = v̂_j and W_enc[:, j] = v̂_j · scale (· mean alive column norm) where resampled; every
    other element is an exact copy (RES-10..RES-15)."""
    v = chosen - param["b_dec"][..., None, :] if centred else chosen
    vb = Bound(np.abs(chosen) + np.abs(param["b_dec"][..., None, :]), 0, 1) if centred else leaf(chosen)
    direction = renormalised(v, vb)
    ok = dead.astype(bool) & (np.linalg.norm(v, axis=-1) > 0)
    if simple:
        scale_bound = Bound(np.full(ok.shape[:-1], encoder_scale), 0, 0)
    else:
        d_in, d_sae = param["W_enc"].shape[-2], param["W_enc"].shape[-1]
        alive = ~dead.astype(bool)
        norms = np.linalg.norm(param["W_enc"], axis=-2)
        n_alive = alive.sum(axis=-1)
        mean = np.where(n_alive > 0, (norms * alive).sum(axis=-1) / np.maximum(n_alive, 1), 1.0)
        scale_bound = Bound(encoder_scale * mean, d_in + d_sae + 3, 4)
    column = Bound(
        direction.magnitude * scale_bound.magnitude[..., None, None],
        direction.k_acc + scale_bound.k_acc,
        direction.k_store + scale_bound.k_store + 1,
    )
    return {
        "param.W_enc": Bound(
            np.where(ok[..., None, :], np.swapaxes(column.magnitude, -1, -2), 0.0),
            column.k_acc,
            column.k_store,
        ),
        "param.b_enc": None,
        "param.W_dec": Bound(
            np.where(ok[..., None], direction.magnitude, 0.0), direction.k_acc, direction.k_store
        ),
        "param.b_dec": None,
        "resampled": None,
    }
