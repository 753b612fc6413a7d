"""The decoder constraints (constraints.md): case strategies, error bounds and rows of
`renormalise_rows` and `remove_parallel_component`; the bounds of both on inexact inputs, which the
resampling and training-step bounds chain; their eps-guarded equivalences (equivalences.md):
`norm_plus_eps(…)` (EQ-4) and `project_on_norm_plus_eps(…)` (EQ-5), for eps = the dtype's machine
epsilon (`finfo`), 1e-6 and 1e-8.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking import bounds
from refsae.checking import strategies as rs
from refsae.checking.cases import finish, sae_case
from refsae.checking.equivalence import Equivalence, Parameters
from refsae.checking.operation import Bounds, Operation, Outputs
from refsae.checking.tolerances import Bound, add, leaf, mul
from refsae.torch.fast import constraints as fast_constraints


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
    return finish(Case(arrays, {}, dtype), [np.abs(v) ** 2 for v in arrays.values()])


def renormalise_rows_bound(W_dec: np.ndarray) -> Bound:
    """W_j / ‖W_j‖: one quotient by a norm (zero rows: exactly 0)."""
    n = bounds.row_norms(W_dec, keepdims=True)
    safe = np.where(n.magnitude > 0, n.magnitude, np.inf)
    return mul(np.abs(W_dec) / safe, leaf(W_dec), n, k_store=1)


def remove_parallel_component_bound(W_dec: np.ndarray, grad_W_dec: np.ndarray) -> Bound:
    """g − (g·w / ‖w‖²) w: two length-d_in sums, a quotient, a product, a difference."""
    d_in = W_dec.shape[-1]
    sq = Bound(np.sum(W_dec**2, axis=-1, keepdims=True), d_in, 1)
    dot = Bound(np.sum(np.abs(W_dec * grad_W_dec), axis=-1, keepdims=True), d_in, 1)
    safe = np.where(sq.magnitude > 0, sq.magnitude, np.inf)
    coeff = mul(dot.magnitude / safe, dot, sq, k_store=1)
    along = mul(coeff.magnitude * np.abs(W_dec), coeff, leaf(W_dec), k_store=1)
    return add(np.abs(grad_W_dec) + along.magnitude, along, leaf(grad_W_dec), k_store=1)


def renormalised_bound(w: np.ndarray, wb: Bound) -> Bound:
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


def parallel_removed_bound(W: np.ndarray, gb: Bound) -> Bound:
    """g − (g·w/‖w‖²) w, linear in an inexact g with W exact."""
    sq = np.sum(W * W, axis=-1, keepdims=True)
    safe = np.where(sq > 0, sq, np.inf)
    along = np.sum(gb.magnitude * np.abs(W), axis=-1, keepdims=True)
    return gb.then(gb.magnitude + np.abs(W) * along / safe, k_acc=2 * W.shape[-1] + 2, k_store=4)


def has_zero_row(case: Case) -> bool:
    """The case's W_dec has a zero row (CON-2, PAR-3, DEC-4)."""
    return bool(np.any(np.all(case.arrays["W_dec"] == 0, axis=-1)))


def zero_rows_of(output: str) -> Callable[[Case], dict[str, np.ndarray]]:
    """The elements of `output` in the zero rows of the case's W_dec (what CON-2 and PAR-3 are about)."""

    def mask(case: Case) -> dict[str, np.ndarray]:
        w = case.arrays["W_dec"]
        return {output: np.broadcast_to(np.all(w == 0, axis=-1, keepdims=True), w.shape)}

    return mask


def renormalise_rows_cases(dtype: str) -> st.SearchStrategy[Case]:
    return row_cases(dtype, with_grad=False)


def remove_parallel_component_cases(dtype: str) -> st.SearchStrategy[Case]:
    return row_cases(dtype, with_grad=True)


def renormalise_rows_bounds(case: Case, out: Outputs) -> Bounds:
    return {"W_dec": renormalise_rows_bound(case.arrays["W_dec"])}


def remove_parallel_component_bounds(case: Case, out: Outputs) -> Bounds:
    a = case.arrays
    return {"grad_W_dec": remove_parallel_component_bound(a["W_dec"], a["grad_W_dec"])}


