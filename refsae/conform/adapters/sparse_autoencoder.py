"""Adapter of sparse_autoencoder 1.10.0 (ai-safety-foundation; seeds 000 and 002), target
`sparse_autoencoder`.

The installed 1.10.0 is the `Pipeline` release (`train/pipeline.py`); the Lightning module of seed 002
(`LitSparseAutoencoder`, `SparseAutoencoderLoss`) is not in it. Every row calls the library's own
classes; the adapter only converts layouts and dtypes.

Rows and the library code each one calls:

- `encode`, `forward`: `SparseAutoencoder(SparseAutoencoderConfig(n_input_features, n_learned_features,
  n_components)).forward(x)`, which returns `(learned_activations, decoded_activations)`: `TiedBias`
  (subtracted before `LinearEncoder`), `UnitNormDecoder`, `TiedBias` (added back).
- `decode`: the same model's `post_decoder_bias(decoder(f))`, the second half of `forward`.
- `reconstruction_loss`: `L2ReconstructionLoss().batch_loss(x, ·, x_hat)` (its default
  `reduction=MEAN` over features, batch mean).
- `sparsity_loss`: `LearnedActivationsL1Loss(l1_coefficient=1.0).batch_loss(·, f, ·)`, the
  unscaled penalty.
- `total_loss`, `loss_gradients`: the loss of the library's training loop (`train/pipeline.py`
  `Pipeline.train_autoencoder`): `LossReducer(LearnedActivationsL1Loss(λ), L2ReconstructionLoss())`
  (`train/sweep.py` `setup_loss_function`) reduced by
  `scalar_loss_with_log(x, f, x_hat, component_reduction=LossReductionType.MEAN)`; gradients by
  `.backward()` on it, read from the parameters' `.grad`, with the decoder built with
  `UnitNormDecoder(..., enable_gradient_hook=False)` (the library's switch) so that `W_dec`'s
  gradient is the loss's, not the hook's projection (the hook is checked by
  `remove_parallel_component`). `LearnedActivationsL1Loss` types a float λ as `PositiveFloat` and
  refuses λ = 0 (pydantic `ValidationError`), which LOSS-7 allows; its signature also accepts a
  per-component tensor, so λ = 0 is passed as `torch.zeros(n_components)` (findings.toml).
- `renormalise_rows`: `UnitNormDecoder.constrain_weights_unit_norm()`.
- `remove_parallel_component`: `UnitNormDecoder._weight_backward_hook`, the backward hook the decoder
  registers (`enable_gradient_hook=True`, the default), run by autograd: `(weight * G).sum()
  .backward()` hands it the raw gradient `G = grad_W_dec`; the result is `weight.grad`.
- `l0`: `TrainBatchLearnedActivationsL0().calculate(TrainMetricData(f, f, f))[0]
  .component_wise_values` (a default train metric of `Pipeline`).
- `fire_counts`: `NeuronActivityMetric(approximate_horizons=[2 * batch]).calculate(...)`, another
  default train metric: it adds `(f > 0).sum(0)` to the activity of its horizon (the counter read
  back, `_data[0]._neuron_activity`; a horizon of two batches keeps it from being reset after one).
- `dead_by_fire_fraction`: `ActivationResampler(threshold_is_dead_portion_fires=threshold)
  ._get_dead_neuron_indices()` with its window state set to the case's counts
  (`_collated_neuron_activity`) and `n_examples` (`_n_activations_collated_since_last_resample`);
  the indices become a mask.
- `resampling_probabilities`: the per-example loss `loss_fn.forward(x, f, x_hat)` (what
  `ActivationResampler.compute_loss_and_get_activations` computes) then
  `ActivationResampler.assign_sampling_probabilities(loss)`. `loss="total"`:
  `LossReducer(LearnedActivationsL1Loss(λ), L2ReconstructionLoss(reduction=SUM))`;
  `loss="reconstruction"`: `L2ReconstructionLoss(reduction=SUM)`. (`Pipeline` passes its training
  loss, whose L2 is a mean over features: by RES-1 that is `total` with coefficient `λ·d_in`, the same
  law; the library's own `SUM` reduction gives the row's λ without converting it.)
- `adam_step`: `AdamWithReset(params, lr, betas, eps, weight_decay, named_parameters=...,
  has_components_dim=True).step()` with the given moments and `step` loaded in its state.
- `adam_reset_latents`: `AdamWithReset.reset_neurons_state(parameter, indices, axis, component_idx)`
  for every `(parameter, axis)` of `SparseAutoencoder.reset_optimizer_parameter_details`, per
  component, as `Pipeline.update_parameters` calls it.
- `resample_anthropic`: `ActivationResampler.resample_dead_neurons` and
  `Pipeline.update_parameters` (on a stand-in holding the model and an `AdamWithReset`). The dead mask
  enters as the window's activity (alive latents fired once); the row's draw (`chosen`) is given, so
  the resampler's loss pass (`compute_loss_and_get_activations`) and draw (`sample_input`,
  `torch.multinomial`) are replaced by that draw. The library hard-codes Anthropic's encoder scale
  0.2 (`renormalize_and_scale`) and the uncentred direction, so the row is checked on cases with
  `encoder_scale=0.2, centred=False` only (`hypothesis.assume`).
- `training_step`: `Pipeline.train_autoencoder` itself (on a stand-in holding the model, an
  `AdamWithReset` loaded with the given moments and `step`, the training loss above, no metrics, no
  scheduler) over a `TensorActivationStore` holding the batch, with `train_batch_size = batch`: one
  step of zero_grad, forward, `scalar_loss_with_log(..., component_reduction=MEAN)`, backward (the
  decoder's hook removes the parallel gradient), `optimizer.step()`,
  `post_backwards_hook()` (`constrain_weights_unit_norm`). The `loss` output is the value that step
  backpropagates (recorded by a wrapper around the loss module). The store is built in the case's
  dtype (the library allocates it in the default dtype, float32).

Not provided (`unsupported`): `decoder_directions` (the decoder uses its weight as is; there is no
function returning directions), `dead_fraction` (the library logs dead *counts*;
`NeuronActivityHorizonData._dead_fraction` exists but is never used), `explained_variance`,
`update_steps_since_fired`, `dead_by_steps` (no steps-since-fired counter), `resample_simple`,
`b_dec_mean`, `geometric_median` (the tied bias is initialised from a geometric median passed in,
never computed by the library), and the TopK, JumpReLU, BatchTopK, Gated and AuxK rows (ReLU only).

Layout conversions (nothing else): the library's component axis (`n_components`) is refsae's instance
axis (`x (batch, n_inst, d_in)`), so `instances = True`; a case without one gets a component axis of
size 1 (`n_components=1`, as `Pipeline` always builds the model, `train/sweep.py`) that is removed
from the outputs. `encoder.weight (n_comp, d_sae, d_in)` = `W_enc` transposed; `encoder.bias` =
`b_enc`; `decoder.weight (n_comp, d_in, d_sae)` = `W_dec` transposed (its columns are the dictionary
vectors); `tied_bias` = `b_dec`; Adam moments likewise. Parameters are loaded by assigning `.data`
(which also sets the case's dtype). Unused inputs of a row (e.g. `W_dec` for `encode`) are zeros.

Shims: torch 2.13 moved `torch.serialization.FILE_LIKE` (now `torch.types.FileLike`) and
`torch.optim.optimizer.params_t` (now `ParamsT`); both are aliased before the library is imported.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import types
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, cast

import torch
from torch import Tensor

from refsae.conform.adapter import Adapter

PARAMETERS = ("W_enc", "b_enc", "W_dec", "b_dec")


@functools.cache
def _lib() -> Any:
    """The library, imported after aliasing the two names torch 2.13 moved."""
    optimizer: Any = importlib.import_module("torch.optim.optimizer")
    serialization: Any = importlib.import_module("torch.serialization")
    torch_types: Any = importlib.import_module("torch.types")
    if not hasattr(serialization, "FILE_LIKE"):
        serialization.FILE_LIKE = torch_types.FileLike
    if not hasattr(optimizer, "params_t"):
        optimizer.params_t = optimizer.ParamsT
    import sparse_autoencoder
    import sparse_autoencoder.activation_resampler.activation_resampler
    import sparse_autoencoder.autoencoder.components.unit_norm_decoder
    import sparse_autoencoder.metrics.metrics_container
    import sparse_autoencoder.metrics.train.abstract_train_metric
    import sparse_autoencoder.metrics.train.l0_norm_metric
    import sparse_autoencoder.metrics.train.neuron_activity_metric
    import sparse_autoencoder.train.pipeline

    return sparse_autoencoder


def _comp(t: Tensor, inst: bool, axis: int) -> Tensor:
    """Add a component axis of size 1 at `axis` when the case has no instance axis."""
    return t if inst else t.unsqueeze(axis)


def _uncomp(t: Tensor, inst: bool, axis: int) -> Tensor:
    return t if inst else t.squeeze(axis)


def _decoder(d_sae: int, d_in: int, n_comp: int, *, hook: bool) -> Any:
    mod = _lib().autoencoder.components.unit_norm_decoder
    return mod.UnitNormDecoder(d_sae, d_in, n_comp, enable_gradient_hook=hook)


def _model(W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, *, hook: bool = True) -> Any:
    """A SparseAutoencoder holding the canonical parameters (with a component axis, see above)."""
    sa = _lib()
    inst = W_enc.ndim == 3
    n_comp = W_enc.shape[0] if inst else 1
    d_in, d_sae = W_enc.shape[-2:]
    config = sa.SparseAutoencoderConfig(n_input_features=d_in, n_learned_features=d_sae, n_components=n_comp)
    model = sa.SparseAutoencoder(config)
    if not hook:
        model.decoder = _decoder(d_sae, d_in, n_comp, hook=False)
    with torch.no_grad():
        model.encoder.weight.data = _comp(W_enc, inst, 0).transpose(-1, -2).clone()
        model.encoder.bias.data = _comp(b_enc, inst, 0).clone()
        model.decoder.weight.data = _comp(W_dec, inst, 0).transpose(-1, -2).clone()
        model.tied_bias.data = _comp(b_dec, inst, 0).clone()
    return model


def _coefficient(l1_coefficient: float, n_comp: int, like: Tensor) -> Any:
    """λ as the library takes it: a float (`PositiveFloat`, what its training config passes); λ = 0,
    which `PositiveFloat` refuses, as the per-component tensor its signature also accepts."""
    if l1_coefficient > 0:
        return l1_coefficient
    return torch.full((n_comp,), l1_coefficient, dtype=like.dtype, device=like.device)


def _loss(l1_coefficient: float, n_comp: int, like: Tensor, reduction: str = "mean") -> Any:
    """The library's training loss (train/sweep.py `setup_loss_function`); `reduction` is
    `L2ReconstructionLoss`'s (its default, MEAN, in training)."""
    sa = _lib()
    return sa.LossReducer(
        sa.LearnedActivationsL1Loss(l1_coefficient=_coefficient(l1_coefficient, n_comp, like)),
        sa.L2ReconstructionLoss(reduction=sa.LossReductionType(reduction)),
    )


