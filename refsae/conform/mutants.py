"""The registry of mutants: deliberately wrong implementations, one bug each (CHK-1, CONF-8).

A mutant is refsae.torch with one row's torch function replaced by `Mutant.change`, a plausible bug
(a wrong axis, a wrong reduction, a missing bias, a wrong order of steps, a non-strict comparison,
an option ignored …) that breaks `Mutant.clause`. The change is called as the row calls its own
function (`Operation.call`: arrays positionally, options by keyword), so one record serves both
uses, and no test keeps a copy of its own:

- the checker's power (CHK-1, CHK-2; `tests/test_checker_power.py`): `Mutant.implementation()` is a
  checker `Implementation` that `refsae.checking.check.check` must fail on the row, in each of
  `Mutant.dtypes`, within `Mutant.max_examples` examples;
- the conformance suite's self-test (CONF-8; `refsae/conform/selftest.py`,
  `tests/test_conform_selftest.py`): `Mutant.adapter()` is refsae.torch behind fixed canonical
  conventions (tied, constrained, sum, l1, claimed as a library's docs would) with the change in
  place; the suite must flag it on its row, and must pass the unmutated adapter (`CorrectRefsae`).
  A mutant whose bug shows only under an option value the canonical adapter never uses (`mean`
  misread), or that ignores an option and so merely has another named convention (CONF-3), is
  invisible to it; `Mutant.unseen_by_selftest` says why, and the self-test leaves it out
  (`SELFTEST`). The checker, which passes every option, must still flag it.

Each mutant is also a conformance target: `refsae conform refsae.conform.mutants:mutant_NAME`. That
name, which CONF-8 and the reports' reproductions use, is why the registry lives here rather than
beside the checker.
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
from refsae.cases import Case
from refsae.checking import table
from refsae.checking.implementations import TorchImplementation, to_numpy, to_tensor
from refsae.conform.refsae_adapter import FixedRefsae
from refsae.conventions import Conventions
from refsae.oracle.optimizer import PARAMETERS
from refsae.torch.gradients import autograd_gradients

CANONICAL = Conventions()
CLAIMS = {"encode": "tied", "decoder": "constrained", "reconstruction": "sum", "sparsity": "l1"}


class CorrectRefsae(FixedRefsae):
    """The control: refsae.torch with canonical conventions, claimed; must pass everything."""

    name: ClassVar[str] = "refsae.canonical"
    conventions: ClassVar[Conventions] = CANONICAL
    claims: ClassVar[Mapping[str, str]] = CLAIMS


class MutantImplementation(TorchImplementation):
    """refsae.torch on the CPU with the mutant's row computed by its change (the checker's use)."""

    def __init__(self, mutant: Mutant) -> None:
        super().__init__("cpu")
        self.mutant = mutant
        self.name = f"mutant[{mutant.name}]"

    def run(self, operation: str, case: Case) -> dict[str, np.ndarray]:
        if operation != self.mutant.operation:
            return super().run(operation, case)
        op = table.get(operation)
        tensors = {k: to_tensor(v, case.dtype, self.device) for k, v in case.arrays.items()}
        return {k: to_numpy(v) for k, v in op.call(self.mutant.change, tensors, case.options).items()}


@dataclass(frozen=True)
class Mutant:
    """One bug: `change` replaces the torch function of row `operation` and breaks `clause`."""

    name: str
    operation: str
    clause: str
    description: str
    change: Callable[..., Any]
    """Called as the row calls its torch function (`Operation.call`)."""
    dtypes: tuple[str, ...] = ("float32", "bfloat16")
    """The dtypes in which the checker must flag it within `max_examples` examples (CHK-1)."""
    max_examples: int = 100
    output: str = ""
    """Where set, the checker's failure must be a mismatch at this output (CHK-2)."""
    unseen_by_selftest: str = ""
    """Why the self-test's fixed canonical conventions cannot expose the bug; empty: they must."""

    def adapter(self) -> CorrectRefsae:
        """The conformance adapter (CONF-8): the canonical fixed refsae with the change in place."""
        target = f"refsae.conform.mutants:mutant_{self.name}"
        cls = type(f"Mutant_{self.name}", (CorrectRefsae,), {"name": target})
        adapter: CorrectRefsae = cls()
        setattr(adapter, self.operation, self.change)  # RefsaeAdapter.function picks it up
        return adapter

    def implementation(self) -> MutantImplementation:
        """The checker implementation (CHK-1): refsae.torch with the change in place."""
        return MutantImplementation(self)


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


