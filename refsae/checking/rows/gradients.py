"""The loss gradients (gradients.md): the row of `loss_gradients`, with its fast path (PERF-2)."""

from __future__ import annotations

from hypothesis import strategies as st

from refsae.cases import Case
from refsae.checking import bounds
from refsae.checking.cases import conventions_of, sae_arrays
from refsae.checking.operation import Bounds, Operation, Outputs
from refsae.checking.rows.losses import LOSS_EXAMPLE, loss_cases
from refsae.torch.fast import gradients as fast_gradients


def gradient_cases(dtype: str) -> st.SearchStrategy[Case]:
    """Full SAE cases with the kink margin (STR-7) and the backward pass's range (STR-4)."""
    return loss_cases(dtype, kink_margin=True, backward=True)


def loss_gradients_bounds(case: Case, out: Outputs) -> Bounds:
    """GRAD's bounds of the four gradients (also those of the variants' gradient rows)."""
    return dict(
        bounds.loss_gradients(*sae_arrays(case), case.options["l1_coefficient"], conventions_of(case))
    )


ROWS = (
    Operation(
        name="loss_gradients",
        summary="∂L/∂(W_enc, b_enc, W_dec, b_dec), every convention",
        clauses=("GRAD-1", "GRAD-2", "GRAD-3", "GRAD-4", "GRAD-5", "GRAD-6", "TOL-6"),
        arrays=("x", "W_enc", "b_enc", "W_dec", "b_dec"),
        outputs=("W_enc", "b_enc", "W_dec", "b_dec"),
        cases=gradient_cases,
        bounds=loss_gradients_bounds,
        example=LOSS_EXAMPLE,
        fast=fast_gradients.fused_loss_gradients,
    ),
)
