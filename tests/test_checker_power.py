"""The checker has power: plausible bugs are caught, each by the row that should catch it (CHK-1, CHK-2).

Each mutant is refsae.torch with one function replaced by a version carrying a bug seen in the wild
(or one easy to write). A test that cannot fail proves nothing; these show the tolerance rule is
tight enough to tell conventions apart in float32 and in bfloat16.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from refsae import torch as rt
from refsae.cases import Case
from refsae.checking import table
from refsae.checking.check import check
from refsae.checking.implementations import TorchImplementation, to_numpy, to_tensor


class Mutant(TorchImplementation):
    """refsae.torch with `operation` computed by `fn` instead."""

    def __init__(self, operation: str, fn: Callable[..., Any]) -> None:
        super().__init__("cpu")
        self.operation, self.fn = operation, fn
        self.name = f"mutant[{operation}]"

    def run(self, operation: str, case: Case) -> dict[str, np.ndarray]:
        if operation != self.operation:
            return super().run(operation, case)
        op = table.get(operation)
        tensors = {k: to_tensor(v, case.dtype, self.device) for k, v in case.arrays.items()}
        return {k: to_numpy(v) for k, v in op.call(self.fn, tensors, case.options).items()}


def _always_untied(x: Any, W_enc: Any, b_enc: Any, b_dec: Any, *, encode: Any) -> Any:
    return rt.encode(x, W_enc, b_enc, b_dec, encode="untied")


def _mean_without_d_in(x: Any, x_hat: Any, *, reconstruction: Any) -> Any:
    loss = rt.reconstruction_loss(x, x_hat, reconstruction=reconstruction)
    return loss * x.shape[-1] if reconstruction == "mean" else loss


def _fvu_uncentred(x: Any, x_hat: Any, *, reconstruction: Any) -> Any:
    if reconstruction != "fvu":
        return rt.reconstruction_loss(x, x_hat, reconstruction=reconstruction)
    return ((x_hat - x) ** 2).sum(dim=(0, -1)) / (x**2).sum(dim=(0, -1))


def _decoder_norm_ignored(f: Any, W_dec: Any, *, sparsity: Any) -> Any:
    return rt.sparsity_loss(f, W_dec, sparsity="l1")


def _normalised_by_squared_norm(W_dec: Any, *, decoder: Any, eps: Any) -> Any:
    if decoder == "constrained":
        return W_dec
    return W_dec / ((W_dec**2).sum(-1, keepdim=True) + eps)


def _b_dec_not_added(f: Any, W_dec: Any, b_dec: Any, *, decoder: Any, eps: Any) -> Any:
    return rt.decode(f, W_dec, torch.zeros_like(b_dec), decoder=decoder, eps=eps)


def _instances_averaged(
    x: Any, W_enc: Any, b_enc: Any, W_dec: Any, b_dec: Any, *, l1_coefficient: Any, conventions: Any
) -> Any:
    loss = rt.total_loss(
        x, W_enc, b_enc, W_dec, b_dec, l1_coefficient=l1_coefficient, conventions=conventions
    )
    return loss / x.shape[1] if x.ndim == 3 else loss


def _projected_gradient(
    x: Any, W_enc: Any, b_enc: Any, W_dec: Any, b_dec: Any, *, l1_coefficient: Any, conventions: Any
) -> Any:
    g = rt.loss_gradients(
        x, W_enc, b_enc, W_dec, b_dec, l1_coefficient=l1_coefficient, conventions=conventions
    )
    return {**g, "W_dec": rt.remove_parallel_component(W_dec, g["W_dec"])}


def _unit_row_shortcut(W_dec: Any, grad_W_dec: Any) -> Any:
    return grad_W_dec - (grad_W_dec * W_dec).sum(-1, keepdim=True) * W_dec


def _unguarded_renormalise(W_dec: Any) -> Any:
    return W_dec / torch.linalg.vector_norm(W_dec, dim=-1, keepdim=True)


def _global_mean_ev(x: Any, x_hat: Any) -> Any:
    return 1 - ((x_hat - x) ** 2).sum(dim=(0, -1)) / ((x - x.mean()) ** 2).sum(dim=(0, -1))


def _l0_counts_everything(f: Any) -> Any:
    return torch.full(f.shape[1:-1], float(f.shape[-1]), dtype=torch.float64)


def _dead_below_two(fire_counts: Any) -> Any:
    return (fire_counts <= 1).to(torch.float64).mean(dim=-1)


MUTANTS: list[tuple[str, Callable[..., Any], str]] = [
    ("encode", _always_untied, "ENC-2"),
    ("decode", _b_dec_not_added, "DEC-1"),
    ("decoder_directions", _normalised_by_squared_norm, "DEC-3"),
    ("reconstruction_loss", _mean_without_d_in, "LOSS-2"),
    ("reconstruction_loss", _fvu_uncentred, "LOSS-3"),
    ("sparsity_loss", _decoder_norm_ignored, "LOSS-5"),
    ("total_loss", _instances_averaged, "LOSS-6"),
    ("loss_gradients", _projected_gradient, "GRAD-1"),
    ("remove_parallel_component", _unit_row_shortcut, "PAR-2"),
    ("renormalise_rows", _unguarded_renormalise, "CON-2"),
    ("explained_variance", _global_mean_ev, "MET-3"),
    ("l0", _l0_counts_everything, "MET-1"),
    ("dead_fraction", _dead_below_two, "MET-2"),
]


@pytest.mark.parametrize(
    ("operation", "fn", "clause"), MUTANTS, ids=[f"{m[2]}-{m[1].__name__}" for m in MUTANTS]
)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_checker_flags_a_plausible_bug(
    operation: str, fn: Callable[..., Any], clause: str, dtype: str
) -> None:
    op = table.get(operation)
    if dtype not in op.dtypes:
        dtype = op.dtypes[0]
    assert clause in op.clauses or clause.split("-")[0] in {c.split("-")[0] for c in op.clauses}
    outcome = check(op, Mutant(operation, fn), dtype, max_examples=100, shrink=False)
    assert outcome.status == "fail", f"{fn.__name__} survived {outcome.examples} examples in {dtype}"
    assert outcome.failure is not None