# --- forward, losses, gradients: options ignored or misread (from the checker's power tests) -----
def encode_always_untied(x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, *, encode: Any) -> Tensor:
    return rt.encode(x, W_enc, b_enc, b_dec, encode="untied")


def decoder_directions_divide_by_squared_norm(W_dec: Tensor, *, decoder: Any, eps: float) -> Tensor:
    if decoder == "constrained":
        return W_dec
    return W_dec / ((W_dec**2).sum(-1, keepdim=True) + eps)


def reconstruction_mean_without_d_in(x: Tensor, x_hat: Tensor, *, reconstruction: Any) -> Tensor:
    loss = rt.reconstruction_loss(x, x_hat, reconstruction=reconstruction)
    return loss * x.shape[-1] if reconstruction == "mean" else loss


def reconstruction_fvu_uncentred(x: Tensor, x_hat: Tensor, *, reconstruction: Any) -> Tensor:
    if reconstruction != "fvu":
        return rt.reconstruction_loss(x, x_hat, reconstruction=reconstruction)
    return ((x_hat - x) ** 2).sum(dim=(0, -1)) / (x**2).sum(dim=(0, -1))


def sparsity_ignores_decoder_norm(f: Tensor, W_dec: Tensor, *, sparsity: Any) -> Tensor:
    return rt.sparsity_loss(f, W_dec, sparsity="l1")


def gradients_with_parallel_component_removed(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, **kw: Any
) -> dict[str, Tensor]:
    g = rt.loss_gradients(x, W_enc, b_enc, W_dec, b_dec, **kw)
    return {**g, "W_dec": rt.remove_parallel_component(W_dec, g["W_dec"])}


def explained_variance_global_mean(x: Tensor, x_hat: Tensor) -> Tensor:
    return 1 - ((x_hat - x) ** 2).sum(dim=(0, -1)) / ((x - x.mean()) ** 2).sum(dim=(0, -1))


def l0_counts_every_latent(f: Tensor) -> Tensor:
    return torch.full(f.shape[1:-1], float(f.shape[-1]), dtype=torch.float64)


def dead_fraction_below_two_fires(fire_counts: Tensor) -> Tensor:
    return (fire_counts <= 1).to(torch.float64).mean(dim=-1)


# --- dead latents ----------------------------------------------------------------------------------
def fire_counts_counts_non_zero(f: Tensor) -> Tensor:
    return (f != 0).sum(dim=0)


def dead_by_fire_fraction_strict(fire_counts: Tensor, n_examples: int, threshold: float) -> Tensor:
    return fire_counts.to(torch.float64) / n_examples < threshold


def dead_by_fire_fraction_product_form(fire_counts: Tensor, n_examples: int, threshold: float) -> Tensor:
    return fire_counts.to(torch.float64) <= threshold * n_examples


def steps_since_fired_counts_examples(steps_since: Tensor, f: Tensor) -> Tensor:
    return torch.where((f > 0).any(dim=0), 0, steps_since + f.shape[0])


def steps_since_fired_resets_to_one(steps_since: Tensor, f: Tensor) -> Tensor:
    return torch.where((f > 0).any(dim=0), 1, steps_since + 1)


def dead_by_steps_at_the_limit(steps_since: Tensor, n: int) -> Tensor:
    return steps_since >= n


