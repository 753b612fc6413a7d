"""Adapters of dictionary_learning (https://github.com/saprmarks/dictionary_learning, 0.1.0): its SAE
classes and trainers, warm-ups off. Which library code each row calls, and why, and what the suite
found: conformance/dictionary_learning/ (README.md, findings.toml)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, cast
from unittest import mock

import torch

from refsae.conform.adapter import Domain
from refsae.conform.module_adapter import ModuleAdapter, backward_to, library, quiet

Tensor = torch.Tensor
TRAINER = {"layer": 0, "lm_name": "conformance"}
"""The trainers' required `layer=` and `lm_name=` (recorded in their config only)."""
WARMUPS_OFF = {"steps": 2, "warmup_steps": 0, "sparsity_warmup_steps": None}
"""The loss at the step is the plain loss with the row's coefficient (`steps=2` only satisfies the
learning-rate schedule's assertions)."""
LINEAR = {"W_enc": "encoder.weight.T", "b_enc": "encoder.bias", "W_dec": "decoder.weight.T"}
"""`nn.Linear` layouts: the decoder weight's COLUMNS are the dictionary vectors."""


@contextlib.contextmanager
def _draw_in_order() -> Iterator[None]:
    """`torch.multinomial(weights, n, ...)` returns 0 … n − 1 (the row gives the draw, RES-16)."""

    def draw(input: Tensor, num_samples: Any, replacement: bool = False, **_: Any) -> Tensor:
        return torch.arange(int(num_samples), device=input.device)

    with mock.patch.object(torch, "multinomial", draw):
        yield


class _DictionaryLearning(ModuleAdapter):
    """A model class (`build` without a trainer) and its trainer (`trainer`, whose `loss` is the row's)."""

    library: ClassVar[str] = "dictionary-learning"
    holder: ClassVar[str] = "ae"
    fixed: ClassVar[Mapping[str, Any]] = WARMUPS_OFF
    trainer_class: ClassVar[str] = ""
    step: ClassVar[int] = 1
    """The step `trainer.loss(x, step=…)` is called at."""

    def trainer(self, d_in: int, d_sae: int, dtype: torch.dtype, **config: Any) -> Any:
        """`trainer_class(activation_dim=d_in, dict_size=d_sae, …)` with `fixed` and `config`."""
        cls = getattr(library("dictionary_learning.trainers"), self.trainer_class)
        settings = {**self.fixed, **config}
        trainer = cls(activation_dim=d_in, dict_size=d_sae, device=self.device, **TRAINER, **settings)
        trainer.ae.to(dtype=dtype)
        return trainer

    def loss(self, module: Any, x: Tensor, **options: Any) -> Tensor:
        return cast(Tensor, module.loss(x, step=self.step, logging=False))

    def identity(self, ae: Any) -> Any:
        """`ae` (d_in = d_sae) with encoder weight I and zero biases: its pre-activations are its input."""
        d_sae, dtype = ae.dict_size, ae.encoder.weight.dtype
        zeros = torch.zeros(d_sae, dtype=dtype)
        return self.load(ae, {"W_enc": torch.eye(d_sae, dtype=dtype), "b_enc": zeros, "b_dec": zeros})


