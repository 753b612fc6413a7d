"""Adapter of sparse_autoencoder (https://github.com/ai-safety-foundation/sparse_autoencoder, PyPI
`sparse-autoencoder` 1.10.0, the `Pipeline` release): its `SparseAutoencoder`, losses, metrics,
resampler, `AdamWithReset` and training loop, its component axis as refsae's instance axis. Which
library code each row calls, and why: conformance/sparse_autoencoder/README.md; what the suite found:
conformance/sparse_autoencoder/findings.toml."""

from __future__ import annotations

import contextlib
import functools
import importlib
import types
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, cast

import torch
from torch import Tensor

from refsae.conform.adapter import Domain
from refsae.conform.module_adapter import ModuleAdapter

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


class SparseAutoencoder(ModuleAdapter):
    """sparse_autoencoder's `SparseAutoencoder` (ReLU, tied bias, unit-norm decoder) and its
    training pieces."""

    name: ClassVar[str] = "sparse_autoencoder"
    library: ClassVar[str] = "sparse-autoencoder"
    instances: ClassVar[bool] = True  # the library's n_components axis
    # encode: TiedBias "is a learned bias term that is subtracted from the input before encoding, and
    # added back after decoding" (autoencoder/components/tied_bias.py).
    # decoder: UnitNormDecoder, "where the dictionary vectors (columns of the weight matrix) are
    # constrained to have unit norm" (autoencoder/components/unit_norm_decoder.py).
    # sparsity: LearnedActivationsL1Loss, "L1 loss penalty is the absolute sum of the learned
    # activations" (loss/learned_activations_l1.py), averaged over the batch by `batch_loss`'s default
    # MEAN reduction.
    # No reconstruction claim: L2ReconstructionLoss's docstring says "the sum squared error" but its
    # default reduction is MEAN over features and its own example computes the mean.
    claims: ClassVar[Mapping[str, str]] = {"encode": "tied", "decoder": "constrained", "sparsity": "l1"}
    parameters: ClassVar[Mapping[str, str]] = {
        "W_enc": "encoder.weight.T",
        "b_enc": "encoder.bias",
        "W_dec": "decoder.weight.T",
        "b_dec": "tied_bias",
    }
    loss_rows: ClassVar[tuple[str, ...]] = ("total_loss", "loss_gradients")
    domains: ClassVar[tuple[Domain, ...]] = (
        Domain(
            "anthropic_resampling_choices",
            "ActivationResampler hard-codes the encoder scale 0.2 (renormalize_and_scale) and the "
            "uncentred direction",
            ("resample_anthropic",),
            lambda case: case.options["encoder_scale"] == 0.2 and not case.options["centred"],
            excludes=("RES-12",),
        ),
    )

    def build(self, like: Mapping[str, Tensor], *, hook: bool = False, **options: Any) -> Any:
        """A `SparseAutoencoder` with a component axis (of size 1 for a case without an instance axis);
        its decoder without the gradient hook unless `hook` (`enable_gradient_hook=False`, the library's
        switch: `W_dec`'s gradient is the loss's; the hook is checked by `remove_parallel_component`)."""
        sa, W_enc = _lib(), like["W_enc"]
        inst = W_enc.ndim == 3
        n_comp = W_enc.shape[0] if inst else 1
        d_in, d_sae = W_enc.shape[-2:]
        sizes = {"n_input_features": d_in, "n_learned_features": d_sae, "n_components": n_comp}
        model = sa.SparseAutoencoder(sa.SparseAutoencoderConfig(**sizes))
        if not hook:
            model.decoder = _decoder(d_sae, d_in, n_comp, hook=False)
        model.refsae_instances = inst
        return model

    def load(self, module: Any, values: Mapping[str, Tensor]) -> Any:
        """Assign `.data` (which also sets the case's dtype), with the component axis."""
        with torch.no_grad():
            for name, value in values.items():
                target = self.target_of(module, name)
                target.data = self.to_library(name, _comp(value, value.ndim == target.ndim, 0)).clone()
        return module

    def sae(self, *params: Tensor, hook: bool = True) -> Any:
        """The model holding `W_enc, b_enc, W_dec, b_dec`, its decoder's gradient hook on."""
        values = dict(zip(PARAMETERS, params, strict=True))
        return self.load(self.build(values, hook=hook), values)

    def loss(self, module: Any, x: Tensor, **options: Any) -> Tensor:
        return _total(module, x, module.refsae_instances, options["l1_coefficient"])

    def gradients(self, module: Any, names: tuple[str, ...]) -> tuple[Tensor, ...]:
        params = self.named(module)
        return tuple(self._canonical(k, cast(Tensor, params[k].grad), module.refsae_instances) for k in names)

    def _library(self, name: str, t: Tensor, inst: bool) -> Tensor:
        """A canonical tensor in the library's layout, with the component axis (a copy)."""
        return self.to_library(name, _comp(t, inst, 0)).clone()

    def _canonical(self, name: str, t: Tensor, inst: bool) -> Tensor:
        return _uncomp(self.to_library(name, t), inst, 0)

    def _optimizer(
        self,
        model: Any,
        moments: Mapping[str, Mapping[str, Tensor]],
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
        for k, p in self.named(model).items():
            state = {g: self._library(k, moments[g][k], inst) for g in ("exp_avg", "exp_avg_sq")}
            optimizer.state[p] = {"step": torch.tensor(float(step)), **state}
        return optimizer

    def _state(self, model: Any, optimizer: Any, inst: bool) -> dict[str, dict[str, Tensor]]:
        """Parameters and moments back in refsae's names and layout."""
        params = self.named(model)
        out = {"param": {k: self._canonical(k, p.detach(), inst) for k, p in params.items()}}
        for g in ("exp_avg", "exp_avg_sq"):
            out[g] = {k: self._canonical(k, optimizer.state[p][g], inst) for k, p in params.items()}
        return out

    def _unit_decoder(self, W_dec: Tensor) -> tuple[Any, bool]:
        """The `UnitNormDecoder` (gradient hook on) holding `W_dec`, and whether it has instances."""
        inst = W_dec.ndim == 3
        d_sae, d_in = W_dec.shape[-2:]
        decoder = _decoder(d_sae, d_in, W_dec.shape[0] if inst else 1, hook=True)
        decoder.weight.data = self._library("W_dec", W_dec, inst)
        return decoder, inst

    def encode(self, x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> Tensor:
        inst = W_enc.ndim == 3
        W_dec = torch.zeros_like(W_enc.transpose(-1, -2))
        with torch.no_grad():
            f, _ = self.sae(W_enc, b_enc, W_dec, b_dec)(_comp(x, inst, 1))
        return _uncomp(f, inst, 1)

    def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        inst = W_dec.ndim == 3
        W_enc = torch.zeros_like(W_dec.transpose(-1, -2))
        model = self.sae(W_enc, torch.zeros_like(f[0]), W_dec, b_dec)
        with torch.no_grad():
            x_hat = model.post_decoder_bias(model.decoder(_comp(f, inst, 1)))
        return _uncomp(x_hat, inst, 1)

    def forward(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor
    ) -> tuple[Tensor, Tensor]:
        inst = W_enc.ndim == 3
        with torch.no_grad():
            f, x_hat = self.sae(W_enc, b_enc, W_dec, b_dec)(_comp(x, inst, 1))
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

    def renormalise_rows(self, W_dec: Tensor) -> Tensor:
        decoder, inst = self._unit_decoder(W_dec)
        decoder.constrain_weights_unit_norm()
        return self._canonical("W_dec", decoder.weight.detach(), inst)

    def remove_parallel_component(self, W_dec: Tensor, grad_W_dec: Tensor) -> Tensor:
        decoder, inst = self._unit_decoder(W_dec)
        raw = self._library("W_dec", grad_W_dec, inst)
        (decoder.weight * raw).sum().backward()  # raw gradient = grad_W_dec; the hook edits it
        return self._canonical("W_dec", decoder.weight.grad, inst)

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
        model = self.sae(*(param[k] for k in PARAMETERS))
        hyper = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        moments = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        optimizer = self._optimizer(model, moments, inst, step=step, **hyper)
        for k, p in self.named(model).items():
            p.grad = self._library(k, grad[k], inst)
        optimizer.step()
        return self._state(model, optimizer, inst)

    def adam_reset_latents(
        self, exp_avg: Mapping[str, Tensor], exp_avg_sq: Mapping[str, Tensor], latents: Tensor
    ) -> dict[str, dict[str, Tensor]]:
        inst = latents.ndim == 2
        model = self.sae(*(torch.zeros_like(exp_avg[k]) for k in PARAMETERS))
        optimizer = self._optimizer(model, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}, inst)
        for c, mask in enumerate(_comp(latents, inst, 0)):
            indices = torch.nonzero(mask).flatten().to(torch.int64)
            for parameter, axis in model.reset_optimizer_parameter_details:
                optimizer.reset_neurons_state(parameter, indices, axis=axis, component_idx=c)
        state = self._state(model, optimizer, inst)
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
        sa = _lib()
        mod = sa.activation_resampler.activation_resampler
        inst = dead.ndim == 2
        model = self.sae(*(param[k] for k in PARAMETERS))
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
            "param": {k: self._canonical(k, p.detach(), inst) for k, p in self.named(model).items()},
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
        model = self.sae(*(param[k] for k in PARAMETERS))
        hyper = {"lr": lr, "betas": betas, "eps": adam_eps, "weight_decay": weight_decay}
        moments = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        optimizer = self._optimizer(model, moments, inst, step=step, **hyper)
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
        return {**self._state(model, optimizer, inst), "loss": loss.value}
