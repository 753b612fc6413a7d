"""Variants that are not bugs (CONF-21): each is, by construction, a named equivalence, a computation
at a lower working precision or a precondition, and the self-test must give it exactly that verdict
(the checker, which knows only the spec, still flags each). With the bugs of the other modules and
the `tie` of `jumprelu_non_strict` they fill the self-test's confusion matrix."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from refsae import torch as rt
from refsae.conform.domains import unit_rows
from refsae.conform.mutants.core import remove_parallel_assumes_unit_rows
from refsae.conform.mutants.record import F64, Mutant


def total_loss_l1_summed_over_batch(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, **kw: Any
) -> Tensor:
    """The L1 term summed over the batch: the spec's loss with λ' = λ·B (EQ `l1_batch_sum`)."""
    return rt.total_loss(
        x, W_enc, b_enc, W_dec, b_dec, **{**kw, "l1_coefficient": kw["l1_coefficient"] * x.shape[0]}
    )


def total_loss_l1_batch_sum_in_float32(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, **kw: Any
) -> Tensor:
    """`total_loss_l1_summed_over_batch` with the L1 term computed in float32 whatever the dtype, as
    dictionary_learning's JumpReluTrainer computes its L0 penalty (`.float()`): a float32 call follows
    the equivalence exactly, a float64 one only within the bounds of its declared float32 part."""
    c = kw["conventions"]
    reconstruction = rt.total_loss(x, W_enc, b_enc, W_dec, b_dec, **{**kw, "l1_coefficient": 0.0})
    f, _ = rt.forward(x, W_enc, b_enc, W_dec, b_dec, encode=c.encode, decoder=c.decoder, eps=c.eps)
    sparsity = rt.sparsity_loss(f.to(torch.float32), W_dec.to(torch.float32), sparsity=c.sparsity)
    penalty = (kw["l1_coefficient"] * x.shape[0] * sparsity).sum()
    loss: Tensor = reconstruction + penalty.to(x.dtype)
    return loss


def renormalise_rows_plus_finfo_eps(W_dec: Tensor) -> Tensor:
    """W_dec_j / (‖W_dec_j‖ + finfo(dtype).eps), as dictionary_learning and sparsify guard it."""
    norms: Tensor = torch.linalg.vector_norm(W_dec, dim=-1, keepdim=True)
    return W_dec / (norms + torch.finfo(W_dec.dtype).eps)


def l0_in_float32(f: Tensor) -> Tensor:
    """The mean count accumulated in float32 whatever the dtype (a float32 L0 of 2/3 is 0.6666666865)."""
    return (f != 0).to(torch.float32).sum(dim=-1).mean(dim=0).to(f.dtype)


MUTANTS = (
    Mutant("total_loss_l1_summed_over_batch", "total_loss", "LOSS-6",
        "the L1 term summed over the batch instead of averaged (λ' = λ·B)", total_loss_l1_summed_over_batch,
        verdict="convention"),
    Mutant("total_loss_l1_batch_sum_in_float32", "total_loss", "LOSS-6",
        "the L1 term summed over the batch (λ' = λ·B) and computed in float32 (declared)",
        total_loss_l1_batch_sum_in_float32, dtypes=F64, verdict="convention",
        working_precision={"total_loss": ("float32", "the L1 term is computed in float32")}),
    Mutant("renormalise_rows_plus_finfo_eps", "renormalise_rows", "CON-1",
        "divides by ‖w‖ + finfo(dtype).eps instead of ‖w‖", renormalise_rows_plus_finfo_eps, dtypes=F64,
        verdict="convention"),
    Mutant("l0_in_float32", "l0", "MET-1", "the mean count computed in float32 whatever the dtype",
        l0_in_float32, dtypes=F64, verdict="precision"),
    Mutant("remove_parallel_unit_rows_declared", "remove_parallel_component", "PAR-2",
        "projects without dividing by ‖w‖², its caller guaranteeing unit rows (declared `unit_rows`)",
        remove_parallel_assumes_unit_rows, verdict="precondition",
        domains=(unit_rows("the caller renormalises the rows before calling it"),)),
)  # fmt: skip
