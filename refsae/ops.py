"""The operation table: one row per operation (OPS-1).

Adding an operation: an oracle function (refsae/oracle/), a torch function (refsae/torch/), a case
strategy (`Callable[[dtype], SearchStrategy[Case]]`), a bounds function (refsae/bounds*.py; None per
output for exact results), a spec section with numbered clauses, and one `Operation(...)` row below.

Each `Operation` names the oracle function (the definition), the refsae.torch function, the
input strategy, the dtypes it is checked in, the error bound that the tolerance rule turns into
an allowed error, and the spec clauses it checks. The property tests, the `refsae check` job and
the clause index all read this table; adding an operation is adding a row.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from refsae import (
    bounds,
    bounds_auxk,
    bounds_batchtopk,
    bounds_dead,
    bounds_gated,
    bounds_gradients,
    bounds_init,
    bounds_jumprelu,
    bounds_topk,
    bounds_training,
    cases,
    cases_auxk,
    cases_batchtopk,
    cases_dead,
    cases_gated,
    cases_init,
    cases_jumprelu,
    cases_topk,
    cases_training,
    oracle,
)
from refsae import torch as rt
from refsae.cases import Case
from refsae.conventions import AXES, CORE_AXES, OPTION_KEYS, Conventions
from refsae.oracle import auxk as oracle_auxk
from refsae.oracle import batchtopk_activation as oracle_batchtopk
from refsae.oracle import gated_activation as oracle_gated
from refsae.oracle import jumprelu_activation as oracle_jumprelu
from refsae.oracle import optimizer as oracle_optimizer
from refsae.oracle import topk_activation as oracle_topk
from refsae.oracle.optimizer import PARAMETERS
from refsae.tolerances import DTYPES, Bound, leaf
from refsae.torch import auxk as torch_auxk
from refsae.torch import batchtopk_activation as torch_batchtopk
from refsae.torch import fused as torch_fused
from refsae.torch import fused_topk as torch_fused_topk
from refsae.torch import gated_activation as torch_gated
from refsae.torch import inplace as torch_inplace
from refsae.torch import jumprelu_activation as torch_jumprelu
from refsae.torch import optimizer as torch_optimizer
from refsae.torch import topk_activation as torch_topk

ADAM_DTYPES: tuple[str, ...] = ("float64", "float32", "bfloat16")
"""Adam is not run in float16 (OPT-7): eps = 1e-8 rounds to 0 there and g² underflows below 2^-24,
so torch.optim.Adam divides a non-zero m by 0; mixed precision keeps float32 optimizer state."""


def as_outputs(result: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Name an operation's result: one array, a tuple in `names` order, or a mapping / `Gradients`;
    a mapping of mappings is flattened to dotted names (`param.W_enc`)."""
    if isinstance(result, oracle.Gradients):
        return result.as_dict()
    if hasattr(result, "as_dict"):
        result = result.as_dict()
    if isinstance(result, Mapping):
        flat: dict[str, Any] = {}
        for key, value in result.items():
            if isinstance(value, Mapping):
                flat.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        return flat
    if isinstance(result, tuple):
        return dict(zip(names, result, strict=True))
    return {names[0]: result}