def _total(model: Any, x: Tensor, inst: bool, l1_coefficient: float) -> Tensor:
    """The scalar loss of the library's training loop (train/pipeline.py `train_autoencoder`)."""
    sa = _lib()
    x3 = _comp(x, inst, 1)
    f, x_hat = model(x3)
    loss, _ = _loss(l1_coefficient, x3.shape[1], x3).scalar_loss_with_log(
        x3, f, x_hat, component_reduction=sa.LossReductionType.MEAN
    )
    return cast(Tensor, loss)


def _params(model: Any) -> dict[str, Any]:
    """The library's parameters under refsae's names."""
    return {
        "W_enc": model.encoder.weight,
        "b_enc": model.encoder.bias,
        "W_dec": model.decoder.weight,
        "b_dec": model.tied_bias,
    }


def _to_library(name: str, t: Tensor, inst: bool) -> Tensor:
    t = _comp(t, inst, 0)
    return (t.transpose(-1, -2) if name in ("W_enc", "W_dec") else t).clone()


def _from_library(name: str, t: Tensor, inst: bool) -> Tensor:
    return _uncomp(t.transpose(-1, -2) if name in ("W_enc", "W_dec") else t, inst, 0)


def _optimizer(
    model: Any,
    exp_avg: Mapping[str, Tensor],
    exp_avg_sq: Mapping[str, Tensor],
    inst: bool,
    *,
    step: int = 10,
    **hyper: Any,
) -> Any:
    """`AdamWithReset` over the model's parameters (as `train/sweep.py` builds it), its state loaded
    with the given moments and step count (loaded even at step 0, so given moments are honoured)."""
    optimizer = _lib().AdamWithReset(
        model.parameters(), named_parameters=model.named_parameters(), has_components_dim=True, **hyper
    )
    for k, p in _params(model).items():
        optimizer.state[p] = {
            "step": torch.tensor(float(step)),
            "exp_avg": _to_library(k, exp_avg[k], inst),
            "exp_avg_sq": _to_library(k, exp_avg_sq[k], inst),
        }
    return optimizer