# --- resampling ------------------------------------------------------------------------------------
def _per_example_loss(x: Tensor, x_hat: Tensor, f: Tensor, l1_coefficient: float, loss: Any) -> Tensor:
    return rt.per_example_loss(x, x_hat, f, l1_coefficient=l1_coefficient, loss=loss)


def probabilities_proportional_to_the_loss(
    x: Tensor, x_hat: Tensor, f: Tensor, *, l1_coefficient: float, loss: Any
) -> Tensor:
    ell = _per_example_loss(x, x_hat, f, l1_coefficient, loss)
    total = ell.sum(dim=0, keepdim=True)
    return torch.where(total > 0, ell / torch.where(total > 0, total, 1), 1.0 / x.shape[0]).to(x.dtype)


def probabilities_zero_loss_gives_zero(
    x: Tensor, x_hat: Tensor, f: Tensor, *, l1_coefficient: float, loss: Any
) -> Tensor:
    p = rt.resampling_probabilities(x, x_hat, f, l1_coefficient=l1_coefficient, loss=loss)
    ell = _per_example_loss(x, x_hat, f, l1_coefficient, loss)
    return torch.where(ell.amax(dim=0, keepdim=True) > 0, p, torch.zeros_like(p))


def probabilities_mean_residual_in_the_total(
    x: Tensor, x_hat: Tensor, f: Tensor, *, l1_coefficient: float, loss: Any
) -> Tensor:
    penalty = l1_coefficient * f.abs().sum(dim=-1) if loss == "total" else 0
    ell = ((x_hat - x) ** 2).mean(dim=-1) + penalty
    m = ell.amax(dim=0, keepdim=True)
    q = torch.where(m > 0, ell / torch.where(m > 0, m, 1), 1.0)
    return (q * q / (q * q).sum(dim=0, keepdim=True)).to(x.dtype)


def probabilities_normalised_over_all_instances(
    x: Tensor, x_hat: Tensor, f: Tensor, *, l1_coefficient: float, loss: Any
) -> Tensor:
    ell = _per_example_loss(x, x_hat, f, l1_coefficient, loss).double()
    total = (ell**2).sum()
    if total == 0:
        return torch.full_like(ell, 1.0 / x.shape[0]).to(x.dtype)
    return (ell**2 / total).to(x.dtype)


def probabilities_ignore_the_penalty(
    x: Tensor, x_hat: Tensor, f: Tensor, *, l1_coefficient: float, loss: Any
) -> Tensor:
    return rt.resampling_probabilities(x, x_hat, f, l1_coefficient=l1_coefficient, loss="reconstruction")


def resample_keeps_the_dead_encoder_bias(param: Any, dead: Tensor, chosen: Tensor, **kw: Any) -> Any:
    out = rt.resample_anthropic(param, dead, chosen, **kw)
    return {**out, "param": {**out["param"], "b_enc": param["b_enc"].clone()}}


# --- initialisation --------------------------------------------------------------------------------
def geometric_median_is_the_mean(x: Tensor, **options: Any) -> Tensor:
    return x.mean(dim=0)


def geometric_median_coordinate_wise(x: Tensor, **options: Any) -> Tensor:
    return x.median(dim=0).values


def geometric_median_three_iterations(x: Tensor, **options: Any) -> Tensor:
    return rt.geometric_median(x, max_iter=3)


def b_dec_mean_over_instances_too(x: Tensor) -> Tensor:
    mean = x.mean(dim=0)
    return mean.mean(dim=0, keepdim=True).expand_as(mean) if x.ndim == 3 else mean


# --- variants --------------------------------------------------------------------------------------
def topk_by_magnitude(z: Tensor, *, k: int) -> Tensor:
    indices = torch.topk(z.abs(), k, dim=-1).indices
    return torch.zeros_like(z).scatter(-1, indices, torch.relu(z.gather(-1, indices)))