def _keyword_only(fn: Callable[..., Any]) -> frozenset[str]:
    """The keyword-only parameters of `fn` (options; arrays are positional)."""
    params = inspect.signature(fn).parameters.values()
    return frozenset(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


BoundsFn = Callable[[Case, dict[str, np.ndarray]], dict[str, Bound | None]]
"""(case, oracle outputs) -> a `Bound` per output, or None where the result must be exact."""


@dataclass(frozen=True)
class Operation:
    """One row of the table."""

    name: str
    summary: str
    clauses: tuple[str, ...]
    arrays: tuple[str, ...]
    outputs: tuple[str, ...]
    oracle: Callable[..., Any]
    torch: Callable[..., Any]
    cases: Callable[[str], st.SearchStrategy[Case]]
    bounds: BoundsFn
    dtypes: tuple[str, ...] = DTYPES
    compare_via: Callable[[Case, dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    """Optional: compare through a float64 function of the outputs instead of the outputs themselves
    (e.g. the objective at a returned minimiser, where any minimiser is valid). Applied to both sides;
    `bounds` then describes the projected outputs."""
    edge_clauses: tuple[tuple[str, Callable[[Case], bool]], ...] = ()
    """Clauses about an edge case (a zero decoder row, an instance with no dead latent), each with the
    predicate telling whether a case exercises it: a failure confined to such cases is the edge
    clause's alone, and the row's other clauses are judged on the other cases (CONF-10)."""
    fast: Callable[..., Any] | None = None
    """refsae.torch's fast path for the row, where it has one (a hand-written backward in reused
    buffers, an in-place constraint): checked against the oracle on the same cases and bounds as
    `torch` (PERF-1)."""

    def call(
        self, fn: Callable[..., Any], arrays: Mapping[str, Any], options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Call `fn` the canonical way: arrays positionally in `self.arrays` order, options by keyword.
        Dotted names group: `param.W_enc`, `param.b_enc` … become one positional mapping
        `{W_enc: …, b_enc: …}`, in the place of the group's first member."""
        positional: list[Any] = []
        groups: dict[str, dict[str, Any]] = {}
        for k in self.arrays:
            if "." not in k:
                positional.append(arrays[k])
                continue
            group, name = k.split(".", 1)
            if group not in groups:  # the group's place is that of its first member
                groups[group] = {}
                positional.append(groups[group])
            groups[group][name] = arrays[k]
        return as_outputs(fn(*positional, **options), self.outputs)

    @property
    def convention_axes(self) -> tuple[str, ...]:
        """The convention axes the result depends on, read off the oracle's keyword parameters: a
        `conventions` bundle covers the four core axes, `encode=`, `aux_decoder=` … one each (CONF-3)."""
        params = _keyword_only(self.oracle)
        bundle = CORE_AXES if "conventions" in params else {}
        return tuple(axis for axis in AXES if axis in params or axis in bundle)

    def convention_options(self) -> frozenset[str]:
        """The keyword options carrying this row's conventions: its axes, `conventions`, and `eps`
        where it is the normalised decoder's (Adam's `eps` is a hyperparameter, not a convention)."""
        params = _keyword_only(self.oracle)
        keys = {k for k in params if k in OPTION_KEYS}
        if "decoder" not in params:
            keys.discard("eps")
        return frozenset(keys)

    def reference(self, case: Case) -> dict[str, np.ndarray]:
        """The oracle's outputs on a case."""
        return {k: np.asarray(v) for k, v in self.call(self.oracle, case.arrays, case.options).items()}


def _c(case: Case) -> Conventions:
    c: Conventions = case.options["conventions"]
    return c


def _sae(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, W_enc, b_enc, W_dec, b_dec of a full-SAE case, by name."""
    a = case.arrays
    return a["x"], a["W_enc"], a["b_enc"], a["W_dec"], a["b_dec"]


def _group(case: Case, group: str) -> dict[str, np.ndarray]:
    """The arrays `group.NAME` of a case, keyed NAME."""
    return {k.split(".", 1)[1]: v for k, v in case.arrays.items() if k.startswith(f"{group}.")}


def _variant_loss_bound(case: Case, f: np.ndarray) -> dict[str, Bound | None]:
    """The total-loss bound of an activation variant whose (oracle) latents are `f`: LOSS-6's bound
    around the x_hat of those latents (ReLU's magnitudes bound the variant's, bounds_topk.py)."""
    c = _c(case)
    x_hat = oracle.decode(f, case.arrays["W_dec"], case.arrays["b_dec"], decoder=c.decoder, eps=c.eps)
    return {"loss": bounds.total_loss(*_sae(case), x_hat, case.options["l1_coefficient"], c)}


def _z(case: Case) -> np.ndarray:
    """The oracle's pre-activations of a full-SAE case."""
    x, W_enc, b_enc, _, b_dec = _sae(case)
    return np.asarray(oracle.pre_activations(x, W_enc, b_enc, b_dec, encode=_c(case).encode))


def _zero_row(case: Case) -> bool:
    """The case's W_dec has a zero row (CON-2, PAR-3, DEC-4)."""
    return bool(np.any(np.all(case.arrays["W_dec"] == 0, axis=-1)))


def _no_dead_latent(case: Case) -> bool:
    """Some instance of the case has no dead latent (AUXK-6)."""
    return bool(np.any(np.all(case.arrays["dead"] == 0, axis=-1)))


def _exact(*names: str) -> BoundsFn:
    return lambda case, out: dict.fromkeys(names)


TABLE: tuple[Operation, ...] = (
    Operation(
        "encode",
        "f = ReLU((x − b_dec) W_enc + b_enc), tied or untied",
        ("ENC-1", "ENC-2", "ENC-3", "TOL-1"),
        ("x", "W_enc", "b_enc", "b_dec"),
        ("f",),
        oracle.encode,
        rt.encode,
        cases.encode_cases,
        lambda c, out: {
            "f": bounds.pre_activations(
                c.arrays["x"], c.arrays["W_enc"], c.arrays["b_enc"], c.arrays["b_dec"], c.options["encode"]
            )
        },
    ),
    Operation(
        "decoder_directions",
        "Ŵ = W_dec or W_dec_j / (‖W_dec_j‖ + eps)",
        ("DEC-2", "DEC-3", "DEC-4"),
        ("W_dec",),
        ("W_hat",),
        oracle.decoder_directions,
        rt.decoder_directions,
        cases.decoder_cases,
        lambda c, out: {
            "W_hat": bounds.decoder_directions(c.arrays["W_dec"], c.options["decoder"], c.options["eps"])
        },
    ),
    Operation(
        "decode",
        "x_hat = f Ŵ + b_dec",
        ("DEC-1", "DEC-2", "DEC-3"),
        ("f", "W_dec", "b_dec"),
        ("x_hat",),
        oracle.decode,
        rt.decode,
        cases.decode_cases,
        lambda c, out: {
            "x_hat": bounds.decode(
                leaf(c.arrays["f"]),
                c.arrays["W_dec"],
                c.arrays["b_dec"],
                c.options["decoder"],
                c.options["eps"],
            )
        },
    ),
    Operation(
        "forward",
        "(f, x_hat) = decode(encode(x))",
        ("FWD-1",),
        ("x", "W_enc", "b_enc", "W_dec", "b_dec"),
        ("f", "x_hat"),
        oracle.forward,
        rt.forward,
        cases.forward_cases,
        lambda c, out: dict(
            zip(
                ("f", "x_hat"),
                bounds.forward(
                    *_sae(c),
                    Conventions(
                        encode=c.options["encode"], decoder=c.options["decoder"], eps=c.options["eps"]
                    ),
                ),
                strict=True,
            )
        ),
    ),
    Operation(
        "reconstruction_loss",
        "sum / mean / fvu reconstruction loss",
        ("LOSS-1", "LOSS-2", "LOSS-3"),
        ("x", "x_hat"),
        ("loss",),
        oracle.reconstruction_loss,
        rt.reconstruction_loss,
        cases.reconstruction_cases,
        lambda c, out: {
            "loss": bounds.reconstruction_loss(
                c.arrays["x"], leaf(c.arrays["x_hat"]), c.arrays["x_hat"], c.options["reconstruction"]
            )
        },
    ),
    Operation(
        "sparsity_loss",
        "l1 / l1_decoder_norm sparsity penalty",
        ("LOSS-4", "LOSS-5"),
        ("f", "W_dec"),
        ("loss",),
        oracle.sparsity_loss,
        rt.sparsity_loss,
        cases.sparsity_cases,
        lambda c, out: {
            "loss": bounds.sparsity_loss(leaf(c.arrays["f"]), c.arrays["W_dec"], c.options["sparsity"])
        },
    ),
    Operation(
        "total_loss",
        "Σ_inst reconstruction + λ · sparsity, every convention",
        ("LOSS-6",),
        ("x", "W_enc", "b_enc", "W_dec", "b_dec"),
        ("loss",),
        oracle.total_loss,
        rt.total_loss,
        cases.loss_cases,
        lambda c, out: {
            "loss": bounds.total_loss(
                *_sae(c),
                oracle.forward(*_sae(c), encode=_c(c).encode, decoder=_c(c).decoder, eps=_c(c).eps)[1],
                c.options["l1_coefficient"],
                _c(c),
            )
        },
    ),
    Operation(
        "loss_gradients",
        "∂L/∂(W_enc, b_enc, W_dec, b_dec), every convention",
        ("GRAD-1", "GRAD-2", "GRAD-3", "GRAD-4", "GRAD-5", "GRAD-6", "TOL-6"),
        ("x", "W_enc", "b_enc", "W_dec", "b_dec"),
        ("W_enc", "b_enc", "W_dec", "b_dec"),
        oracle.loss_gradients,
        rt.loss_gradients,
        lambda dtype: cases.loss_cases(dtype, kink_margin=True, backward=True),
        lambda c, out: dict(bounds_gradients.loss_gradients(*_sae(c), c.options["l1_coefficient"], _c(c))),
        fast=torch_fused.fused_loss_gradients,
    ),
    Operation(
        "renormalise_rows",
        "unit-norm constraint: W_dec_j / ‖W_dec_j‖, zero rows stay zero",
        ("CON-1", "CON-2"),
        ("W_dec",),
        ("W_dec",),
        oracle.renormalise_rows,
        rt.renormalise_rows,
        lambda dtype: cases.row_cases(dtype, with_grad=False),
        lambda c, out: {"W_dec": bounds_gradients.renormalise_rows(c.arrays["W_dec"])},
        edge_clauses=(("CON-2", _zero_row),),
        fast=torch_inplace.renormalised,
    ),
    Operation(
        "remove_parallel_component",
        "g_j − (g_j·w_j / ‖w_j‖²) w_j",
        ("PAR-1", "PAR-2", "PAR-3"),
        ("W_dec", "grad_W_dec"),
        ("grad_W_dec",),
        oracle.remove_parallel_component,
        rt.remove_parallel_component,
        lambda dtype: cases.row_cases(dtype, with_grad=True),
        lambda c, out: {
            "grad_W_dec": bounds_gradients.remove_parallel_component(
                c.arrays["W_dec"], c.arrays["grad_W_dec"]
            )
        },
        edge_clauses=(("PAR-3", _zero_row),),
        fast=torch_inplace.parallel_removed,
    ),
    Operation(
        "l0",
        "mean number of non-zero latents",
        ("MET-1",),
        ("f",),
        ("l0",),
        oracle.l0,
        rt.l0,
        cases.latent_cases,
        _exact("l0"),
    ),
    Operation(
        "dead_fraction",
        "fraction of latents that never fired",
        ("MET-2",),
        ("fire_counts",),
        ("dead_fraction",),
        oracle.dead_fraction,
        rt.dead_fraction,
        cases.fire_count_cases,
        _exact("dead_fraction"),
        ("float64",),
    ),
    Operation(
        "explained_variance",
        "1 − FVU with per-dimension centring",
        ("MET-3",),
        ("x", "x_hat"),
        ("explained_variance",),
        oracle.explained_variance,
        rt.explained_variance,
        cases.explained_variance_cases,
        lambda c, out: {
            "explained_variance": (lambda b: b.then(1 + b.magnitude, k_store=1))(
                bounds.reconstruction_loss(c.arrays["x"], leaf(c.arrays["x_hat"]), c.arrays["x_hat"], "fvu")
            )
        },
    ),
    # --- training dynamics (optimizer.md, resampling.md, training-step.md) ---
    Operation(
        "adam_step",
        "one Adam step with PyTorch's semantics (torch.optim.Adam itself on the torch side)",
        ("OPT-1", "OPT-2", "OPT-3"),
        tuple(f"{g}.{k}" for g in ("param", "grad", "exp_avg", "exp_avg_sq") for k in PARAMETERS),
        tuple(f"{g}.{k}" for g in ("param", "exp_avg", "exp_avg_sq") for k in PARAMETERS),
        oracle_optimizer.adam_step,
        torch_optimizer.adam_step,
        cases_training.adam_cases,
        lambda c, out: dict(
            bounds_training.adam_exact_inputs(
                *(_group(c, g) for g in ("param", "grad", "exp_avg", "exp_avg_sq")), **c.options
            )
        ),
        ADAM_DTYPES,
    ),
    Operation(
        "adam_reset_latents",
        "zero both Adam moments of the chosen latents' slices, nothing else",
        ("OPT-4", "OPT-5"),
        (*(f"{g}.{k}" for g in ("exp_avg", "exp_avg_sq") for k in PARAMETERS), "latents"),
        tuple(f"{g}.{k}" for g in ("exp_avg", "exp_avg_sq") for k in PARAMETERS),
        oracle_optimizer.adam_reset_latents,
        torch_optimizer.adam_reset_latents,
        cases_training.reset_cases,
        lambda c, out: dict.fromkeys(out),
    ),
    Operation(
        "resample_anthropic",
        "Anthropic's resampling update given the chosen inputs (plain or centred)",
        ("RES-10", "RES-11", "RES-12", "RES-13", "RES-14"),
        (*(f"param.{k}" for k in PARAMETERS), "dead", "chosen"),
        (*(f"param.{k}" for k in PARAMETERS), "resampled"),
        oracle.resample_anthropic,
        rt.resample_anthropic,
        lambda dtype: cases_training.resample_cases(dtype, simple=False),
        lambda c, out: bounds_training.resample(
            _group(c, "param"),
            c.arrays["dead"],
            c.arrays["chosen"],
            centred=c.options["centred"],
            encoder_scale=c.options["encoder_scale"],
            simple=False,
        ),
    ),
    Operation(
        "resample_simple",
        "the simple resampling update given explicit directions",
        ("RES-13", "RES-15"),
        (*(f"param.{k}" for k in PARAMETERS), "dead", "directions"),
        (*(f"param.{k}" for k in PARAMETERS), "resampled"),
        oracle.resample_simple,
        rt.resample_simple,
        lambda dtype: cases_training.resample_cases(dtype, simple=True),
        lambda c, out: bounds_training.resample(
            _group(c, "param"),
            c.arrays["dead"],
            c.arrays["directions"],
            centred=False,
            encoder_scale=c.options["encoder_scale"],
            simple=True,
        ),
    ),
    Operation(
        "training_step",
        "forward, loss, backward, parallel removal, Adam, constraint: the specified order",
        ("STEP-1", "STEP-2", "STEP-3", "STEP-5"),
        ("x", *(f"{g}.{k}" for g in ("param", "exp_avg", "exp_avg_sq") for k in PARAMETERS)),
        (*(f"{g}.{k}" for g in ("param", "exp_avg", "exp_avg_sq") for k in PARAMETERS), "loss"),
        oracle.training_step,
        functools.partial(rt.training_step, backward="autograd"),
        cases_training.training_cases,
        lambda c, out: dict(
            bounds_training.training_step(
                c.arrays["x"], *(_group(c, g) for g in ("param", "exp_avg", "exp_avg_sq")), **c.options
            )
        ),
        ADAM_DTYPES,
        fast=functools.partial(rt.training_step, backward="fused"),
    ),
    # --- dead latents (dead-latents.md) and resampling probabilities (resampling.md) ---
    # Integer-input rows run in float64 only: the case dtype converts float arrays, and they have none.
    Operation(
        "fire_counts",
        "#{b : f_bj > 0} per latent: firing is strictly positive",
        ("DEAD-1", "DEAD-5"),
        ("f",),
        ("fire_counts",),
        oracle.fire_counts,
        rt.fire_counts,
        cases_dead.fire_count_cases,
        _exact("fire_counts"),
    ),
    Operation(
        "dead_by_fire_fraction",
        "dead where fire_counts / n_examples <= threshold (float64 quotient)",
        ("DEAD-2", "DEAD-5"),
        ("fire_counts",),
        ("dead",),
        oracle.dead_by_fire_fraction,
        rt.dead_by_fire_fraction,
        cases_dead.fraction_cases,
        _exact("dead"),
        ("float64",),
    ),
    Operation(
        "update_steps_since_fired",
        "0 where the latent fired in the batch, steps_since + 1 elsewhere",
        ("DEAD-3", "DEAD-5"),
        ("steps_since", "f"),
        ("steps_since",),
        oracle.update_steps_since_fired,
        rt.update_steps_since_fired,
        cases_dead.steps_update_cases,
        _exact("steps_since"),
    ),
    Operation(
        "dead_by_steps",
        "dead where steps_since > n",
        ("DEAD-4", "DEAD-5"),
        ("steps_since",),
        ("dead",),
        oracle.dead_by_steps,
        rt.dead_by_steps,
        cases_dead.dead_by_steps_cases,
        _exact("dead"),
        ("float64",),
    ),
    Operation(
        "resampling_probabilities",
        "p_b ∝ ℓ_b² over the batch, per instance; uniform where every ℓ_b = 0",
        ("RES-1", "RES-2", "RES-3"),
        ("x", "x_hat", "f"),
        ("probabilities",),
        oracle.resampling_probabilities,
        rt.resampling_probabilities,
        cases_dead.resampling_cases,
        lambda c, out: {
            "probabilities": bounds_dead.resampling_probabilities(
                c.arrays["x"],
                c.arrays["x_hat"],
                c.arrays["f"],
                oracle.per_example_loss(c.arrays["x"], c.arrays["x_hat"], c.arrays["f"], **c.options),
                c.options["loss"],
                c.options["l1_coefficient"],
            )
        },
    ),
    # --- b_dec initialisation (init.md) ---
    Operation(
        "b_dec_mean",
        "b_dec = (1/B) Σ_b x_b, per instance",
        ("INIT-1", "INIT-10", "INIT-12"),
        ("x",),
        ("b_dec",),
        oracle.b_dec_mean,
        rt.b_dec_mean,
        cases_init.init_cases,
        lambda c, out: {"b_dec": bounds_init.b_dec_mean(c.arrays["x"])},
    ),
    Operation(
        "geometric_median",
        "b_dec = argmin Σ_b ‖x_b − b_dec‖, compared through that objective",
        ("INIT-2", "INIT-3", "INIT-4", "INIT-5", "INIT-6", "INIT-9", "INIT-11", "INIT-12"),
        ("x",),
        ("b_dec",),
        oracle.geometric_median,
        rt.geometric_median,
        cases_init.init_cases,
        bounds_init.geometric_median,
        compare_via=bounds_init.objective_projection,
    ),
    # --- TopK (topk.md): ReLU's bounds serve for the loss and gradients (bounds_topk.py says why) ---
    Operation(
        "topk",
        "f = max(z, 0) at the k largest z per example, 0 elsewhere",
        ("TOPK-1", "TOPK-2", "TOPK-3"),
        ("z",),
        ("f",),
        oracle_topk.topk,
        torch_topk.topk,
        cases_topk.topk_cases,
        _exact("f"),
    ),
    Operation(
        "decode_sparse",
        "x_hat = Σ_i values_i Ŵ_{indices_i} + b_dec from the k gathered rows",
        ("TOPK-4",),
        ("values", "indices", "W_dec", "b_dec"),
        ("x_hat",),
        oracle_topk.decode_sparse,
        torch_topk.decode_sparse,
        cases_topk.decode_sparse_cases,
        lambda c, out: {
            "x_hat": bounds_topk.decode_sparse(
                c.arrays["values"],
                c.arrays["indices"],
                c.arrays["W_dec"],
                c.arrays["b_dec"],
                c.options["decoder"],
                c.options["eps"],
            )
        },
    ),
    Operation(
        "topk_total_loss",
        "reconstruction + λ · sparsity of TopK latents, through the sparse decode",
        ("TOPK-6", "TOPK-7"),
        ("x", "W_enc", "b_enc", "W_dec", "b_dec"),
        ("loss",),
        oracle_topk.topk_total_loss,
        torch_topk.topk_total_loss,
        cases_topk.topk_loss_cases,
        lambda c, out: _variant_loss_bound(c, oracle_topk.topk(_z(c), k=c.options["k"])),
    ),
    Operation(
        "topk_loss_gradients",
        "∂L/∂(W_enc, b_enc, W_dec, b_dec) through TopK and the sparse decode",
        ("TOPK-5", "TOPK-7"),
        ("x", "W_enc", "b_enc", "W_dec", "b_dec"),
        ("W_enc", "b_enc", "W_dec", "b_dec"),
        oracle_topk.topk_loss_gradients,
        torch_topk.topk_loss_gradients,
        cases_topk.topk_loss_cases,
        lambda c, out: dict(bounds_gradients.loss_gradients(*_sae(c), c.options["l1_coefficient"], _c(c))),
        fast=torch_fused_topk.topk_fused_loss_gradients,
    ),
    # --- JumpReLU (jumprelu.md) ---
    Operation(
        "jumprelu",
        "f = z · 1[z > θ], strictly",
        ("JUMP-1",),
        ("z", "theta"),
        ("f",),
        oracle_jumprelu.jumprelu,
        torch_jumprelu.jumprelu,
        cases_jumprelu.jumprelu_cases,
        _exact("f"),
    ),
    Operation(
        "jumprelu_total_loss",
        "reconstruction + λ · L0 of JumpReLU latents",
        ("JUMP-2", "JUMP-8"),
        ("x", "W_enc", "b_enc", "W_dec", "b_dec", "theta"),
        ("loss",),
        oracle_jumprelu.jumprelu_total_loss,
        torch_jumprelu.jumprelu_total_loss,
        cases_jumprelu.jumprelu_loss_cases,
        lambda c, out: {
            "loss": bounds_jumprelu.total_loss(
                *_sae(c),
                c.arrays["theta"],
                oracle.decode(
                    oracle_jumprelu.jumprelu(
                        oracle.pre_activations(*_sae(c)[:3], _sae(c)[4], encode=_c(c).encode),
                        c.arrays["theta"],
                    ),
                    _sae(c)[3],
                    _sae(c)[4],
                    decoder=_c(c).decoder,
                    eps=_c(c).eps,
                ),
                c.options["l0_coefficient"],
                _c(c),
            )
        },
    ),
    Operation(
        "jumprelu_loss_gradients",
        "∂L/∂(W_enc, b_enc, W_dec, b_dec) and the threshold's straight-through pseudo-gradient",
        ("JUMP-3", "JUMP-4", "JUMP-6", "JUMP-8"),
        ("x", "W_enc", "b_enc", "W_dec", "b_dec", "theta"),
        ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"),
        oracle_jumprelu.jumprelu_loss_gradients,
        torch_jumprelu.jumprelu_loss_gradients,
        cases_jumprelu.jumprelu_gradient_cases,
        lambda c, out: dict(
            bounds_jumprelu.loss_gradients(
                *_sae(c),
                c.arrays["theta"],
                c.options["l0_coefficient"],
                c.options["bandwidth"],
                _c(c),
                c.options.get("parametrisation", "theta"),
            )
        ),
    ),
    # --- BatchTopK (batchtopk.md) ---
    Operation(
        "batchtopk",
        "f = max(z, 0) at the k·B largest z of the batch, 0 elsewhere",
        ("BTOPK-1", "BTOPK-2"),
        ("z",),
        ("f",),
        oracle_batchtopk.batchtopk,
        torch_batchtopk.batchtopk,
        cases_batchtopk.batchtopk_cases,
        _exact("f"),
    ),
    Operation(
        "batchtopk_update_threshold",
        "θ ← running mean (or EMA) of each batch's smallest positive latent",
        ("BTOPK-4", "BTOPK-5"),
        ("threshold", "f"),
        ("threshold",),
        oracle_batchtopk.batchtopk_update_threshold,
        torch_batchtopk.batchtopk_update_threshold,
        cases_batchtopk.threshold_cases,
        lambda c, out: {
            "threshold": bounds_batchtopk.update_threshold(
                c.arrays["threshold"],
                oracle_batchtopk.batchtopk_min_positive(c.arrays["f"])[0],
                c.options["n_batches"],
                c.options["update"],
                c.options["beta"],
            )
        },
    ),
    Operation(
        "batchtopk_inference",
        "f = z · 1[z > θ] with one θ per instance",
        ("BTOPK-6",),
        ("z", "threshold"),
        ("f",),
        oracle_batchtopk.batchtopk_inference,
        torch_batchtopk.batchtopk_inference,
        cases_batchtopk.inference_cases,
        _exact("f"),
    ),
    Operation(
        "batchtopk_total_loss",
        "reconstruction + λ · sparsity of BatchTopK training latents",
        ("BTOPK-3", "BTOPK-7"),
        ("x", "W_enc", "b_enc", "W_dec", "b_dec"),
        ("loss",),
        oracle_batchtopk.batchtopk_total_loss,
        torch_batchtopk.batchtopk_total_loss,
        cases_batchtopk.batchtopk_loss_cases,
        lambda c, out: _variant_loss_bound(c, oracle_batchtopk.batchtopk(_z(c), k=c.options["k"])),
    ),
    Operation(
        "batchtopk_loss_gradients",
        "∂L/∂(W_enc, b_enc, W_dec, b_dec) through the batch selection",
        ("BTOPK-3", "BTOPK-7"),
        ("x", "W_enc", "b_enc", "W_dec", "b_dec"),
        ("W_enc", "b_enc", "W_dec", "b_dec"),
        oracle_batchtopk.batchtopk_loss_gradients,
        torch_batchtopk.batchtopk_loss_gradients,
        cases_batchtopk.batchtopk_loss_cases,
        lambda c, out: dict(bounds_gradients.loss_gradients(*_sae(c), c.options["l1_coefficient"], _c(c))),
    ),
    # --- Gated SAE (gated.md) ---
    Operation(
        "gated_encode",
        "(f, π_gate): f = 1[π_gate > 0] · ReLU(π_mag), W_enc rescaled by exp(r_mag) on the magnitude path",
        ("GATE-1", "GATE-2", "GATE-8"),
        cases_gated.ENCODE_ARRAYS,
        ("f", "pi_gate"),
        oracle_gated.gated_encode,
        torch_gated.gated_encode,
        cases_gated.gated_encode_cases,
        lambda c, out: bounds_gated.case_encode(c.arrays, c.options["encode"]),
    ),
    Operation(
        "gated_total_loss",
        "reconstruction + λ · sparsity of ReLU(π_gate) + the auxiliary reconstruction (decoder detached)",
        ("GATE-3", "GATE-4", "GATE-8"),
        ("x", *cases_gated.PARAMS),
        ("loss",),
        oracle_gated.gated_total_loss,
        torch_gated.gated_total_loss,
        cases_gated.gated_loss_cases,
        lambda c, out: {
            "loss": bounds_gated.total_loss(
                c.arrays["x"], cases_gated._params(c.arrays), c.options["l1_coefficient"], _c(c)
            )
        },
    ),
    Operation(
        "gated_loss_gradients",
        "∂L/∂(W_enc, b_gate, r_mag, b_mag, W_dec, b_dec); the gate's step passes no gradient",
        ("GATE-4", "GATE-5", "GATE-6", "GATE-8"),
        ("x", *cases_gated.PARAMS),
        cases_gated.PARAMS,
        oracle_gated.gated_loss_gradients,
        torch_gated.gated_loss_gradients,
        cases_gated.gated_loss_cases,
        lambda c, out: dict(
            bounds_gated.loss_gradients(
                c.arrays["x"],
                cases_gated._params(c.arrays),
                c.options["l1_coefficient"],
                _c(c),
                c.options["aux_decoder"],
            )
        ),
    ),
    # --- AuxK (auxk.md): z is an input, so the selection is exact; ties across the k-th excluded ---
    Operation(
        "auxk_latents",
        "v(z) at the min(k_aux, n_dead) largest dead pre-activations per example, 0 elsewhere",
        ("AUXK-1", "AUXK-2", "AUXK-3"),
        ("z", "dead"),
        ("a",),
        oracle_auxk.auxk_latents,
        torch_auxk.auxk_latents,
        cases_auxk.auxk_latent_cases,
        _exact("a"),
    ),
    Operation(
        "auxk_loss",
        "s · Σ (ê − sg(x − x_hat))² / D over the top dead latents, every AuxK convention",
        ("AUXK-4", "AUXK-5", "AUXK-6", "AUXK-7", "AUXK-9"),
        cases_auxk.ARRAYS,
        ("loss",),
        oracle_auxk.auxk_loss,
        torch_auxk.auxk_loss,
        cases_auxk.auxk_loss_cases,
        lambda c, out: bounds_auxk.case_loss(c.arrays, c.options),
        edge_clauses=(("AUXK-6", _no_dead_latent),),
    ),
    Operation(
        "auxk_loss_gradients",
        "∂L_aux/∂(z, W_dec, b_dec, x_hat): exact zeros where detached or not decoded",
        ("AUXK-5", "AUXK-8", "AUXK-9"),
        cases_auxk.ARRAYS,
        ("z", "W_dec", "b_dec", "x_hat"),
        oracle_auxk.auxk_loss_gradients,
        torch_auxk.auxk_loss_gradients,
        cases_auxk.auxk_loss_cases,
        lambda c, out: bounds_auxk.case_loss_gradients(c.arrays, c.options),
    ),
)


BY_NAME: dict[str, Operation] = {op.name: op for op in TABLE}


def get(name: str) -> Operation:
    """The row called `name`; `KeyError` listing the known names otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no operation {name!r}; known: {', '.join(BY_NAME)}") from None