class AutoEncoder(_DictionaryLearning):
    """`dictionary_learning.AutoEncoder`, `StandardTrainer` and `evaluation.evaluate`."""

    name: ClassVar[str] = "dictionary_learning"
    parameters: ClassVar[Mapping[str, str]] = {**LINEAR, "b_dec": "bias"}
    loss_rows: ClassVar[tuple[str, ...]] = ("total_loss", "loss_gradients")
    trainer_class: ClassVar[str] = "StandardTrainer"
    # StandardTrainer's docstring: "Decoder column norms are constrained to 1." (the decoder is used
    # as is in the forward pass, with a unit-norm constraint: refsae's `constrained`).
    claims: ClassVar[Mapping[str, str]] = {"decoder": "constrained"}
    domains: ClassVar[tuple[Domain, ...]] = (
        Domain(
            "anthropic_resampling_choices",
            "StandardTrainer.resample_neurons hard-codes the encoder scale 0.2 and the uncentred input",
            ("resample_anthropic",),
            lambda case: case.options["encoder_scale"] == 0.2 and not case.options["centred"],
            excludes=("RES-12",),
        ),
    )

    def build(self, like: Mapping[str, Tensor], *, l1_coefficient: float) -> Any:
        d_in, d_sae = like["W_enc"].shape
        return self.trainer(d_in, d_sae, like["W_enc"].dtype, l1_penalty=l1_coefficient)

    def _model(self, d_in: int, d_sae: int, dtype: torch.dtype) -> Any:
        return library("dictionary_learning").AutoEncoder(d_in, d_sae).to(device=self.device, dtype=dtype)

    def encode(self, x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> Tensor:
        ae = self._model(x.shape[-1], W_enc.shape[1], x.dtype)
        self.load(ae, {"W_enc": W_enc, "b_enc": b_enc, "b_dec": b_dec})
        with torch.no_grad():
            return cast(Tensor, ae.encode(x))

    def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        ae = self.load(self._model(W_dec.shape[1], W_dec.shape[0], f.dtype), {"W_dec": W_dec, "b_dec": b_dec})
        with torch.no_grad():
            return cast(Tensor, ae.decode(f))

    def forward(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor
    ) -> tuple[Tensor, Tensor]:
        ae = self._model(x.shape[-1], W_enc.shape[1], x.dtype)
        self.load(ae, {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec})
        with torch.no_grad():
            x_hat, f = ae(x, output_features=True)
        return f, x_hat

    # --- metrics: the library's `evaluate` on the row's arrays ---

    def _evaluate(self, x: Tensor, x_hat: Tensor, f: Tensor) -> dict[str, float]:
        from dictionary_learning.evaluation import evaluate

        class Given(torch.nn.Module):
            """A dictionary whose forward returns the row's (x_hat, f)."""

            activation_dim = x.shape[-1]
            dict_size = f.shape[-1]

            def forward(self, _x: Tensor, output_features: bool = False) -> Any:
                return (x_hat, f) if output_features else x_hat

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # t.var of a batch of 1 (metrics not read here)
            return cast(dict[str, float], evaluate(Given(), iter([x]), device=str(x.device)))

    def sparsity_loss(self, f: Tensor, W_dec: Tensor) -> Tensor:
        return torch.tensor(self._evaluate(f, f, f)["l1_loss"], dtype=torch.float64)

    def l0(self, f: Tensor) -> Tensor:
        return torch.tensor(self._evaluate(f, f, f)["l0"], dtype=torch.float64)

    def explained_variance(self, x: Tensor, x_hat: Tensor) -> Tensor:
        zeros = torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device)
        value = self._evaluate(x, x_hat, zeros)["frac_variance_explained"]
        return torch.tensor(value, dtype=torch.float64)

    # --- dead latents and resampling (StandardTrainer) ---

    def update_steps_since_fired(self, steps_since: Tensor, f: Tensor) -> Tensor:
        d_sae = f.shape[-1]
        trainer = self.trainer(d_sae, d_sae, f.dtype, steps=3, warmup_steps=1, resample_steps=2)
        self.identity(trainer.ae)
        trainer.steps_since_active = steps_since.to(torch.int64).clone()
        with torch.no_grad():
            trainer.loss(f, step=1, logging=False)
        return cast(Tensor, trainer.steps_since_active)

    def _resample(
        self,
        params: Mapping[str, Tensor],
        moments: Mapping[str, Mapping[str, Tensor]],
        dead: Tensor,
        rows: Tensor,
    ) -> tuple[Any, Tensor]:
        """`resample_neurons(deads, rows[deads])` on a trainer holding `params` and Adam `moments`."""
        d_in, d_sae = params["W_enc"].shape
        trainer = self.load(self.trainer(d_in, d_sae, params["W_enc"].dtype), params)
        for name, p in self.named(trainer).items():
            state = {g: self.to_library(name, moments[g][name]).clone() for g in ("exp_avg", "exp_avg_sq")}
            trainer.optimizer.state[p] = {"step": torch.tensor(1.0), **state}
        deads = dead.to(torch.bool).clone()
        with quiet(), _draw_in_order():
            trainer.resample_neurons(deads, rows[deads])
        return trainer, deads

    def adam_reset_latents(
        self, exp_avg: Mapping[str, Tensor], exp_avg_sq: Mapping[str, Tensor], latents: Tensor
    ) -> dict[str, dict[str, Tensor]]:
        """`resample_neurons` with rows of ones as activations (they feed only the parameter update)."""
        params = {k: torch.zeros_like(v) for k, v in exp_avg.items()}
        ones = torch.ones_like(exp_avg["W_dec"])
        trainer, _ = self._resample(params, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}, latents, ones)
        state = {name: trainer.optimizer.state[p] for name, p in self.named(trainer).items()}
        return {g: {k: self.to_library(k, s[g]) for k, s in state.items()} for g in ("exp_avg", "exp_avg_sq")}

    def resample_anthropic(
        self,
        param: Mapping[str, Tensor],
        dead: Tensor,
        chosen: Tensor,
        *,
        centred: bool,
        encoder_scale: float,
    ) -> dict[str, Any]:
        zeros = {k: torch.zeros_like(v) for k, v in param.items()}
        trainer, deads = self._resample(param, {"exp_avg": zeros, "exp_avg_sq": zeros}, dead, chosen)
        new = {k: self.to_library(k, p.detach()) for k, p in self.named(trainer).items()}
        return {"param": new, "resampled": deads}


