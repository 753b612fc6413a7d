"""`Case`: one drawn input of an operation, and the input strategy of every operation (STR-7, STR-8).

A case is canonical: named float64 NumPy arrays whose values are representable in `dtype`, plus
keyword options (conventions, coefficients). Any implementation, in any framework, receives the
same case; `Case.reproduction()` prints it as copy-pasteable Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import bounds, bounds_gradients
from refsae import strategies as rs
from refsae.conventions import DECODER, ENCODE, RECONSTRUCTION, SPARSITY, Conventions
from refsae.tolerances import LARGEST, Bound, allowed_error, leaf


@dataclass(frozen=True)
class Case:
    """Named canonical arrays, keyword options and the dtype the implementation computes in."""

    arrays: dict[str, np.ndarray]
    options: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float64"

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in self.arrays.items())
        return f"Case({shapes}; {self.options}; {self.dtype})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis prints falsifying examples with this: shapes only (the note carries the arrays)."""
        printer.text(repr(self))

    def reproduction(self) -> str:
        """Python source that rebuilds the case (NumPy literals at full float64 precision)."""
        with np.printoptions(precision=17, threshold=1_000_000, floatmode="unique"):
            lines = ["import numpy as np", "from refsae.conventions import Conventions"]
            if any("." in name for name in self.arrays):
                lines.append("arrays = {}")
            for name, a in self.arrays.items():
                dtype = "np.int64" if a.dtype.kind == "i" else "np.float64"
                target = f"arrays[{name!r}]" if "." in name else name
                lines.append(f"{target} = np.array({np.array2string(a, separator=', ')}, dtype={dtype})")
            lines.append(f"options = {self.options!r}")
            lines.append(f"dtype = {self.dtype!r}")
        return "\n".join(lines)


def _within_range(case: Case, magnitudes: list[np.ndarray]) -> bool:
    """No intermediate can overflow: the magnitudes of the largest intermediates (sums before their
    division, squares) stay below 1/16 of the dtype's largest value (STR-4)."""
    largest = max((float(np.max(m, initial=0.0)) for m in magnitudes), default=0.0)
    return largest < LARGEST.get(case.dtype, LARGEST["float64"]) / 16


def variance_is_certain(x: np.ndarray, dtype: str) -> bool:
    """FVU needs V > 0 as computed in `dtype` too: V must exceed twice its own allowed error (STR-8)."""
    V = ((x - x.mean(axis=0, keepdims=True)) ** 2).sum(axis=(0, -1))
    return bool(np.all(2 * allowed_error(bounds.total_variance(x), dtype) < V))


@st.composite
def sae_case(
    draw: st.DrawFn,
    dtype: str,
    *,
    with_x: bool = True,
    with_params: tuple[str, ...] = ("W_enc", "b_enc", "W_dec", "b_dec"),
    min_batch: int = 1,
) -> tuple[rs.Shape, dict[str, np.ndarray]]:
    """A shape and the named arrays of a full SAE case."""
    shape = draw(rs.shapes(min_batch=min_batch))
    params = draw(rs.sae_params(shape, dtype))
    arrays = {k: params[k] for k in with_params}
    if with_x:
        arrays = {"x": draw(rs.inputs(shape, dtype)), **arrays}
    return shape, arrays


def _finish(case: Case, magnitudes: list[np.ndarray]) -> Case:
    assume(_within_range(case, magnitudes))
    return case


@st.composite
def encode_cases(draw: st.DrawFn, dtype: str) -> Case:
    _, a = draw(sae_case(dtype, with_params=("W_enc", "b_enc", "b_dec")))
    encode = draw(rs.convention("encode", ENCODE))
    z = bounds.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], encode)
    return _finish(Case(a, {"encode": encode}, dtype), [z.magnitude])


EPSILONS = (1e-8, 1e-3, 0.5)


@st.composite
def decoder_cases(draw: st.DrawFn, dtype: str) -> Case:
    _, a = draw(sae_case(dtype, with_x=False, with_params=("W_dec",)))
    options = {
        "decoder": draw(rs.convention("decoder", DECODER)),
        "eps": draw(rs.epsilons(EPSILONS)),
    }
    return Case(a, options, dtype)


@st.composite
def decode_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape, a = draw(sae_case(dtype, with_x=False, with_params=("W_dec", "b_dec")))
    f = draw(rs.latents(shape, dtype))
    decoder, eps = draw(rs.convention("decoder", DECODER)), draw(rs.epsilons(EPSILONS))
    x_hat = bounds.decode(leaf(f), a["W_dec"], a["b_dec"], decoder, eps)
    return _finish(Case({"f": f, **a}, {"decoder": decoder, "eps": eps}, dtype), [x_hat.magnitude])


@st.composite
def forward_cases(draw: st.DrawFn, dtype: str) -> Case:
    _, a = draw(sae_case(dtype))
    c = draw(rs.conventions(reconstruction=("sum",), sparsity=("l1",)))
    options = {"encode": c.encode, "decoder": c.decoder, "eps": c.eps}
    _, x_hat = bounds.forward(a["x"], a["W_enc"], a["b_enc"], a["W_dec"], a["b_dec"], c)
    return _finish(Case(a, options, dtype), [x_hat.magnitude])


@st.composite
def reconstruction_cases(draw: st.DrawFn, dtype: str) -> Case:
    reconstruction = draw(rs.convention("reconstruction", RECONSTRUCTION))
    shape = draw(rs.shapes(min_batch=2 if reconstruction == "fvu" else 1))
    x = draw(rs.inputs(shape, dtype))
    x_hat = draw(rs.inputs(shape, dtype))
    if reconstruction == "fvu":
        assume(variance_is_certain(x, dtype))
    numerator = ((np.abs(x) + np.abs(x_hat)) ** 2).sum(axis=(0, -1))
    return _finish(Case({"x": x, "x_hat": x_hat}, {"reconstruction": reconstruction}, dtype), [numerator])


