"""The decoder constraints in PyTorch: renormalised rows, the parallel component removed (CON, PAR).

Every function works on CPU and CUDA in float64, float32, bfloat16 and float16, with or without
the instance axis, with no Python loop over batch or latents; each is the twin of the function of
the same name in `refsae.oracle.constraints` and is proven against it by the rows of
`refsae.checking.rows.constraints`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.torch import _validate
from refsae.torch._shapes import DecoderWeights

__all__ = ["remove_parallel_component", "renormalise_rows"]


def row_scale(v: Tensor) -> Tensor:
    """A power of two 2^(e−1) with max_i |v_i| < 2^e per row (last axis, kept), 1 for a zero row:
    dividing by it is exact and keeps the row's squares from underflowing (CON-4; torch's
    `vector_norm` does not rescale: the norm of a float32 row of 1e-23 comes out 0)."""
    m = v.abs().amax(dim=-1, keepdim=True)
    _, e = torch.frexp(m)
    scale = torch.pow(2.0, (e - 1).to(torch.float64)).to(v.dtype)
    return torch.where(m > 0, scale, torch.ones_like(scale))


@typechecked
def renormalise_rows(W_dec: DecoderWeights) -> DecoderWeights:
    """Rows divided by their norm (CON-1); zero rows stay zero (CON-2)."""
    _validate.check(W_dec=W_dec)
    w = W_dec / row_scale(W_dec)  # exact (CON-4)
    n = torch.linalg.vector_norm(w, dim=-1, keepdim=True)
    return torch.where(n > 0, w / torch.where(n > 0, n, torch.ones_like(n)), torch.zeros_like(W_dec))


@typechecked
def remove_parallel_component(W_dec: DecoderWeights, grad_W_dec: DecoderWeights) -> DecoderWeights:
    """g_j − (g_j·w_j / ‖w_j‖²) w_j (PAR-1, PAR-2); zero rows keep their gradient (PAR-3)."""
    _validate.check(W_dec=W_dec, grad_W_dec=grad_W_dec)
    w = W_dec / row_scale(W_dec)  # exact; the scale cancels (CON-4)
    sq = (w * w).sum(dim=-1, keepdim=True)
    dot = (grad_W_dec * w).sum(dim=-1, keepdim=True)
    coeff = torch.where(sq > 0, dot / torch.where(sq > 0, sq, torch.ones_like(sq)), torch.zeros_like(sq))
    return grad_W_dec - coeff * w