class _TopKFamily(_DictionaryLearning):
    """What the TopK and BatchTopK targets share: the model with `k`, the trainer's loss and AuxK."""

    parameters: ClassVar[Mapping[str, str]] = {**LINEAR, "b_dec": "b_dec"}
    fixed: ClassVar[Mapping[str, Any]] = {"steps": 2, "warmup_steps": 0}
    step: ClassVar[int] = 0
    # float32 first: conventions are detected in the first dtype, and the AuxK loss is float32 anyway.
    dtypes: ClassVar[tuple[str, ...]] = ("float32", "float64")
    # geometric_median(points, max_iter=100, tol=1e-5): EQ-11's parameters
    equivalence_parameters: ClassVar[Mapping[str, Any]] = {"max_iter": 100, "tol": 1e-5}
    working_precision: ClassVar[Mapping[str, tuple[str, str]]] = dict.fromkeys(
        ("auxk_loss", "auxk_loss_gradients"),
        ("float32", "get_auxiliary_loss computes in float32 (`.float()`)"),
    )
    domains: ClassVar[tuple[Domain, ...]] = (
        Domain(
            "l1_coefficient_zero",
            "the TopK and BatchTopK trainers' losses have no sparsity term (TOPK-6's default)",
            ("topk_total_loss", "topk_loss_gradients", "batchtopk_total_loss", "batchtopk_loss_gradients"),
            lambda case: case.options["l1_coefficient"] == 0.0,
        ),
    )
    model_class: ClassVar[str] = ""
    """The model's module and class, `module:Class`."""

    def build(self, like: Mapping[str, Tensor], *, k: int, l1_coefficient: float = 0.0) -> Any:
        d_in, d_sae = like["W_enc"].shape
        return self.trainer(d_in, d_sae, like["W_enc"].dtype, k=k)

    def _model(self, d_in: int, d_sae: int, k: int, dtype: torch.dtype) -> Any:
        module, _, cls = self.model_class.partition(":")
        return getattr(library(module), cls)(d_in, d_sae, k).to(device=self.device, dtype=dtype)

    def _identity(self, d_sae: int, k: int, dtype: torch.dtype) -> Any:
        return self.identity(self._model(d_sae, d_sae, k, dtype))

    def _post_relu(self, z: Tensor) -> Tensor:
        """The model's `post_relu_feat_acts_BF` of pre-activations `z` (identity encoder)."""
        ae = self._identity(z.shape[-1], 1, z.dtype)
        if self.model_class.endswith("AutoEncoderTopK"):
            return cast(Tensor, ae.encode(z, return_topk=True)[3])
        return cast(Tensor, ae.encode(z, return_active=True, use_threshold=False)[2])

    def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        ae = self._model(W_dec.shape[1], W_dec.shape[0], 1, f.dtype)
        self.load(ae, {"W_dec": W_dec, "b_dec": b_dec})
        with torch.no_grad():
            return cast(Tensor, ae.decode(f))

    # --- AuxK: the trainer's get_auxiliary_loss on the row's residual and pre-activations ---

    def _auxk(
        self, x: Tensor, x_hat: Tensor, z: Tensor, W_dec: Tensor, b_dec: Tensor, dead: Tensor, k_aux: int
    ) -> tuple[Tensor, Any]:
        d_sae, d_in = W_dec.shape
        trainer = self.load(self.trainer(d_in, d_sae, x.dtype, k=1), {"W_dec": W_dec, "b_dec": b_dec})
        trainer.top_k_aux = k_aux
        trainer.num_tokens_since_fired = dead.to(torch.long) * trainer.dead_feature_threshold
        residual = (x - x_hat).detach()  # as TopKTrainer.loss passes e.detach(), e = x − x_hat
        return cast(Tensor, trainer.get_auxiliary_loss(residual, self._post_relu(z))), trainer

    def auxk_loss(
        self, x: Tensor, x_hat: Tensor, z: Tensor, W_dec: Tensor, b_dec: Tensor, dead: Tensor, *, k_aux: int
    ) -> Tensor:
        with torch.no_grad():
            loss, _ = self._auxk(x, x_hat, z, W_dec, b_dec, dead, k_aux)
        return loss

    def auxk_loss_gradients(
        self, x: Tensor, x_hat: Tensor, z: Tensor, W_dec: Tensor, b_dec: Tensor, dead: Tensor, *, k_aux: int
    ) -> dict[str, Tensor]:
        """Gradients to `z` and the trainer's decoder; `b_dec` and `x_hat` get none from it (zeros)."""
        leaves = {"z": z.clone().requires_grad_(True), "x_hat": x_hat.clone().requires_grad_(True)}
        loss, trainer = self._auxk(x, leaves["x_hat"], leaves["z"], W_dec, b_dec, dead, k_aux)
        decoder = {k: self.target_of(trainer, k) for k in ("W_dec", "b_dec")}
        grads = backward_to(loss, {**leaves, **decoder})
        return {**grads, "W_dec": self.to_library("W_dec", grads["W_dec"])}