@st.composite
def sparsity_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape, a = draw(sae_case(dtype, with_x=False, with_params=("W_dec",)))
    f = draw(rs.latents(shape, dtype))
    sparsity = draw(rs.convention("sparsity", SPARSITY))
    b = bounds.sparsity_loss(leaf(f), a["W_dec"], sparsity)
    return _finish(Case({"f": f, **a}, {"sparsity": sparsity}, dtype), [b.magnitude * shape.batch])


@st.composite
def loss_cases(draw: st.DrawFn, dtype: str, *, kink_margin: bool = False, backward: bool = False) -> Case:
    """Full SAE cases for the total loss and its gradients; with `kink_margin`, every pre-activation
    is kept farther from 0 than twice its allowed error (STR-7); with `backward`, the intermediates
    of the backward pass stay in range too (STR-4)."""
    c: Conventions = draw(rs.conventions())
    shape, a = draw(sae_case(dtype, min_batch=2 if c.reconstruction == "fvu" else 1))
    if c.reconstruction == "fvu":
        assume(variance_is_certain(a["x"], dtype))
    if kink_margin:
        u = a["x"] - a["b_dec"] if c.encode == "tied" else a["x"]
        z0 = np.einsum("b...i,...ij->b...j", u, a["W_enc"])
        z = bounds.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], c.encode)
        headroom = np.abs(z0) + np.abs(a["b_enc"]) + z.magnitude
        margin = 4 * allowed_error(Bound(headroom, z.k_acc, z.k_store), dtype)
        a["b_enc"] = rs.kink_margin_b_enc(z0, a["b_enc"], margin, dtype)
        z = bounds.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], c.encode)
        assume(bool(np.all(np.abs(z0 + a["b_enc"]) > 2 * allowed_error(z, dtype))))
    lam: float = draw(rs.l1_coefficients())
    options = {"l1_coefficient": lam, "conventions": c}
    f, x_hat = bounds.forward(a["x"], a["W_enc"], a["b_enc"], a["W_dec"], a["b_dec"], c)
    numerator = ((x_hat.magnitude + np.abs(a["x"])) ** 2).sum(axis=(0, -1))
    penalty = bounds.sparsity_loss(f, a["W_dec"], c.sparsity).magnitude * shape.batch
    magnitudes = [f.magnitude, x_hat.magnitude, numerator, penalty]
    if backward:
        magnitudes += backward_magnitudes(a, lam, c)
    return _finish(Case(a, options, dtype), magnitudes)


def backward_magnitudes(a: dict[str, np.ndarray], l1_coefficient: float, c: Conventions) -> list[np.ndarray]:
    """Magnitudes of the backward pass's intermediates (STR-4): every gradient's M (which covers its
    chain, TOL-4) and, under `normalised`, the quotient (G·W_j)/(‖W_j‖ + eps)² that autograd forms
    for the norm's backward before the two radial terms cancel: with a short row it can overflow
    float16 while the gradient itself is small (|G_jd| <= M_jd (‖W_j‖ + eps) bounds G)."""
    g = bounds_gradients.loss_gradients(
        a["x"], a["W_enc"], a["b_enc"], a["W_dec"], a["b_dec"], l1_coefficient, c
    )
    out = [bound.magnitude for bound in g.values()]
    if c.decoder == "normalised":
        ne = np.linalg.norm(a["W_dec"], axis=-1) + c.eps
        out.append((np.abs(a["W_dec"]) * g["W_dec"].magnitude).sum(axis=-1) / ne)
    return out


@st.composite
def row_cases(draw: st.DrawFn, dtype: str, *, with_grad: bool) -> Case:
    """W_dec (some rows exactly zero, for CON-2 and PAR-3) and optionally a gradient of its shape."""
    shape, a = draw(sae_case(dtype, with_x=False, with_params=("W_dec",)))
    zero_rows = draw(st.lists(st.booleans(), min_size=shape.d_sae, max_size=shape.d_sae))
    W_dec = a["W_dec"].copy()
    W_dec[..., np.array(zero_rows, dtype=bool), :] = 0.0
    arrays = {"W_dec": W_dec}
    if with_grad:
        arrays["grad_W_dec"] = draw(rs.arrays(W_dec.shape, dtype, draw(rs.scales(dtype))))
    return _finish(Case(arrays, {}, dtype), [np.abs(v) ** 2 for v in arrays.values()])


@st.composite
def latent_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape = draw(rs.shapes())
    return Case({"f": draw(rs.latents(shape, dtype))}, {}, dtype)


@st.composite
def fire_count_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape = draw(rs.shapes())
    counts = draw(rs.arrays((*shape.inst, shape.d_sae), "float64", 4.0))
    return Case({"fire_counts": np.abs(np.round(counts)).astype(np.int64)}, {}, dtype)


@st.composite
def explained_variance_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape = draw(rs.shapes(min_batch=2))
    x = draw(rs.inputs(shape, dtype))
    assume(variance_is_certain(x, dtype))
    noise = draw(rs.inputs(shape, dtype))
    x_hat = rs.round_to(x + noise * draw(st.sampled_from((0.0, 1e-3, 0.1, 1.0))), dtype)
    numerator = ((np.abs(x) + np.abs(x_hat)) ** 2).sum(axis=(0, -1))
    return _finish(Case({"x": x, "x_hat": x_hat}, {}, dtype), [numerator])