ROWS = (
    Operation(
        name="renormalise_rows",
        summary="unit-norm constraint: W_dec_j / ‖W_dec_j‖, zero rows stay zero",
        clauses=("CON-1", "CON-2"),
        arrays=("W_dec",),
        outputs=("W_dec",),
        cases=renormalise_rows_cases,
        bounds=renormalise_rows_bounds,
        edge_clauses=(("CON-2", has_zero_row),),
        edge_elements={"CON-2": zero_rows_of("W_dec")},
        fast=fast_constraints.renormalised,
    ),
    Operation(
        name="remove_parallel_component",
        summary="g_j − (g_j·w_j / ‖w_j‖²) w_j",
        clauses=("PAR-1", "PAR-2", "PAR-3"),
        arrays=("W_dec", "grad_W_dec"),
        outputs=("grad_W_dec",),
        cases=remove_parallel_component_cases,
        bounds=remove_parallel_component_bounds,
        edge_clauses=(("PAR-3", has_zero_row),),
        edge_elements={"PAR-3": zero_rows_of("grad_W_dec")},
        fast=fast_constraints.parallel_removed,
    ),
)


MACHINE_EPSILON: dict[str, float] = {
    "float64": float(np.finfo(np.float64).eps),  # 2^-52
    "float32": float(np.finfo(np.float32).eps),  # 2^-23
    "bfloat16": 2.0**-7,  # torch.finfo(torch.bfloat16).eps; NumPy has no bfloat16
    "float16": float(np.finfo(np.float16).eps),  # 2^-10
}
"""`torch.finfo(dtype).eps` of each dtype: the eps of `norm_plus_eps(finfo)` (EQ-4)."""


def eps_of(case: Case, parameters: Parameters) -> float:
    """The equivalence's eps: a number, or `"finfo"` for the machine epsilon of the case's dtype."""
    eps = parameters["eps"]
    return MACHINE_EPSILON[case.dtype] if eps == "finfo" else float(eps)


def norm_plus_eps(op: Operation, case: Case, parameters: Parameters) -> Outputs:
    """EQ-4: W_dec_j / (‖W_dec_j‖ + eps)."""
    return {"W_dec": oracle.renormalise_rows_plus_eps(case.arrays["W_dec"], eps=eps_of(case, parameters))}


def project_on_norm_plus_eps(op: Operation, case: Case, parameters: Parameters) -> Outputs:
    """EQ-5: g_j − (g_j·ŵ_j) ŵ_j with ŵ_j = w_j / (‖w_j‖ + eps)."""
    a = case.arrays
    eps = eps_of(case, parameters)
    return {"grad_W_dec": oracle.remove_parallel_component_plus_eps(a["W_dec"], a["grad_W_dec"], eps=eps)}


EPSILONS: tuple[tuple[str, str | float], ...] = (("finfo", "finfo"), ("1e-6", 1e-6), ("1e-8", 1e-8))
"""The eps of each variant, by the name it carries: `finfo` (dictionary_learning's and sparsify's
renormalisation), 1e-6 (dictionary_learning's projection), 1e-8 (overcomplete's normalisation)."""


def _eps_text(eps: str | float) -> str:
    return "torch.finfo(dtype).eps" if eps == "finfo" else str(eps)


EQUIVALENCES = (
    *(
        Equivalence(
            name=f"norm_plus_eps({label})",
            clause="EQ-4",
            rows=("renormalise_rows",),
            formula=f"W_dec_j / (‖W_dec_j‖ + eps), eps = {_eps_text(eps)} (CON-1 divides by ‖W_dec_j‖); "
            "zero rows stay zero",
            reference=norm_plus_eps,
            parameters={"eps": eps},
            about=("CON-1",),
        )
        for label, eps in EPSILONS
    ),
    *(
        Equivalence(
            name=f"project_on_norm_plus_eps({label})",
            clause="EQ-5",
            rows=("remove_parallel_component",),
            formula=f"g_j − (g_j·ŵ_j) ŵ_j, ŵ_j = w_j / (‖w_j‖ + eps), eps = {_eps_text(eps)} "
            "(PAR-1 projects on w_j / ‖w_j‖)",
            reference=project_on_norm_plus_eps,
            parameters={"eps": eps},
            about=("PAR-1",),
        )
        for label, eps in EPSILONS
    ),
)
"""The eps-guarded forms of the constraint and the projection (EQ-4, EQ-5)."""