def jumprelu_l0_trains_the_encoder(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, theta: Tensor, **kw: Any
) -> dict[str, Tensor]:
    out = dict(rt.jumprelu_loss_gradients(x, W_enc, b_enc, W_dec, b_dec, theta, **kw))
    c: Conventions = kw["conventions"]
    z = rt.pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    K = ((z - theta).abs() < kw["bandwidth"] / 2).to(z.dtype)
    out["b_enc"] = out["b_enc"] + kw["l0_coefficient"] / x.shape[0] / kw["bandwidth"] * K.sum(dim=0)
    return out


def batchtopk_threshold_min_over_zeros(
    threshold: Tensor, f: Tensor, *, n_batches: int, update: str = "mean", beta: float = 0.99
) -> Tensor:
    m = f.amin(dim=(0, -1))
    if update == "ema":
        return beta * threshold + (1 - beta) * m
    return threshold + (m - threshold) / (n_batches + 1)


def _gated_loss_b_dec_attached(
    x: Tensor,
    W_enc: Tensor,
    b_gate: Tensor,
    r_mag: Tensor,
    b_mag: Tensor,
    W_dec: Tensor,
    b_dec: Tensor,
    *,
    l1_coefficient: float,
    conventions: Conventions,
    aux_decoder: str,
) -> Tensor:
    """The auxiliary reconstruction with W_dec detached but b_dec not: a one-word slip."""
    c = conventions
    pi_gate, pi_mag = rt.gated_pre_activations(x, W_enc, b_gate, r_mag, b_mag, b_dec, encode=c.encode)
    x_hat = rt.decode(
        (pi_gate > 0).to(x.dtype) * torch.relu(pi_mag), W_dec, b_dec, decoder=c.decoder, eps=c.eps
    )
    a = torch.relu(pi_gate)
    x_aux = rt.decode(a, W_dec.detach(), b_dec, decoder=c.decoder, eps=c.eps)
    R = rt.reconstruction_loss
    loss: Tensor = (
        R(x, x_hat, reconstruction=c.reconstruction)
        + l1_coefficient * rt.sparsity_loss(a, W_dec, sparsity=c.sparsity)
        + R(x, x_aux, reconstruction=c.reconstruction)
    ).sum()
    return loss


def gated_gradients_b_dec_attached(
    x: Tensor,
    W_enc: Tensor,
    b_gate: Tensor,
    r_mag: Tensor,
    b_mag: Tensor,
    W_dec: Tensor,
    b_dec: Tensor,
    **kw: Any,
) -> dict[str, Tensor]:
    params = {
        "W_enc": W_enc,
        "b_gate": b_gate,
        "r_mag": r_mag,
        "b_mag": b_mag,
        "W_dec": W_dec,
        "b_dec": b_dec,
    }
    return autograd_gradients(_gated_loss_b_dec_attached, x, params, **kw)


