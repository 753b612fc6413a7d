"""Hypothesis strategies for SAE shapes, parameters and inputs (public API, STR-1..STR-10).

Every array comes out as a float64 NumPy array whose values are exactly representable in the
target dtype, so the same case feeds the oracle (float64) and an implementation in that dtype
without a second rounding (STR-1). Small arrays are drawn element by element through
hypothesis-torch, with device, layout, requires_grad and memory format pinned (STR-2); larger ones
from a seeded generator whose seed and distribution hypothesis draws (STR-3), which keeps
200 examples per operation per dtype affordable on two cores.

    >>> from hypothesis import given
    >>> from refsae.checking import strategies as rs
    >>> @given(rs.shapes(max_dim=8).flatmap(lambda s: rs.sae_params(s, "float32")))
    ... def test_rows_are_non_degenerate(params):
    ...     assert (np.linalg.norm(params["W_dec"], axis=-1) > 0).all()
    >>> test_rows_are_non_degenerate()
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import hypothesis_torch
import numpy as np
import torch
from hypothesis import strategies as st

from refsae.conventions import (
    DECODER,
    DEFAULT_EPS,
    ENCODE,
    RECONSTRUCTION,
    SPARSITY,
    Conventions,
    pinned_value,
)

TORCH_DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}

SCALE_EXPONENTS: dict[str, tuple[int, int]] = {
    "float64": (-6, 6),
    "float32": (-6, 6),
    "bfloat16": (-6, 6),
    "float16": (-3, 2),
}
"""Magnitude bounds per dtype (STR-4): array scales are 2^k with k in this range; float16's is narrow
so that no loss or gradient overflows 65504 at the largest shapes."""

ELEMENTWISE_MAX_SIZE = 32
"""Arrays with at most this many elements may be drawn element by element (fine shrinking)."""


def round_to(a: np.ndarray, dtype: str) -> np.ndarray:
    """The float64 array of the values of `a` rounded (to nearest) into `dtype` (STR-1)."""
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
    return t.to(TORCH_DTYPES[dtype]).to(torch.float64).numpy().copy()


@dataclass(frozen=True)
class Shape:
    """Sizes of one SAE case: `n_inst=None` means no instance axis."""

    batch: int
    d_in: int
    d_sae: int
    n_inst: int | None = None

    @property
    def inst(self) -> tuple[int, ...]:
        return () if self.n_inst is None else (self.n_inst,)


def shapes(
    *,
    max_dim: int = 64,
    max_batch: int = 64,
    min_batch: int = 1,
    instance_axis: bool | None = None,
    max_inst: int = 3,
) -> st.SearchStrategy[Shape]:
    """Shapes with d_in, d_sae in 1..max_dim, batch in min_batch..max_batch, and an instance axis
    always (True), never (False) or sometimes (None) (STR-5); never while `instances=False` is pinned
    (a library without an instance axis, CONF-2) unless the row needs one. Sometimes: absent or of
    length 1 a quarter of the time each, of length 2 … max_inst half the time."""
    dims = st.integers(1, max_dim)
    if instance_axis is None and pinned_value("instances") is False:
        instance_axis = False
    inst: st.SearchStrategy[int | None]
    several = st.integers(min(2, max_inst), max_inst)  # n_inst >= 2 is where instance bugs show
    if instance_axis is None:
        branches: tuple[st.SearchStrategy[int | None], ...] = (st.none(), st.just(1), several, several)
        inst = st.integers(0, len(branches) - 1).flatmap(lambda i: branches[i])
    elif instance_axis:
        inst = st.just(1) | several
    else:
        inst = st.none()
    return st.builds(Shape, batch=st.integers(min_batch, max_batch), d_in=dims, d_sae=dims, n_inst=inst)


def torch_tensors(
    dtype: str, shape: tuple[int, ...], bound: float, device: str = "cpu"
) -> st.SearchStrategy[torch.Tensor]:
    """hypothesis-torch tensors with every degree of freedom that is not a value pinned: the given
    device, strided layout, no grad, contiguous memory, no pinning, finite elements in [-bound, bound]
    (STR-2)."""
    return hypothesis_torch.tensor_strategy(
        dtype=TORCH_DTYPES[dtype],
        shape=shape,
        elements=st.floats(-bound, bound, allow_nan=False, allow_infinity=False, allow_subnormal=False),
        fill=st.nothing(),
        device=torch.device(device),
        layout=torch.strided,
        requires_grad=False,
        pin_memory=False,
        memory_format=torch.contiguous_format,
    )


DISTRIBUTIONS = ("normal", "uniform", "heavy", "sparse", "grid")


def _seeded(rng: np.random.Generator, shape: tuple[int, ...], distribution: str) -> np.ndarray:
    """Unit-scale values of one named distribution (STR-3)."""
    if distribution == "normal":
        return rng.standard_normal(shape)
    if distribution == "uniform":
        return rng.uniform(-1.0, 1.0, shape)
    if distribution == "heavy":
        return rng.standard_normal(shape) * np.exp(rng.standard_normal(shape))
    if distribution == "sparse":
        return rng.standard_normal(shape) * (rng.uniform(size=shape) < 0.5)
    return rng.integers(-4, 5, shape) / 4.0  # "grid": exact small dyadics, ties and exact zeros


@st.composite
def arrays(draw: st.DrawFn, shape: tuple[int, ...], dtype: str, scale: float = 1.0) -> np.ndarray:
    """A float64 array representable in `dtype`, magnitudes about `scale` (STR-1..STR-3)."""
    size = math.prod(shape)
    if 0 < size <= ELEMENTWISE_MAX_SIZE and draw(st.booleans()):
        t = draw(torch_tensors(dtype, shape, bound=2.0 * scale))
        return t.double().numpy().copy()
    seed = draw(st.integers(0, 2**32 - 1))
    distribution = draw(st.sampled_from(DISTRIBUTIONS))
    values = _seeded(np.random.default_rng(seed), shape, distribution) * scale
    return round_to(values, dtype)


def scales(dtype: str) -> st.SearchStrategy[float]:
    """Powers of two within the dtype's magnitude bounds (STR-4)."""
    lo, hi = SCALE_EXPONENTS[dtype]
    return st.integers(lo, hi).map(lambda k: 2.0**k)


