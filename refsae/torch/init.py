"""`b_dec` initialisation in PyTorch (INIT): the batch mean and the geometric median, vectorised
over instances (a loop over iterations only, never over batch or latents).

The geometric median runs the oracle's algorithm (INIT-3..INIT-7) in the accumulation dtype
(float32 for bfloat16 and float16, the dtype itself otherwise; TOL-3) and rounds the result once to
the input dtype. Its certificate cannot fall below the rounding of that dtype, so it also stops once
the certified gap is within half of the rounding allowance of INIT-11 (`stopping_floor`, INIT-9).
"""

from __future__ import annotations

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.checking.tolerances import gamma, weiszfeld_step_chain
from refsae.oracle.init import DEFAULT_MAX_ITER, DEFAULT_TOL, check_iteration_options
from refsae.torch import _validate
from refsae.torch._shapes import InputBatch, InputVector

__all__ = ["b_dec_mean", "geometric_median"]

_WORK_DTYPE = {torch.bfloat16: torch.float32, torch.float16: torch.float32}


@typechecked
def b_dec_mean(x: InputBatch) -> InputVector:
    """The batch mean (INIT-1): `torch.mean`, which accumulates half dtypes in float32."""
    _validate.check(batch=x, x=x)
    return x.mean(dim=0)


def stopping_floor(batch: int, d_in: int, dtype: torch.dtype) -> float:
    """INIT-9: refsae.torch also stops when the certified gap is at most `stopping_floor · B ‖m‖`
    (`m_j = max_b |x_bj|`): half the allowance `γ(k, u) · B ‖m‖` that INIT-11 grants for computing
    one Weiszfeld step in `dtype` (k = `weiszfeld_step_chain(batch, d_in)`), below which the
    certificate, computed in that dtype, is rounding noise. `ValueError` when k·u >= 1 (TOL-1)."""
    return 0.5 * gamma(weiszfeld_step_chain(batch, d_in), torch.finfo(dtype).eps / 2)


def _norm(a: Tensor) -> Tensor:
    n: Tensor = torch.linalg.vector_norm(a, dim=-1)
    return n


def _certificate(z: Tensor, c: Tensor, x_k: Tensor, cluster: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(gap bound, f, distances) of candidates c (n, m, d) for points z (n, B, d) (INIT-5), with
    x_k (n, d) the data point nearest to the first candidate, `cluster` (n, B) the points equal to it."""
    diff = z[:, None] - c[:, :, None]  # (n, m, B, d)
    dist = _norm(diff)
    far = dist > 0
    unit = diff / torch.where(far, dist, torch.ones_like(dist))[..., None]
    f, D = dist.sum(dim=-1), dist.amax(dim=-1)
    eta = cluster.sum(dim=-1, dtype=z.dtype)[:, None]
    to_k = x_k[:, None] - c
    d_k = _norm(to_k)
    R_other = (unit * (~cluster)[:, None, :, None]).sum(dim=-2)
    near = eta * d_k + (R_other * to_k).sum(dim=-1) + torch.clamp(_norm(R_other) - eta, min=0) * (D + d_k)
    plain = torch.where(d_k > 0, _norm(unit.sum(dim=-2)) * D, torch.full_like(D, torch.inf))
    return torch.minimum(torch.clamp(near, min=0), plain), f, dist


def _steps(z: Tensor, c: Tensor, dist: Tensor) -> Tensor:
    """One Weiszfeld–Vardi–Zhang step from each candidate c (n, m, d), given dist (n, m, B)."""
    tiny = torch.finfo(z.dtype).tiny
    far = dist > 0
    d_far = torch.where(far, dist, torch.full_like(dist, torch.inf))
    w = d_far.amin(dim=-1, keepdim=True) / d_far  # 1/‖x_b − c‖ scaled into (0, 1]; 0 where c = x_b
    T = torch.einsum("nmb,nbd->nmd", w, z) / w.sum(dim=-1, keepdim=True).clamp(min=tiny)
    diff = z[:, None] - c[:, :, None]
    r = _norm((diff / torch.where(far, dist, torch.ones_like(dist))[..., None]).sum(dim=-2))
    eta = (~far).sum(dim=-1, dtype=z.dtype)
    beta = torch.where(eta > 0, torch.clamp(eta / r.clamp(min=tiny), max=1), 0.0)[..., None]
    return (1 - beta) * T + beta * c


@typechecked
def geometric_median(
    x: InputBatch,
    *,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> InputVector:
    """The geometric median per instance (INIT-2..INIT-9): Weiszfeld with the Vardi–Zhang step,
    stopped by the certified gap; the last iterate after `max_iter` iterations."""
    check_iteration_options(tol, max_iter)
    _validate.check(batch=x, x=x)
    work = _WORK_DTYPE.get(x.dtype, x.dtype)
    batch, d_in = x.shape[0], x.shape[-1]
    points = x.to(work).reshape(batch, -1, d_in).transpose(0, 1)  # (n, B, d)
    n = points.shape[0]
    # a power-of-two scale per instance: exact division, squares stay finite
    largest = points.abs().amax(dim=(1, 2))
    exponent = torch.frexp(largest).exponent
    scale = torch.where(largest > 0, torch.ldexp(torch.ones_like(largest), exponent), 1.0)
    z = points / scale[:, None, None]
    floor = stopping_floor(batch, d_in, work) * batch * _norm(z.abs().amax(dim=1))[:, None]  # (n, 1)
    rounding = gamma(d_in + batch + 4, torch.finfo(work).eps / 2)  # of one objective, per magnitude
    magnitude = _norm(z).sum(dim=1)  # Σ_b ‖x_b‖
    rows = torch.arange(n, device=x.device)
    y = z.mean(dim=1)
    result = y.clone()
    done = torch.zeros(n, dtype=torch.bool, device=x.device)
    for _ in range(max_iter):
        x_k = z[rows, _norm(z - y[:, None]).argmin(dim=1)]
        cluster = (z == x_k[:, None]).all(dim=-1)
        candidates = torch.stack([y, x_k], dim=1)  # the iterate and its nearest data point (INIT-4)
        gap, f, dist = _certificate(z, candidates, x_k, cluster)
        ok = gap <= torch.maximum(tol * f, floor)
        result = torch.where((~done & ok[:, 0])[:, None], y, result)
        result = torch.where((~done & ~ok[:, 0] & ok[:, 1])[:, None], x_k, result)
        done = done | ok.any(dim=1)
        if bool(done.all()):
            break
        proposals = _steps(z, candidates, dist)  # (n, 2, d): steps from y and from x_k
        f_next = _norm(z[:, None] - proposals[:, :, None]).sum(dim=-1)
        # the step from x_k only when better by more than the rounding of both objectives (INIT-4)
        noise = rounding * (magnitude + batch * _norm(proposals[:, 0]))
        better = (f_next[:, 1] < f_next[:, 0] - 2 * noise)[:, None]
        y = torch.where(done[:, None], y, torch.where(better, proposals[:, 1], proposals[:, 0]))
    else:
        result = torch.where(done[:, None], result, y)
    out = (result * scale[:, None]).reshape(*x.shape[1:-1], d_in)
    return out.to(x.dtype)