def gated_penalty_on_f(
    x: Tensor,
    W_enc: Tensor,
    b_gate: Tensor,
    r_mag: Tensor,
    b_mag: Tensor,
    W_dec: Tensor,
    b_dec: Tensor,
    *,
    l1_coefficient: float,
    conventions: Conventions,
    aux_decoder: str,
) -> Tensor:
    """The sparsity penalty on the latents f instead of the gate's ReLU(π_gate): a standard-SAE habit."""
    c = conventions
    f, pi_gate = rt.gated_encode(x, W_enc, b_gate, r_mag, b_mag, b_dec, encode=c.encode)
    R = rt.reconstruction_loss
    x_aux = rt.decode(torch.relu(pi_gate), W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    loss: Tensor = (
        R(x, rt.decode(f, W_dec, b_dec, decoder=c.decoder, eps=c.eps), reconstruction=c.reconstruction)
        + l1_coefficient * rt.sparsity_loss(f, W_dec, sparsity=c.sparsity)
        + R(x, x_aux, reconstruction=c.reconstruction)
    ).sum()
    return loss


def auxk_loss_without_scale(*arrays: Tensor, **options: Any) -> Tensor:
    return rt.auxk_loss(*arrays, **{**options, "scale": "unscaled"})


def auxk_loss_decodes_with_b_dec(*arrays: Tensor, **options: Any) -> Tensor:
    return rt.auxk_loss(*arrays, **{**options, "aux_decode": "with_b_dec"})


def auxk_gradients_residual_attached(*arrays: Tensor, **options: Any) -> dict[str, Tensor]:
    return rt.auxk_loss_gradients(*arrays, **{**options, "residual": "attached"})


_CANONICAL_ONLY = "the bug shows only under {}, and the self-test's adapter fixes that option at {}"
_NAMED = (
    "to an adapter with fixed conventions, ignoring `{0}` is having the named convention {0}={1}, "
    "which the suite detects and reports rather than fails (CONF-3); the checker passes `{0}`"
)
_F64 = ("float64",)
_ALL_BUT_F16 = ("float64", "float32", "bfloat16")

MUTANTS: dict[str, Mutant] = {
    m.name: m
    for m in (
        # --- forward ---------------------------------------------------------------------------
        Mutant(
            "encode_ignores_b_enc",
            "encode",
            "ENC-2",
            "b_enc left out of the pre-activation",
            encode_ignores_b_enc,
        ),
        Mutant(
            "encode_adds_b_dec", "encode", "ENC-2", "b_dec added instead of subtracted", encode_adds_b_dec
        ),
        Mutant("encode_without_relu", "encode", "ENC-1", "no ReLU: negative latents", encode_without_relu),
        Mutant(
            "encode_always_untied",
            "encode",
            "ENC-2",
            "ignores `encode` and always encodes untied",
            encode_always_untied,
        ),
        Mutant("decode_without_b_dec", "decode", "DEC-1", "b_dec not added back", decode_without_b_dec),
        Mutant(
            "decoder_directions_normalise_columns",
            "decoder_directions",
            "DEC-3",
            "normalises W_dec over the wrong axis (columns)",
            decoder_directions_normalise_columns,
        ),
        Mutant(
            "decoder_directions_divide_by_squared_norm",
            "decoder_directions",
            "DEC-3",
            "`normalised` divides each row by ‖w‖² + eps instead of ‖w‖ + eps",
            decoder_directions_divide_by_squared_norm,
            unseen_by_selftest=_CANONICAL_ONLY.format("decoder=normalised", "constrained"),
        ),
        # --- losses ----------------------------------------------------------------------------
        Mutant(
            "reconstruction_sums_over_batch",
            "reconstruction_loss",
            "LOSS-1",
            "sums over the batch instead of averaging",
            reconstruction_sums_over_batch,
        ),
        Mutant(
            "reconstruction_without_square",
            "reconstruction_loss",
            "LOSS-1",
            "|r| instead of r²",
            reconstruction_without_square,
        ),
        Mutant(
            "reconstruction_mean_without_d_in",
            "reconstruction_loss",
            "LOSS-2",
            "`mean` averages over the batch only, not over d_in",
            reconstruction_mean_without_d_in,
            unseen_by_selftest=_CANONICAL_ONLY.format("reconstruction=mean", "sum"),
        ),
        Mutant(
            "reconstruction_fvu_uncentred",
            "reconstruction_loss",
            "LOSS-3",
            "`fvu` divides by Σx² instead of the centred variance",
            reconstruction_fvu_uncentred,
            unseen_by_selftest=_CANONICAL_ONLY.format("reconstruction=fvu", "sum"),
        ),
        Mutant(
            "sparsity_averages_over_latents",
            "sparsity_loss",
            "LOSS-4",
            "averages |f| over d_sae instead of summing",
            sparsity_averages_over_latents,
        ),
        Mutant(
            "sparsity_ignores_decoder_norm",
            "sparsity_loss",
            "LOSS-5",
            "`l1_decoder_norm` computed as plain l1 (the decoder norm ignored)",
            sparsity_ignores_decoder_norm,
            unseen_by_selftest=_CANONICAL_ONLY.format("sparsity=l1_decoder_norm", "l1"),
        ),
        Mutant(
            "total_loss_averages_instances",
            "total_loss",
            "LOSS-6",
            "averages the instances' losses instead of summing them",
            total_loss_averages_instances,
        ),
        Mutant(
            "gradients_without_sparsity_term",
            "loss_gradients",
            "GRAD-1",
            "the L1 term's gradient is dropped",
            gradients_without_sparsity_term,
        ),
        Mutant(
            "gradients_with_parallel_component_removed",
            "loss_gradients",
            "GRAD-1",
            "∂L/∂W_dec returned with its parallel component already removed (PAR-4's job)",
            gradients_with_parallel_component_removed,
        ),
        # --- constraints and metrics -----------------------------------------------------------
        Mutant(
            "remove_parallel_assumes_unit_rows",
            "remove_parallel_component",
            "PAR-2",
            "projects without dividing by ‖w‖²",
            remove_parallel_assumes_unit_rows,
        ),
        Mutant(
            "renormalise_columns",
            "renormalise_rows",
            "CON-1",
            "unit columns instead of rows",
            renormalise_columns,
        ),
        Mutant(
            "renormalise_zero_rows_to_nan",
            "renormalise_rows",
            "CON-2",
            "divides by the norm with no guard: a zero row becomes NaN",
            renormalise_zero_rows_to_nan,
        ),
        Mutant(
            "l0_per_latent_mean",
            "l0",
            "MET-1",
            "averages over latents instead of counting",
            l0_per_latent_mean,
        ),
        Mutant(
            "l0_counts_every_latent",
            "l0",
            "MET-1",
            "counts every latent, zeros included",
            l0_counts_every_latent,
        ),
        Mutant(
            "dead_fraction_below_two_fires",
            "dead_fraction",
            "MET-2",
            "counts a latent that fired once as dead",
            dead_fraction_below_two_fires,
            dtypes=_F64,
        ),
        Mutant(
            "explained_variance_uncentred",
            "explained_variance",
            "MET-3",
            "total variance not centred on the mean",
            explained_variance_uncentred,
        ),
        Mutant(
            "explained_variance_global_mean",
            "explained_variance",
            "MET-3",
            "centred on one mean over all dimensions and instances instead of each dimension's",
            explained_variance_global_mean,
        ),
        # --- dead latents ----------------------------------------------------------------------
        Mutant(
            "fire_counts_counts_zeros",
            "fire_counts",
            "DEAD-1",
            "counts f >= 0 as firing",
            fire_counts_counts_zeros,
        ),
        Mutant(
            "fire_counts_counts_non_zero",
            "fire_counts",
            "DEAD-1",
            "counts f != 0 as firing (a negative value fires)",
            fire_counts_counts_non_zero,
        ),
        Mutant(
            "dead_by_fire_fraction_strict",
            "dead_by_fire_fraction",
            "DEAD-2",
            "fraction < threshold instead of <=",
            dead_by_fire_fraction_strict,
            dtypes=_F64,
        ),
        Mutant(
            "dead_by_fire_fraction_product_form",
            "dead_by_fire_fraction",
            "DEAD-2",
            "count <= threshold · n, which rounds, instead of the float64 quotient",
            dead_by_fire_fraction_product_form,
            dtypes=_F64,
        ),
        Mutant(
            "steps_since_fired_counts_examples",
            "update_steps_since_fired",
            "DEAD-3",
            "adds the batch's examples instead of one step",
            steps_since_fired_counts_examples,
        ),
        Mutant(
            "steps_since_fired_resets_to_one",
            "update_steps_since_fired",
            "DEAD-3",
            "a latent that fired gets 1 instead of 0",
            steps_since_fired_resets_to_one,
        ),
        Mutant(
            "dead_by_steps_at_the_limit",
            "dead_by_steps",
            "DEAD-4",
            "steps >= n instead of > n",
            dead_by_steps_at_the_limit,
            dtypes=_F64,
        ),
        # --- optimizer, training, resampling, initialisation -----------------------------------
        Mutant(
            "adam_without_bias_correction",
            "adam_step",
            "OPT-1",
            "no bias correction",
            adam_without_bias_correction,
        ),
        Mutant(
            "adam_reset_first_moment_only",
            "adam_reset_latents",
            "OPT-4",
            "resets exp_avg but not exp_avg_sq",
            adam_reset_first_moment_only,
        ),
        Mutant(
            "training_step_constraint_before_step",
            "training_step",
            "STEP-1",
            "renormalises W_dec before the optimizer step instead of after",
            training_step_constraint_before_step,
        ),
        Mutant(
            "probabilities_proportional_to_the_loss",
            "resampling_probabilities",
            "RES-2",
            "p ∝ ℓ instead of ℓ²",
            probabilities_proportional_to_the_loss,
            max_examples=200,
        ),
        Mutant(
            "probabilities_zero_loss_gives_zero",
            "resampling_probabilities",
            "RES-3",
            "an instance whose every loss is 0 gets p = 0 instead of uniform",
            probabilities_zero_loss_gives_zero,
            max_examples=200,
        ),
        Mutant(
            "probabilities_mean_residual_in_the_total",
            "resampling_probabilities",
            "RES-1",
            "the residual averaged over d_in instead of summed",
            probabilities_mean_residual_in_the_total,
            max_examples=200,
        ),
        Mutant(
            "probabilities_normalised_over_all_instances",
            "resampling_probabilities",
            "RES-2",
            "normalised over every instance at once instead of per instance",
            probabilities_normalised_over_all_instances,
            max_examples=200,
        ),
        Mutant(
            "probabilities_ignore_the_penalty",
            "resampling_probabilities",
            "RES-1",
            "`total` computed as `reconstruction` (the L1 penalty ignored)",
            probabilities_ignore_the_penalty,
            max_examples=200,
        ),
        Mutant(
            "resample_keeps_the_dead_encoder_bias",
            "resample_anthropic",
            "RES-10",
            "a resampled latent keeps its b_enc instead of 0",
            resample_keeps_the_dead_encoder_bias,
            dtypes=_F64,
            max_examples=50,
            output="param.b_enc",
        ),
        Mutant(
            "geometric_median_is_the_mean",
            "geometric_median",
            "INIT-2",
            "the mean instead of the geometric median",
            geometric_median_is_the_mean,
            dtypes=("float32",),
        ),
        Mutant(
            "geometric_median_coordinate_wise",
            "geometric_median",
            "INIT-2",
            "the coordinate-wise median instead of the geometric median",
            geometric_median_coordinate_wise,
            dtypes=("float32",),
        ),
        Mutant(
            "geometric_median_three_iterations",
            "geometric_median",
            "INIT-6",
            "stops after three Weiszfeld steps, unconverged",
            geometric_median_three_iterations,
            dtypes=("float32",),
        ),
        Mutant(
            "b_dec_mean_over_instances_too",
            "b_dec_mean",
            "INIT-1",
            "averages over the instances as well as the batch",
            b_dec_mean_over_instances_too,
            dtypes=("float32",),
        ),
        # --- variants --------------------------------------------------------------------------
        Mutant(
            "topk_keeps_negatives",
            "topk",
            "TOPK-1",
            "no ReLU after the top-k selection",
            topk_keeps_negatives,
            dtypes=_ALL_BUT_F16,
            output="f",
        ),
        Mutant(
            "topk_by_magnitude",
            "topk",
            "TOPK-1",
            "selects the k largest |z| instead of the k largest z",
            topk_by_magnitude,
            dtypes=_ALL_BUT_F16,
            output="f",
        ),
        Mutant(
            "decode_sparse_without_b_dec",
            "decode_sparse",
            "TOPK-4",
            "the sparse decode forgets b_dec",
            decode_sparse_without_b_dec,
        ),
        Mutant("jumprelu_non_strict", "jumprelu", "JUMP-1", "z >= θ instead of z > θ", jumprelu_non_strict),
        Mutant(
            "jumprelu_threshold_gradient_without_theta",
            "jumprelu_loss_gradients",
            "JUMP-3",
            "the reconstruction's pseudo-gradient of θ without its θ factor (−g·K/ε instead of −θ·g·K/ε)",
            jumprelu_threshold_gradient_without_theta,
        ),
        Mutant(
            "jumprelu_l0_trains_the_encoder",
            "jumprelu_loss_gradients",
            "JUMP-4",
            "the L0 step passes its pseudo-derivative +(1/ε)K to z as well",
            jumprelu_l0_trains_the_encoder,
            dtypes=_F64,
            output="b_enc",
        ),
        Mutant(
            "batchtopk_per_example",
            "batchtopk",
            "BTOPK-1",
            "k per example instead of k·B per batch",
            batchtopk_per_example,
            dtypes=_ALL_BUT_F16,
        ),
        Mutant(
            "batchtopk_threshold_min_over_zeros",
            "batchtopk_update_threshold",
            "BTOPK-4",
            "the batch minimum over all latents, zeros included, instead of the positive ones",
            batchtopk_threshold_min_over_zeros,
            dtypes=_F64,
        ),
        Mutant(
            "gated_magnitude_uses_gate_bias",
            "gated_encode",
            "GATE-1",
            "the magnitude path adds b_gate instead of b_mag",
            gated_magnitude_uses_gate_bias,
        ),
        Mutant(
            "gated_penalty_on_f",
            "gated_total_loss",
            "GATE-3",
            "the sparsity penalty on f instead of ReLU(π_gate)",
            gated_penalty_on_f,
            dtypes=("float32",),
            output="loss",
        ),
        Mutant(
            "gated_gradients_b_dec_attached",
            "gated_loss_gradients",
            "GATE-4",
            "the auxiliary decode detaches W_dec but not b_dec",
            gated_gradients_b_dec_attached,
            dtypes=("float32",),
            output="b_dec",
        ),
        Mutant(
            "auxk_selects_among_all_latents",
            "auxk_latents",
            "AUXK-2",
            "the auxiliary top-k ignores the dead mask",
            auxk_selects_among_all_latents,
        ),
        Mutant(
            "auxk_loss_without_scale",
            "auxk_loss",
            "AUXK-5",
            "ignores `scale` (always unscaled)",
            auxk_loss_without_scale,
            dtypes=("float32",),
            output="loss",
            unseen_by_selftest=_CANONICAL_ONLY.format("scale=dead_fraction", "unscaled"),
        ),
        Mutant(
            "auxk_loss_decodes_with_b_dec",
            "auxk_loss",
            "AUXK-4",
            "ignores `aux_decode` (always decodes with b_dec)",
            auxk_loss_decodes_with_b_dec,
            dtypes=("float32",),
            output="loss",
            unseen_by_selftest=_NAMED.format("aux_decode", "with_b_dec"),
        ),
        Mutant(
            "auxk_gradients_residual_attached",
            "auxk_loss_gradients",
            "AUXK-8",
            "ignores `residual` (the residual left attached)",
            auxk_gradients_residual_attached,
            dtypes=("float32",),
            output="x_hat",
            unseen_by_selftest=_NAMED.format("residual", "attached"),
        ),
    )
}

SELFTEST: tuple[Mutant, ...] = tuple(m for m in MUTANTS.values() if not m.unseen_by_selftest)
"""The mutants the self-test runs (CONF-8): those its fixed canonical conventions can expose."""


def correct() -> CorrectRefsae:
    return CorrectRefsae()


def __getattr__(name: str) -> Any:
    """`refsae.conform.mutants:mutant_NAME` loads mutant NAME as a target."""
    if name.startswith("mutant_") and name[len("mutant_") :] in MUTANTS:
        return MUTANTS[name[len("mutant_") :]].adapter
    raise AttributeError(name)