def _repair_rows(W_dec: np.ndarray, scale: float, min_norm: float, dtype: str) -> np.ndarray:
    """Rows with norm < min_norm become a basis row of norm `scale` (non-degenerate, STR-6)."""
    out = W_dec.copy()
    norms = np.linalg.norm(out, axis=-1)
    for index in zip(*np.nonzero(norms < min_norm), strict=True):
        row = np.zeros(out.shape[-1])
        row[index[-1] % out.shape[-1]] = scale
        out[index] = row
    return round_to(out, dtype)


@st.composite
def sae_params(draw: st.DrawFn, shape: Shape, dtype: str) -> dict[str, np.ndarray]:
    """W_enc, b_enc, W_dec, b_dec with decoder rows of norm >= 1/8 of their scale (STR-6)."""
    inst = shape.inst
    w_scale = draw(scales(dtype))
    W_enc = draw(arrays((*inst, shape.d_in, shape.d_sae), dtype, w_scale / math.sqrt(shape.d_in)))
    b_enc = draw(arrays((*inst, shape.d_sae), dtype, draw(scales(dtype))))
    d_scale = draw(scales(dtype))
    W_dec = draw(arrays((*inst, shape.d_sae, shape.d_in), dtype, d_scale / math.sqrt(shape.d_in)))
    W_dec = _repair_rows(W_dec, d_scale, d_scale / 8.0, dtype)
    b_dec = draw(arrays((*inst, shape.d_in), dtype, draw(scales(dtype))))
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    absent = pinned_value("absent")
    for name in absent if isinstance(absent, tuple) else ():
        params[name] = np.zeros_like(params[name])  # a library without it (CONF-11)
    return params


INPUT_KINDS = ("iid", "offset", "activations")
"""The three shapes of an input batch (STR-5, STR-9), each drawn a third of the time."""

MEAN_TO_SPREAD = (2.0, 8.0, 32.0)
"""‖μ‖ / ‖x_b − μ‖ of realistic activations (STR-9): the shared mean dominates every example."""

ACTIVATION_TAIL = 16.0
"""Heavy-tailed coordinates (Student-t, 3 degrees of freedom) are clipped at this many units."""


@st.composite
def activations(draw: st.DrawFn, shape: Shape, dtype: str, scale: float) -> np.ndarray:
    """A batch shaped like a model's activations (STR-9): x_b = μ + Σ_r c_br u_r + ε_b, a large mean
    shared by the batch (one per instance), a few dominant unit directions u_r (rank 1 … 4) with
    heavy-tailed codes c_br (Student-t, 3 degrees of freedom, clipped at ±16, occasional outliers),
    and isotropic noise ε 1/8 of the codes' size; ‖μ‖ is 2, 8 or 32 times the typical ‖x_b − μ‖.
    Elements of μ are about `scale`, like an iid draw's."""
    seed = draw(st.integers(0, 2**32 - 1))
    rank = min(draw(st.integers(1, 4)), shape.d_in)
    ratio = draw(st.sampled_from(MEAN_TO_SPREAD))
    rng = np.random.default_rng(seed)
    inst, d = shape.inst, shape.d_in
    mu = rng.standard_normal((*inst, 1, d))
    directions = rng.standard_normal((*inst, rank, d))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    codes = np.clip(rng.standard_t(3, (shape.batch, *inst, rank)), -ACTIVATION_TAIL, ACTIVATION_TAIL)
    codes *= 0.5 ** np.arange(rank)  # decreasing importance of the directions
    spread = np.einsum("b...r,...rd->b...d", codes, directions)
    spread += rng.standard_normal(spread.shape) / (8 * math.sqrt(d))
    spread *= np.linalg.norm(mu, axis=-1)[None, ..., 0, None] / ratio
    x = np.moveaxis(mu, -2, 0) + spread
    return round_to(x * scale, dtype)


