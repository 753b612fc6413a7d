"""The unit-norm constraint and parallel-gradient removal in place, in one or two passes (PERF-6).

`refsae.torch.constraints.renormalise_rows` and `remove_parallel_component` divide every row by a
power of two before squaring it, so that no square underflows or overflows (CON-4); that costs a few
temporaries of W_dec's size per call. Here the squares are taken directly whenever that is safe for
every row, which is the case for any trained SAE: with m the largest magnitude in a row,

    d_in · m² < max  (no overflow)    and    m² > d_in · tiny / u  (an element lost to underflow
                                                                  changes Σ w² by less than u · m²)

(max, tiny, u: the dtype's largest finite, smallest normal and unit roundoff). Otherwise, and for
float16 (whose range makes the condition fail for ordinary rows), the functional versions run.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.torch import _validate
from refsae.torch._shapes import DecoderWeights
from refsae.torch.constraints import remove_parallel_component, renormalise_rows

_DIRECT = (torch.float64, torch.float32, torch.bfloat16)


def squares_are_safe(W: Tensor) -> bool:
    """Whether every row's Σ w² can be taken without scaling (the module docstring's condition)."""
    if W.dtype not in _DIRECT or W.numel() == 0:
        return False
    info = torch.finfo(W.dtype)
    d_in = W.shape[-1]
    low = math.sqrt(d_in * info.tiny / (info.eps / 2))
    high = math.sqrt(info.max / (2 * d_in))
    m = torch.maximum(W.amax(dim=-1), -W.amin(dim=-1))  # max |w| per row; 15x faster than ord=inf
    return bool(((m == 0) | ((m > low) & (m < high))).all())


def _rowdot(a: Tensor, b: Tensor) -> Tensor:
    """Σ_i a_ji b_ji per row, as a batched product (no temporary; `linalg.vecdot` makes one)."""
    out: Tensor = torch.einsum("...i,...i->...", a, b)
    return out


@typechecked
def renormalise_rows_(W_dec: DecoderWeights) -> DecoderWeights:
    """`renormalise_rows` in place (CON-1, CON-2); returns `W_dec` (a parameter too: no graph)."""
    _validate.check(W_dec=W_dec)
    with torch.no_grad():
        if not squares_are_safe(W_dec):
            return W_dec.copy_(renormalise_rows(W_dec))
        n = torch.linalg.vector_norm(W_dec, dim=-1, keepdim=True)
        return W_dec.div_(n.masked_fill_(n == 0, 1))  # a zero row stays zero (CON-2)


@typechecked
def remove_parallel_component_(W_dec: DecoderWeights, grad_W_dec: DecoderWeights) -> DecoderWeights:
    """`remove_parallel_component` in place on `grad_W_dec` (PAR-1..PAR-3); returns it."""
    _validate.check(W_dec=W_dec, grad_W_dec=grad_W_dec)
    with torch.no_grad():
        if not squares_are_safe(W_dec):
            return grad_W_dec.copy_(remove_parallel_component(W_dec, grad_W_dec))
        sq = _rowdot(W_dec, W_dec)
        dot = _rowdot(grad_W_dec, W_dec)
        coeff = torch.where(sq > 0, dot / sq.masked_fill(sq == 0, 1), 0)  # zero rows keep their gradient
        return grad_W_dec.addcmul_(W_dec, coeff[..., None], value=-1)


def renormalised(W_dec: Tensor) -> Tensor:
    """`renormalise_rows_` on a copy: the `renormalise_rows` row's fast path (PERF-1)."""
    return renormalise_rows_(W_dec.clone())


def parallel_removed(W_dec: Tensor, grad_W_dec: Tensor) -> Tensor:
    """`remove_parallel_component_` on a copy: the `remove_parallel_component` row's fast path."""
    return remove_parallel_component_(W_dec, grad_W_dec.clone())