class AutoEncoderTopK(_TopKFamily):
    """`dictionary_learning.trainers.top_k.AutoEncoderTopK` and `TopKTrainer`."""

    name: ClassVar[str] = "dictionary_learning.topk"
    model_class: ClassVar[str] = "dictionary_learning.trainers.top_k:AutoEncoderTopK"
    trainer_class: ClassVar[str] = "TopKTrainer"
    loss_rows: ClassVar[tuple[str, ...]] = ("topk_total_loss", "topk_loss_gradients")

    def topk(self, z: Tensor, *, k: int) -> Tensor:
        ae = self._identity(z.shape[-1], k, z.dtype)
        with torch.no_grad():
            return cast(Tensor, ae.encode(z))

    def geometric_median(self, x: Tensor) -> Tensor:
        return cast(Tensor, library("dictionary_learning.trainers.top_k").geometric_median(x))

    def remove_parallel_component(self, W_dec: Tensor, grad_W_dec: Tensor) -> Tensor:
        trainer = library("dictionary_learning.trainers.trainer")
        d_sae, d_in = W_dec.shape
        out = trainer.remove_gradient_parallel_to_decoder_directions(
            W_dec.T.clone(), grad_W_dec.T.clone(), d_in, d_sae
        )
        return cast(Tensor, out).T

    def renormalise_rows(self, W_dec: Tensor) -> Tensor:
        trainer = library("dictionary_learning.trainers.trainer")
        d_sae, d_in = W_dec.shape
        param = torch.nn.Parameter(W_dec.T.clone())
        return cast(Tensor, trainer.set_decoder_norm_to_unit_norm(param, d_in, d_sae)).T.detach()


class BatchTopKSAE(_TopKFamily):
    """`dictionary_learning.trainers.batch_top_k.BatchTopKSAE` and `BatchTopKTrainer`."""

    name: ClassVar[str] = "dictionary_learning.batchtopk"
    model_class: ClassVar[str] = "dictionary_learning.trainers.batch_top_k:BatchTopKSAE"
    trainer_class: ClassVar[str] = "BatchTopKTrainer"
    loss_rows: ClassVar[tuple[str, ...]] = ("batchtopk_total_loss", "batchtopk_loss_gradients")
    working_precision: ClassVar[Mapping[str, tuple[str, str]]] = {
        **_TopKFamily.working_precision,
        "batchtopk_update_threshold": ("float32", "update_threshold takes (1 − β) · min in float32"),
    }

    def batchtopk(self, z: Tensor, *, k: int) -> Tensor:
        ae = self._identity(z.shape[-1], k, z.dtype)
        with torch.no_grad():
            return cast(Tensor, ae.encode(z, use_threshold=False))

    def geometric_median(self, x: Tensor) -> Tensor:
        trainer = library("dictionary_learning.trainers.batch_top_k").BatchTopKTrainer
        return cast(Tensor, trainer.geometric_median(x))

    def batchtopk_update_threshold(
        self, threshold: Tensor, f: Tensor, *, n_batches: int, beta: float
    ) -> Tensor:
        d_sae = f.shape[-1]
        trainer = self.trainer(d_sae, d_sae, f.dtype, k=1)
        trainer.threshold_beta = beta
        trainer.ae.threshold = threshold.clone()
        trainer.update_threshold(f)
        return cast(Tensor, trainer.ae.threshold)

    def batchtopk_inference(self, z: Tensor, threshold: Tensor) -> Tensor:
        ae = self._identity(z.shape[-1], 1, z.dtype)
        ae.threshold = threshold.clone()
        with torch.no_grad():
            return cast(Tensor, ae.encode(z, use_threshold=True))