def _state(model: Any, optimizer: Any, inst: bool) -> dict[str, dict[str, Tensor]]:
    """Parameters and moments back in refsae's names and layout."""
    params = _params(model)
    out = {"param": {k: _from_library(k, p.detach(), inst) for k, p in params.items()}}
    for g in ("exp_avg", "exp_avg_sq"):
        out[g] = {k: _from_library(k, optimizer.state[p][g], inst) for k, p in params.items()}
    return out


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


class _Recorder:
    """Wraps the loss module `train_autoencoder` calls, keeping the loss it returns."""

    def __init__(self, loss: Any) -> None:
        self.loss = loss
        self.value: Tensor | None = None

    def scalar_loss_with_log(self, *args: Any, **kwargs: Any) -> Any:
        result = self.loss.scalar_loss_with_log(*args, **kwargs)
        self.value = result[0].detach().clone()
        return result


class SparseAutoencoder(Adapter):
    """sparse_autoencoder's `SparseAutoencoder` (ReLU, tied bias, unit-norm decoder) and its
    training pieces."""

    name: ClassVar[str] = "sparse_autoencoder"
    library: ClassVar[str] = "sparse-autoencoder"
    instances: ClassVar[bool] = True  # the library's n_components axis
    # encode: TiedBias "is a learned bias term that is subtracted from the input before encoding, and
    # added back after decoding" (autoencoder/components/tied_bias.py).
    # decoder: UnitNormDecoder, "where the dictionary vectors (columns of the weight matrix) are
    # constrained to have unit norm" (autoencoder/components/unit_norm_decoder.py; seed 000).
    # sparsity: LearnedActivationsL1Loss, "L1 loss penalty is the absolute sum of the learned
    # activations" (loss/learned_activations_l1.py), averaged over the batch by `batch_loss`'s default
    # MEAN reduction.
    # No reconstruction claim: L2ReconstructionLoss's docstring says "the sum squared error" but its
    # default reduction is MEAN over features and its own example computes the mean.
    claims: ClassVar[Mapping[str, str]] = {"encode": "tied", "decoder": "constrained", "sparsity": "l1"}

    def encode(self, x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> Tensor:
        inst = W_enc.ndim == 3
        W_dec = torch.zeros_like(W_enc.transpose(-1, -2))
        with torch.no_grad():
            f, _ = _model(W_enc, b_enc, W_dec, b_dec)(_comp(x, inst, 1))
        return _uncomp(f, inst, 1)

    def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        inst = W_dec.ndim == 3
        W_enc = torch.zeros_like(W_dec.transpose(-1, -2))
        model = _model(W_enc, torch.zeros_like(f[0]), W_dec, b_dec)
        with torch.no_grad():
            x_hat = model.post_decoder_bias(model.decoder(_comp(f, inst, 1)))
        return _uncomp(x_hat, inst, 1)

    def forward(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor
    ) -> tuple[Tensor, Tensor]:
        inst = W_enc.ndim == 3
        with torch.no_grad():
            f, x_hat = _model(W_enc, b_enc, W_dec, b_dec)(_comp(x, inst, 1))
        return _uncomp(f, inst, 1), _uncomp(x_hat, inst, 1)

    def reconstruction_loss(self, x: Tensor, x_hat: Tensor) -> Tensor:
        inst = x.ndim == 3
        x3, xh3 = _comp(x, inst, 1), _comp(x_hat, inst, 1)
        loss = _lib().L2ReconstructionLoss().batch_loss(x3, xh3, xh3)
        return _uncomp(loss, inst, 0)

    def sparsity_loss(self, f: Tensor, W_dec: Tensor) -> Tensor:
        # the unscaled term: the library's penalty with coefficient 1
        inst = W_dec.ndim == 3
        f3 = _comp(f, inst, 1)
        loss = _lib().LearnedActivationsL1Loss(l1_coefficient=1.0).batch_loss(f3, f3, f3)
        return _uncomp(loss, inst, 0)

    def total_loss(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, *, l1_coefficient: float
    ) -> Tensor:
        model = _model(W_enc, b_enc, W_dec, b_dec)
        with torch.no_grad():
            return _total(model, x, W_enc.ndim == 3, l1_coefficient)

    def loss_gradients(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, *, l1_coefficient: float
    ) -> dict[str, Tensor]:
        inst = W_enc.ndim == 3
        model = _model(W_enc, b_enc, W_dec, b_dec, hook=False)
        _total(model, x, inst, l1_coefficient).backward()  # type: ignore[no-untyped-call]
        return {k: _from_library(k, p.grad, inst) for k, p in _params(model).items()}

    def renormalise_rows(self, W_dec: Tensor) -> Tensor:
        inst = W_dec.ndim == 3
        d_sae, d_in = W_dec.shape[-2:]
        decoder = _decoder(d_sae, d_in, W_dec.shape[0] if inst else 1, hook=True)
        decoder.weight.data = _to_library("W_dec", W_dec, inst)
        decoder.constrain_weights_unit_norm()
        return _from_library("W_dec", decoder.weight.detach(), inst)

    def remove_parallel_component(self, W_dec: Tensor, grad_W_dec: Tensor) -> Tensor:
        inst = W_dec.ndim == 3
        d_sae, d_in = W_dec.shape[-2:]
        decoder = _decoder(d_sae, d_in, W_dec.shape[0] if inst else 1, hook=True)
        decoder.weight.data = _to_library("W_dec", W_dec, inst)
        raw = _to_library("W_dec", grad_W_dec, inst)
        (decoder.weight * raw).sum().backward()  # raw gradient = grad_W_dec; the hook edits it
        return _from_library("W_dec", decoder.weight.grad, inst)

    def l0(self, f: Tensor) -> Tensor:
        mod = _lib().metrics.train
        inst = f.ndim == 3
        f3 = _comp(f, inst, 1)
        data = mod.abstract_train_metric.TrainMetricData(f3, f3, f3)
        result = mod.l0_norm_metric.TrainBatchLearnedActivationsL0().calculate(data)[0]
        return _uncomp(result.component_wise_values, inst, 0)

    def fire_counts(self, f: Tensor) -> Tensor:
        mod = _lib().metrics.train
        inst = f.ndim == 3
        f3 = _comp(f, inst, 1)
        metric = mod.neuron_activity_metric.NeuronActivityMetric(approximate_horizons=[2 * f3.shape[0]])
        metric.calculate(mod.abstract_train_metric.TrainMetricData(f3, f3, f3))
        return _uncomp(metric._data[0]._neuron_activity, inst, 0)

    def dead_by_fire_fraction(self, fire_counts: Tensor, *, n_examples: int, threshold: float) -> Tensor:
        mod = _lib().activation_resampler.activation_resampler
        inst = fire_counts.ndim == 2
        counts = _comp(fire_counts, inst, 0).to(torch.int64)
        resampler = mod.ActivationResampler(
            n_learned_features=counts.shape[-1],
            n_components=counts.shape[0],
            threshold_is_dead_portion_fires=threshold,
        )
        resampler._collated_neuron_activity = counts.clone()
        resampler._n_activations_collated_since_last_resample = n_examples
        dead = torch.zeros_like(counts, dtype=torch.bool)
        for c, idx in enumerate(resampler._get_dead_neuron_indices()):
            dead[c, idx] = True
        return _uncomp(dead, inst, 0)

    def resampling_probabilities(
        self, x: Tensor, x_hat: Tensor, f: Tensor, *, l1_coefficient: float, loss: str = "total"
    ) -> Tensor:
        sa = _lib()
        mod = sa.activation_resampler.activation_resampler
        inst = x.ndim == 3
        x3, xh3, f3 = (_comp(t, inst, 1) for t in (x, x_hat, f))
        if loss == "total":
            loss_fn = _loss(l1_coefficient, x3.shape[1], x3, reduction="sum")
        else:
            loss_fn = sa.L2ReconstructionLoss(reduction=sa.LossReductionType.SUM)
        with torch.no_grad():
            per_item = loss_fn.forward(x3, f3, xh3)
            probabilities = mod.ActivationResampler.assign_sampling_probabilities(per_item)
        return _uncomp(probabilities, inst, 1)

    def adam_step(
        self,
        param: Mapping[str, Tensor],
        grad: Mapping[str, Tensor],
        exp_avg: Mapping[str, Tensor],
        exp_avg_sq: Mapping[str, Tensor],
        *,
        step: int,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> dict[str, dict[str, Tensor]]:
        inst = param["b_enc"].ndim == 2
        model = _model(*(param[k] for k in PARAMETERS))
        hyper = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        optimizer = _optimizer(model, exp_avg, exp_avg_sq, inst, step=step, **hyper)
        for k, p in _params(model).items():
            p.grad = _to_library(k, grad[k], inst)
        optimizer.step()
        return _state(model, optimizer, inst)

    def adam_reset_latents(
        self, exp_avg: Mapping[str, Tensor], exp_avg_sq: Mapping[str, Tensor], latents: Tensor
    ) -> dict[str, dict[str, Tensor]]:
        inst = latents.ndim == 2
        model = _model(*(torch.zeros_like(exp_avg[k]) for k in PARAMETERS))
        optimizer = _optimizer(model, exp_avg, exp_avg_sq, inst)
        for c, mask in enumerate(_comp(latents, inst, 0)):
            indices = torch.nonzero(mask).flatten().to(torch.int64)
            for parameter, axis in model.reset_optimizer_parameter_details:
                optimizer.reset_neurons_state(parameter, indices, axis=axis, component_idx=c)
        state = _state(model, optimizer, inst)
        return {"exp_avg": state["exp_avg"], "exp_avg_sq": state["exp_avg_sq"]}

    def resample_anthropic(
        self,
        param: Mapping[str, Tensor],
        dead: Tensor,
        chosen: Tensor,
        *,
        centred: bool,
        encoder_scale: float,
    ) -> dict[str, Any]:
        from hypothesis import assume

        assume(encoder_scale == 0.2 and not centred)  # the library's fixed choices (module docstring)
        sa = _lib()
        mod = sa.activation_resampler.activation_resampler
        inst = dead.ndim == 2
        model = _model(*(param[k] for k in PARAMETERS))
        dead3 = _comp(dead, inst, 0).to(torch.bool)
        chosen3 = _comp(chosen, inst, 0)
        n_comp, d_sae = dead3.shape
        resampler = mod.ActivationResampler(n_learned_features=d_sae, n_components=n_comp)
        resampler._collated_neuron_activity = (~dead3).to(torch.int64)  # alive latents fired once
        resampler._n_activations_collated_since_last_resample = 1
        # the draw is the row's input: each dead latent gets its row of `chosen`
        resampler.compute_loss_and_get_activations = lambda **_: mod.LossInputActivationsTuple(
            torch.ones(1, n_comp, dtype=chosen.dtype), chosen3[:, :1].transpose(0, 1)
        )
        resampler.sample_input = lambda probabilities, input_activations, n_samples: [
            chosen3[c][dead3[c]] for c in range(n_comp)
        ]
        updates = resampler.resample_dead_neurons(
            activation_store=None, autoencoder=model, loss_fn=None, train_batch_size=1
        )
        optimizer = sa.AdamWithReset(
            model.parameters(), named_parameters=model.named_parameters(), has_components_dim=True
        )
        pipeline = types.SimpleNamespace(autoencoder=model, optimizer=optimizer)
        sa.train.pipeline.Pipeline.update_parameters(pipeline, updates)
        resampled = torch.zeros_like(dead3)
        for c, update in enumerate(updates):
            resampled[c, update.dead_neuron_indices] = True
        return {
            "param": {k: _from_library(k, p.detach(), inst) for k, p in _params(model).items()},
            "resampled": _uncomp(resampled, inst, 0),
        }

    def training_step(
        self,
        x: Tensor,
        param: Mapping[str, Tensor],
        exp_avg: Mapping[str, Tensor],
        exp_avg_sq: Mapping[str, Tensor],
        *,
        step: int,
        lr: float,
        l1_coefficient: float,
        betas: tuple[float, float] = (0.9, 0.999),
        adam_eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> dict[str, Any]:
        sa = _lib()
        inst = x.ndim == 3
        x3 = _comp(x, inst, 1)
        batch, n_comp, d_in = x3.shape
        model = _model(*(param[k] for k in PARAMETERS))
        hyper = {"lr": lr, "betas": betas, "eps": adam_eps, "weight_decay": weight_decay}
        optimizer = _optimizer(model, exp_avg, exp_avg_sq, inst, step=step, **hyper)
        with _default_dtype(x.dtype):
            store = sa.TensorActivationStore(max_items=batch, n_neurons=d_in, n_components=n_comp)
        for c in range(n_comp):
            store.extend(x3[:, c], component_idx=c)
        loss = _Recorder(_loss(l1_coefficient, n_comp, x3))
        pipeline = types.SimpleNamespace(
            autoencoder=model,
            optimizer=optimizer,
            loss=loss,
            metrics=sa.metrics.metrics_container.MetricsContainer(),
            n_components=n_comp,
            n_learned_features=model.config.n_learned_features,
            lr_scheduler=None,
            total_activations_trained_on=0,
            log_frequency=1,
        )
        sa.train.pipeline.Pipeline.train_autoencoder(pipeline, store, train_batch_size=batch)
        if loss.value is None:
            raise RuntimeError("train_autoencoder computed no loss")
        return {**_state(model, optimizer, inst), "loss": loss.value}