@st.composite
def inputs(draw: st.DrawFn, shape: Shape, dtype: str) -> np.ndarray:
    """A batch x of shape (batch, *inst, d_in), drawn iid (STR-3), iid with each dimension's own mean
    (STR-5: this is what tells per-dimension from global centring apart, MET-3) or shaped like real
    activations (STR-9: a dominant shared mean, a few directions, heavy tails), a third of the time
    each."""
    scale = draw(scales(dtype))
    kind = draw(st.sampled_from(INPUT_KINDS))
    if kind == "activations":
        return draw(activations(shape, dtype, scale))
    x = draw(arrays((shape.batch, *shape.inst, shape.d_in), dtype, scale))
    if kind == "offset":
        offset = draw(arrays((*shape.inst, shape.d_in), dtype, scale * draw(st.sampled_from((1.0, 4.0)))))
        x = round_to(x + offset, dtype)
    return x


def latents(shape: Shape, dtype: str) -> st.SearchStrategy[np.ndarray]:
    """Non-negative latents f of shape (batch, *inst, d_sae), with exact zeros."""
    return scales(dtype).flatmap(
        lambda s: arrays((shape.batch, *shape.inst, shape.d_sae), dtype, s).map(lambda a: np.maximum(a, 0.0))
    )


def convention(axis: str, allowed: tuple[str, ...]) -> st.SearchStrategy[str]:
    """One name of `axis` among `allowed`; only the pinned name while one is pinned
    (conventions.pinned, CONF-3) and allowed here (a row that does not depend on the axis may
    restrict it freely)."""
    value = pinned_value(axis)
    return st.just(str(value)) if value in allowed else st.sampled_from(allowed)


def epsilons(allowed: tuple[float, ...] = (DEFAULT_EPS, 1e-3, 0.5)) -> st.SearchStrategy[float]:
    """The normalised decoder's eps: one of `allowed`, or the pinned eps (CONF-3)."""
    value = pinned_value("eps")
    return st.just(float(value)) if isinstance(value, float) else st.sampled_from(allowed)


def conventions(
    encode: tuple[str, ...] = ENCODE,
    decoder: tuple[str, ...] = DECODER,
    reconstruction: tuple[str, ...] = RECONSTRUCTION,
    sparsity: tuple[str, ...] = SPARSITY,
) -> st.SearchStrategy[Conventions]:
    """Every combination of the named conventions (the pinned ones only, while pinned); eps at its
    default or the pinned eps."""
    eps = pinned_value("eps")
    return st.builds(
        Conventions,
        encode=convention("encode", encode),
        decoder=convention("decoder", decoder),
        reconstruction=convention("reconstruction", reconstruction),
        sparsity=convention("sparsity", sparsity),
        eps=st.just(float(eps) if isinstance(eps, float) else DEFAULT_EPS),
    )


L1_COEFFICIENTS: tuple[float, ...] = (0.0, *(2.0**k for k in range(-10, 3)))
"""λ = 0 or 2^k, k in [−10, 2], each equally likely (STR-10): zero is one choice in 14. Drawn as one
branch of two, zero was 68% of the gradient row's examples (hypothesis favours the first branch),
where the sparsity term and every bug in it vanish: the dropped-L1-gradient mutant was flagged in
6% of bfloat16 examples, and in 17% with this draw (measured on random seeds)."""


def l1_coefficients() -> st.SearchStrategy[float]:
    """Sparsity coefficients λ >= 0: exactly 0 sometimes (1 in 14), otherwise 2^k for k in [-10, 2]."""
    return st.sampled_from(L1_COEFFICIENTS)


def kink_margin_b_enc(
    z0: np.ndarray, b_enc: np.ndarray, margin: np.ndarray, dtype: str, *, positive: bool = False
) -> np.ndarray:
    """Move each b_enc_j to the nearest value that keeps every pre-activation z0_bj + b_enc_j at least
    margin_bj away from 0 (the ReLU kink, STR-7); z0 = u W_enc has shape (batch, *inst, d_sae).

    The forbidden set of latent j is a union of intervals (−z0_bj − m, −z0_bj + m); its complement is
    never empty, so a nearest allowed value always exists. With `positive` (a JumpReLU threshold, which
    must stay > 0, JUMP-8) a value inside an interval whose lower end is <= 0 moves to its upper end,
    which is above the value, so a value >= 0 stays > 0.
    """
    out = b_enc.copy()
    for index in np.ndindex(b_enc.shape):
        column = z0[(slice(None), *index)]
        m = margin[(slice(None), *index)]
        intervals = sorted(zip(-column - m, -column + m, strict=True))
        merged: list[list[float]] = []
        for lo, hi in intervals:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        c = float(out[index])
        for lo, hi in merged:
            if lo < c < hi:
                c = lo if c - lo < hi - c and not (positive and lo <= 0) else hi
                break
        out[index] = c
    return round_to(out, dtype)