class JumpReluAutoEncoder(_DictionaryLearning):
    """`dictionary_learning.JumpReluAutoEncoder`, `JumpReLUFunction` and `JumpReluTrainer`."""

    name: ClassVar[str] = "dictionary_learning.jumprelu"
    parameters: ClassVar[Mapping[str, str]] = {
        "W_enc": "W_enc", "b_enc": "b_enc", "W_dec": "W_dec", "b_dec": "b_dec", "theta": "threshold"
    }  # fmt: skip
    loss_rows: ClassVar[tuple[str, ...]] = ("jumprelu_total_loss", "jumprelu_loss_gradients")
    trainer_class: ClassVar[str] = "JumpReluTrainer"
    # sparsity_penalty · (L0 / target_l0 − 1)², target_l0 = 20 (EQ-8), the L0 in float32 (`.float()`)
    equivalence_parameters: ClassVar[Mapping[str, Any]] = {"target_l0": 20.0}
    working_precision: ClassVar[Mapping[str, tuple[str, str]]] = {"jumprelu_total_loss": ("float32", "L0")}

    def build(self, like: Mapping[str, Tensor], *, l0_coefficient: float, bandwidth: float) -> Any:
        d_in, d_sae = like["W_enc"].shape
        dtype = like["W_enc"].dtype
        return self.trainer(d_in, d_sae, dtype, bandwidth=bandwidth, sparsity_penalty=l0_coefficient)

    def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        d_sae, d_in = W_dec.shape
        ae = library("dictionary_learning").JumpReluAutoEncoder(d_in, d_sae, device=self.device)
        self.load(ae.to(dtype=f.dtype), {"W_dec": W_dec, "b_dec": b_dec})
        with torch.no_grad():
            return cast(Tensor, ae.decode(f))

    def jumprelu(self, z: Tensor, theta: Tensor) -> Tensor:
        bandwidth = 0.001  # JumpReluTrainer's default; the forward pass does not use it
        with torch.no_grad():
            function = library("dictionary_learning.trainers.jumprelu").JumpReLUFunction
            return cast(Tensor, function.apply(z, theta, bandwidth))


class GatedAutoEncoder(_DictionaryLearning):
    """`dictionary_learning.GatedAutoEncoder` and `GatedSAETrainer`."""

    name: ClassVar[str] = "dictionary_learning.gated"
    parameters: ClassVar[Mapping[str, str]] = {
        "W_enc": "encoder.weight.T", "b_gate": "gate_bias", "r_mag": "r_mag", "b_mag": "mag_bias",
        "W_dec": "decoder.weight.T", "b_dec": "decoder_bias",
    }  # fmt: skip
    loss_rows: ClassVar[tuple[str, ...]] = ("gated_total_loss", "gated_loss_gradients")
    trainer_class: ClassVar[str] = "GatedSAETrainer"

    def build(self, like: Mapping[str, Tensor], *, l1_coefficient: float) -> Any:
        d_in, d_sae = like["W_enc"].shape
        return self.trainer(d_in, d_sae, like["W_enc"].dtype, l1_penalty=l1_coefficient)

    def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        d_sae, d_in = W_dec.shape
        ae = library("dictionary_learning").GatedAutoEncoder(d_in, d_sae, device=self.device)
        self.load(ae.to(dtype=f.dtype), {"W_dec": W_dec, "b_dec": b_dec})
        with torch.no_grad():
            return cast(Tensor, ae.decode(f))


__all__ = ["AutoEncoder", "AutoEncoderTopK", "BatchTopKSAE", "GatedAutoEncoder", "JumpReluAutoEncoder"]
