"""The self-test of the suite's power (CONF-7): deliberately wrong implementations.

Each mutant is refsae.torch behind fixed canonical conventions (tied, constrained, sum, l1, with
those conventions claimed, as a library's docs would), with one operation replaced by a plausible
bug: a wrong axis, a wrong reduction, a missing bias, a wrong order of steps, a non-strict
comparison … The suite must flag every one (a clause `fail` or `error`) and must pass the unmutated
adapter (`CORRECT`). `tests/test_conform_mutants.py` runs them; `MUTANTS[name].operation` is the row
the bug lives in (the other rows are refsae's own and pass).

Each mutant is a target: `refsae conform refsae.conform.mutants:mutant_encode_ignores_b_enc`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from refsae import oracle
from refsae import torch as rt
from refsae.conform.refsae_adapter import FixedRefsae
from refsae.conventions import Conventions
from refsae.oracle.optimizer import PARAMETERS

CANONICAL = Conventions()
CLAIMS = {"encode": "tied", "decoder": "constrained", "reconstruction": "sum", "sparsity": "l1"}


class CorrectRefsae(FixedRefsae):
    """The control: refsae.torch with canonical conventions, claimed; must pass everything."""

    name: ClassVar[str] = "refsae.canonical"
    conventions: ClassVar[Conventions] = CANONICAL
    claims: ClassVar[Mapping[str, str]] = CLAIMS


@dataclass(frozen=True)
class Mutant:
    name: str
    operation: str
    bug: str
    fn: Callable[..., Any]

    def adapter(self) -> CorrectRefsae:
        target = f"refsae.conform.mutants:mutant_{self.name}"
        cls = type(f"Mutant_{self.name}", (CorrectRefsae,), {"name": target})
        adapter: CorrectRefsae = cls()
        setattr(adapter, self.operation, self.fn)  # RefsaeAdapter.function picks it up
        return adapter


def _np(t: Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def _like(a: Any, t: Tensor) -> Tensor:
    return torch.as_tensor(np.asarray(a), dtype=t.dtype, device=t.device)


# --- forward ---------------------------------------------------------------------------------------
def encode_ignores_b_enc(x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, **kw: Any) -> Tensor:
    return rt.encode(x, W_enc, torch.zeros_like(b_enc), b_dec, **kw)


def encode_adds_b_dec(x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, **kw: Any) -> Tensor:
    return torch.relu(torch.einsum("b...i,...ij->b...j", x + b_dec, W_enc) + b_enc)


def encode_without_relu(x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, **kw: Any) -> Tensor:
    return torch.einsum("b...i,...ij->b...j", x - b_dec, W_enc) + b_enc


def decode_without_b_dec(f: Tensor, W_dec: Tensor, b_dec: Tensor, **kw: Any) -> Tensor:
    return rt.decode(f, W_dec, torch.zeros_like(b_dec), **kw)


def decoder_directions_normalise_columns(W_dec: Tensor, **kw: Any) -> Tensor:
    norms: Tensor = torch.linalg.vector_norm(W_dec, dim=-2, keepdim=True)
    return W_dec / (norms + 1e-8)


# --- losses ----------------------------------------------------------------------------------------
def reconstruction_sums_over_batch(x: Tensor, x_hat: Tensor, **kw: Any) -> Tensor:
    return ((x - x_hat) ** 2).sum(dim=(0, -1))


def reconstruction_without_square(x: Tensor, x_hat: Tensor, **kw: Any) -> Tensor:
    return (x - x_hat).abs().sum(dim=-1).mean(dim=0)


def sparsity_averages_over_latents(f: Tensor, W_dec: Tensor, **kw: Any) -> Tensor:
    return f.abs().mean(dim=-1).mean(dim=0)


def total_loss_averages_instances(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, **kw: Any
) -> Tensor:
    loss = rt.total_loss(x, W_enc, b_enc, W_dec, b_dec, **kw)
    return loss / (W_enc.shape[0] if W_enc.dim() == 3 else 1)


def gradients_without_sparsity_term(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, **kw: Any
) -> Any:
    return rt.loss_gradients(x, W_enc, b_enc, W_dec, b_dec, **{**kw, "l1_coefficient": 0.0})


# --- constraints and metrics -----------------------------------------------------------------------
def remove_parallel_assumes_unit_rows(W_dec: Tensor, grad_W_dec: Tensor) -> Tensor:
    return grad_W_dec - (grad_W_dec * W_dec).sum(dim=-1, keepdim=True) * W_dec


def renormalise_columns(W_dec: Tensor) -> Tensor:
    norms = torch.linalg.vector_norm(W_dec, dim=-2, keepdim=True)
    return W_dec / torch.where(norms > 0, norms, torch.ones_like(norms))


def renormalise_zero_rows_to_nan(W_dec: Tensor) -> Tensor:
    norms: Tensor = torch.linalg.vector_norm(W_dec, dim=-1, keepdim=True)
    return W_dec / norms


def l0_per_latent_mean(f: Tensor) -> Tensor:
    return (f != 0).to(torch.float64).mean(dim=(0, -1))


def fire_counts_counts_zeros(f: Tensor) -> Tensor:
    return (f >= 0).sum(dim=0)


def explained_variance_uncentred(x: Tensor, x_hat: Tensor) -> Tensor:
    return 1 - ((x - x_hat) ** 2).sum(dim=(0, -1)) / (x**2).sum(dim=(0, -1))


# --- optimizer and training ------------------------------------------------------------------------
def adam_without_bias_correction(
    param: Any,
    grad: Any,
    exp_avg: Any,
    exp_avg_sq: Any,
    *,
    step: int,
    lr: float,
    betas: Any = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> dict[str, dict[str, Tensor]]:
    b1, b2 = betas
    out: dict[str, dict[str, Tensor]] = {"param": {}, "exp_avg": {}, "exp_avg_sq": {}}
    for k in PARAMETERS:
        g = grad[k] + weight_decay * param[k]
        m = b1 * exp_avg[k] + (1 - b1) * g
        v = b2 * exp_avg_sq[k] + (1 - b2) * g * g
        out["param"][k], out["exp_avg"][k], out["exp_avg_sq"][k] = param[k] - lr * m / (v.sqrt() + eps), m, v
    return out


def adam_reset_first_moment_only(
    exp_avg: Any, exp_avg_sq: Any, latents: Tensor
) -> dict[str, dict[str, Tensor]]:
    out = rt.adam_reset_latents(exp_avg, exp_avg_sq, latents)
    out["exp_avg_sq"] = {k: v.clone() for k, v in exp_avg_sq.items()}
    return out


def training_step_constraint_before_step(
    x: Tensor, param: Any, exp_avg: Any, exp_avg_sq: Any, **kw: Any
) -> Any:
    arrays = [{k: _np(v) for k, v in m.items()} for m in (param, exp_avg, exp_avg_sq)]
    out = oracle.training_step(_np(x), *arrays, **kw, order="constraint_before_step")
    return {
        g: ({k: _like(v, x) for k, v in m.items()} if isinstance(m, dict) else _like(m, x))
        for g, m in out.items()
    }


# --- variants --------------------------------------------------------------------------------------
def topk_keeps_negatives(z: Tensor, *, k: int) -> Tensor:
    values, indices = z.topk(k, dim=-1)
    return torch.zeros_like(z).scatter(-1, indices, values)


def jumprelu_non_strict(z: Tensor, theta: Tensor) -> Tensor:
    return z * (z >= theta).to(z.dtype)


def batchtopk_per_example(z: Tensor, *, k: int) -> Tensor:
    return rt.topk(z, k=k)


def decode_sparse_without_b_dec(
    values: Tensor, indices: Tensor, W_dec: Tensor, b_dec: Tensor, **kw: Any
) -> Tensor:
    return rt.decode_sparse(values, indices, W_dec, torch.zeros_like(b_dec), **kw)


def jumprelu_threshold_gradient_without_theta(*args: Tensor, **kw: Any) -> dict[str, Tensor]:
    out = rt.jumprelu_loss_gradients(*args, **kw)
    reconstruction = rt.jumprelu_loss_gradients(*args, **{**kw, "l0_coefficient": 0.0})["threshold"]
    out["threshold"] = out["threshold"] - reconstruction + reconstruction / args[-1]
    return out


def gated_magnitude_uses_gate_bias(
    x: Tensor, W_enc: Tensor, b_gate: Tensor, r_mag: Tensor, b_mag: Tensor, b_dec: Tensor, **kw: Any
) -> tuple[Tensor, Tensor]:
    return rt.gated_encode(x, W_enc, b_gate, r_mag, b_gate, b_dec, **kw)


def auxk_selects_among_all_latents(z: Tensor, dead: Tensor, **kw: Any) -> Tensor:
    return rt.auxk_latents(z, torch.ones_like(dead), **kw)


MUTANTS: dict[str, Mutant] = {
    m.name: m
    for m in (
        Mutant(
            "encode_ignores_b_enc", "encode", "b_enc left out of the pre-activation", encode_ignores_b_enc
        ),
        Mutant("encode_adds_b_dec", "encode", "b_dec added instead of subtracted", encode_adds_b_dec),
        Mutant("encode_without_relu", "encode", "no ReLU: negative latents", encode_without_relu),
        Mutant("decode_without_b_dec", "decode", "b_dec not added back", decode_without_b_dec),
        Mutant(
            "decoder_directions_normalise_columns",
            "decoder_directions",
            "normalises W_dec over the wrong axis (columns)",
            decoder_directions_normalise_columns,
        ),
        Mutant(
            "reconstruction_sums_over_batch",
            "reconstruction_loss",
            "sums over the batch instead of averaging",
            reconstruction_sums_over_batch,
        ),
        Mutant(
            "reconstruction_without_square",
            "reconstruction_loss",
            "|r| instead of r²",
            reconstruction_without_square,
        ),
        Mutant(
            "sparsity_averages_over_latents",
            "sparsity_loss",
            "averages |f| over d_sae instead of summing",
            sparsity_averages_over_latents,
        ),
        Mutant(
            "total_loss_averages_instances",
            "total_loss",
            "averages the instances' losses instead of summing them",
            total_loss_averages_instances,
        ),
        Mutant(
            "gradients_without_sparsity_term",
            "loss_gradients",
            "the L1 term's gradient is dropped",
            gradients_without_sparsity_term,
        ),
        Mutant(
            "remove_parallel_assumes_unit_rows",
            "remove_parallel_component",
            "projects without dividing by ‖w‖²",
            remove_parallel_assumes_unit_rows,
        ),
        Mutant(
            "renormalise_columns", "renormalise_rows", "unit columns instead of rows", renormalise_columns
        ),
        Mutant(
            "renormalise_zero_rows_to_nan",
            "renormalise_rows",
            "divides by the norm with no guard: a zero row becomes NaN",
            renormalise_zero_rows_to_nan,
        ),
        Mutant("l0_per_latent_mean", "l0", "averages over latents instead of counting", l0_per_latent_mean),
        Mutant(
            "fire_counts_counts_zeros", "fire_counts", "counts f >= 0 as firing", fire_counts_counts_zeros
        ),
        Mutant(
            "explained_variance_uncentred",
            "explained_variance",
            "total variance not centred on the mean",
            explained_variance_uncentred,
        ),
        Mutant(
            "adam_without_bias_correction", "adam_step", "no bias correction", adam_without_bias_correction
        ),
        Mutant(
            "adam_reset_first_moment_only",
            "adam_reset_latents",
            "resets exp_avg but not exp_avg_sq",
            adam_reset_first_moment_only,
        ),
        Mutant(
            "training_step_constraint_before_step",
            "training_step",
            "renormalises W_dec before the optimizer step instead of after",
            training_step_constraint_before_step,
        ),
        Mutant("topk_keeps_negatives", "topk", "no ReLU after the top-k selection", topk_keeps_negatives),
        Mutant("jumprelu_non_strict", "jumprelu", "z >= θ instead of z > θ", jumprelu_non_strict),
        Mutant(
            "batchtopk_per_example",
            "batchtopk",
            "k per example instead of k·B per batch",
            batchtopk_per_example,
        ),
        Mutant(
            "decode_sparse_without_b_dec",
            "decode_sparse",
            "the sparse decode forgets b_dec",
            decode_sparse_without_b_dec,
        ),
        Mutant(
            "jumprelu_threshold_gradient_without_theta",
            "jumprelu_loss_gradients",
            "the reconstruction's pseudo-gradient of θ without its θ factor (−g·K/ε instead of −θ·g·K/ε)",
            jumprelu_threshold_gradient_without_theta,
        ),
        Mutant(
            "gated_magnitude_uses_gate_bias",
            "gated_encode",
            "the magnitude path adds b_gate instead of b_mag",
            gated_magnitude_uses_gate_bias,
        ),
        Mutant(
            "auxk_selects_among_all_latents",
            "auxk_latents",
            "the auxiliary top-k ignores the dead mask",
            auxk_selects_among_all_latents,
        ),
    )
}


def correct() -> CorrectRefsae:
    return CorrectRefsae()


def __getattr__(name: str) -> Any:
    """`refsae.conform.mutants:mutant_NAME` loads mutant NAME as a target."""
    if name.startswith("mutant_") and name[len("mutant_") :] in MUTANTS:
        return MUTANTS[name[len("mutant_") :]].adapter
    raise AttributeError(name)
