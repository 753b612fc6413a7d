"""Weight folding (folding.md): case strategies, error bounds, rows and equivalences of
`fold_W_dec_norm`, `fold_W_dec_norm_threshold`, `fold_input_scale` and `fold_input_scale_threshold`;
SAELens's clamped fold (`norm_clamped_1e-8`, EQ-15).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking import bounds
from refsae.checking import strategies as rs
from refsae.checking.cases import finish, sae_case
from refsae.checking.equivalence import Equivalence, calling
from refsae.checking.operation import Bounds, Operation, Outputs
from refsae.checking.rows.constraints import has_zero_row
from refsae.checking.tolerances import Bound, mul
from refsae.conventions import OPERATION_AXES
from refsae.oracle.folding import SAELENS_NORM_CLAMP


def _with_zero_rows(draw: st.DrawFn, W_dec: np.ndarray) -> np.ndarray:
    """W_dec with some rows exactly zero (FOLD-2), a quarter of the time."""
    if draw(st.integers(0, 3)) > 0:
        return W_dec
    zero_rows = draw(st.lists(st.booleans(), min_size=W_dec.shape[-2], max_size=W_dec.shape[-2]))
    W_dec = W_dec.copy()
    W_dec[..., np.array(zero_rows, dtype=bool), :] = 0.0
    return W_dec


def _thresholds(draw: st.DrawFn, shape: rs.Shape, dtype: str) -> np.ndarray:
    """Positive JumpReLU thresholds (JUMP-1) of the latents' scale."""
    theta = draw(rs.arrays((*shape.inst, shape.d_sae), dtype, draw(rs.scales(dtype))))
    return rs.round_to(np.abs(theta) + 2.0 ** rs.SCALE_EXPONENTS[dtype][0], dtype)


@st.composite
def norm_cases(draw: st.DrawFn, dtype: str, threshold: bool = False) -> Case:
    """W_enc, b_enc, W_dec (sometimes with zero rows), or W_dec and θ."""
    shape, a = draw(sae_case(dtype, with_x=False, with_params=("W_enc", "b_enc", "W_dec")))
    a["W_dec"] = _with_zero_rows(draw, a["W_dec"])
    if threshold:
        a = {"W_dec": a["W_dec"], "theta": _thresholds(draw, shape, dtype)}
    norms = np.linalg.norm(a["W_dec"], axis=-1)
    products = [np.abs(v) * norms.max(initial=0.0) for k, v in a.items() if k != "W_dec"]
    return finish(Case(a, {}, dtype), [norms**2, *products])


SCALES = (0.05, 0.3, 1.0, 2.0, 7.25, 31.6)
"""Input scales c: SAELens's √d_in / E‖x‖ and dictionary_learning's 1/√E‖x‖² land anywhere; most are
not powers of two, so that c·W and W/c are rounded (FOLD-4)."""


@st.composite
def scale_cases(draw: st.DrawFn, dtype: str, threshold: bool = False) -> Case:
    """An SAE's W_enc, b_enc, W_dec, b_dec (or θ) with a scale and where to fold it."""
    shape, a = draw(sae_case(dtype, with_x=False))
    if threshold:
        a = {"theta": _thresholds(draw, shape, dtype)}
    scale = draw(st.sampled_from(SCALES)) * draw(st.sampled_from((1.0, 1.0 + 2.0**-10)))
    options = {"factor": scale, "fold_into": draw(rs.convention("fold_into", OPERATION_AXES["fold_into"]))}
    largest = max(SCALES) * (1 + 2.0**-10) / min(SCALES)
    return finish(Case(a, options, dtype), [np.abs(v) * largest for v in a.values()])


def norm_bounds(case: Case, out: Outputs) -> Bounds:
    """Each output is an input times or over s_j = ‖W_dec_j‖ (d_in squares, a root, stored); the
    magnitudes are the outputs' own (a product's relative error is its factors' summed)."""
    s = bounds.row_norms(case.arrays["W_dec"])
    return {k: mul(np.abs(v), s, k_store=1) for k, v in out.items()}


def scale_bounds(case: Case, out: Outputs) -> Bounds:
    """Each output is an input times or over c (c rounded to the accumulator, the result stored), or a
    copy (exact)."""
    into = case.options["fold_into"]
    unchanged = {"weights": ("b_enc",), "biases": ("W_enc", "W_dec")}[into]
    if "theta" in out:
        unchanged = ("theta",) if into == "weights" else ()
    return {k: (None if k in unchanged else Bound(np.abs(v), 1, 1)) for k, v in out.items()}


ROWS = (
    Operation(
        name="fold_W_dec_norm",
        summary="decoder row norms folded into the encoder",
        clauses=("FOLD-1", "FOLD-2"),
        arrays=("W_enc", "b_enc", "W_dec"),
        outputs=("W_enc", "b_enc", "W_dec"),
        cases=norm_cases,
        bounds=norm_bounds,
        edge_clauses=(("FOLD-2", has_zero_row),),
    ),
    Operation(
        name="fold_W_dec_norm_threshold",
        summary="a JumpReLU threshold after the decoder-norm fold",
        clauses=("FOLD-2", "FOLD-3"),
        arrays=("W_dec", "theta"),
        outputs=("theta",),
        cases=lambda dtype: norm_cases(dtype, threshold=True),
        bounds=norm_bounds,
        edge_clauses=(("FOLD-2", has_zero_row),),
    ),
    Operation(
        name="fold_input_scale",
        summary="an input scale folded into the weights or the biases",
        clauses=("FOLD-4", "FOLD-5", "FOLD-6"),
        arrays=("W_enc", "b_enc", "W_dec", "b_dec"),
        outputs=("W_enc", "b_enc", "W_dec", "b_dec"),
        cases=scale_cases,
        bounds=scale_bounds,
        example={"factor": 2.0, "fold_into": "weights"},
    ),
    Operation(
        name="fold_input_scale_threshold",
        summary="a JumpReLU threshold after an input-scale fold",
        clauses=("FOLD-7",),
        arrays=("theta",),
        outputs=("theta",),
        cases=lambda dtype: scale_cases(dtype, threshold=True),
        bounds=scale_bounds,
        example={"factor": 2.0, "fold_into": "biases"},
    ),
)


def _threshold_clamped(W_dec: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """θ_j · max(‖W_dec_j‖, 1e-8): SAELens's JumpReLU fold (EQ-15)."""
    return np.asarray(theta * np.maximum(np.linalg.norm(W_dec, axis=-1), SAELENS_NORM_CLAMP))


EQUIVALENCES = (
    Equivalence(
        name="norm_clamped_1e-8",
        clause="EQ-15",
        rows=("fold_W_dec_norm", "fold_W_dec_norm_threshold"),
        formula="s_j = max(‖W_dec_j‖, 1e-8): a zero row's latent multiplied by 1e-8 (FOLD-2 keeps it)",
        reference=calling(
            {
                "fold_W_dec_norm": oracle.fold_W_dec_norm_clamped,
                "fold_W_dec_norm_threshold": _threshold_clamped,
            }
        ),
        about=("FOLD-2",),
    ),
)
"""SAELens's clamped row norms (EQ-15)."""
