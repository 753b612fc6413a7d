"""Adapters of dictionary_learning (PyPI `dictionary-learning` 0.1.0, import `dictionary_learning`).

The library imports once torchvision is uninstalled (conformance/dictionary_learning/uninstall.txt).
Its trainers require `layer=` and `lm_name=` (any value: they are only recorded in their config) and
have large warm-ups, switched off here so that the loss at the step is the plain loss with the row's
coefficient: `warmup_steps=0`, `steps=2` only satisfy the learning-rate schedule's assertions (the lr
enters no row), `sparsity_warmup_steps=None` (the sparsity scale `get_sparsity_warmup_fn` is then 1.0
at every step). What the suite found is recorded in `conformance/dictionary_learning/findings.toml`.

## Target `dictionary_learning` (`AutoEncoder`, the standard ReLU SAE, and `StandardTrainer`)

- `encode`, `decode`, `forward`: `AutoEncoder(activation_dim, dict_size)`'s `encode`, `decode` and
  `forward(x, output_features=True)` (which returns `(x_hat, f)`, reordered to `(f, x_hat)`).
- `total_loss`, `loss_gradients`: `StandardTrainer.loss(x, step=1, logging=False)` (the loss tensor) and
  `loss.backward()`, with `l1_penalty=l1_coefficient`; `resample_steps` stays None.
- `sparsity_loss`, `l0`, `explained_variance`: `dictionary_learning.evaluation.evaluate(dictionary,
  iter([x]))`, the library's evaluation, which runs `dictionary(x, output_features=True)` and reports
  `"l1_loss"` (`f.norm(p=1, dim=-1).mean()`, StandardTrainer's L1 term), `"l0"` and
  `"frac_variance_explained"` as Python floats (returned as float64 tensors). The dictionary passed is
  a stand-in whose forward returns the row's arrays (`(x_hat, f)`; for `sparsity_loss` and `l0`,
  `x = x_hat = f`): the metric is computed by `evaluate` from them. Its `"l2_loss"`,
  `mean_b ‖x − x_hat‖₂` (a norm, not squared), is a metric of its own, not a reconstruction loss of
  LOSS-1..LOSS-3, and is not mapped to `reconstruction_loss`.
- `update_steps_since_fired`: `StandardTrainer.loss` with `resample_steps` set, which updates the
  trainer's `steps_since_active` counter from the batch's latents (`deads = (f == 0).all(dim=0)`).
  The counter is the row's `steps_since`; the latents are made the row's `f` by an `AutoEncoder` with
  `d_in = d_sae`, the identity as encoder weight and zero biases, whose `f` is `ReLU(f_row)` (ReLU
  changes no positive entry; a negative or zero one becomes 0, which does not fire under either rule).
  `steps=3, warmup_steps=1, resample_steps=2` satisfy the schedule's assertions.
- `adam_reset_latents`, `resample_anthropic`: `StandardTrainer.resample_neurons(deads, activations)`.
  Its draw (`t.multinomial(losses, n_resample, replacement=False)`) is replaced by the row's
  (`torch.multinomial` returns `0 … n_dead − 1` for the duration of the call, and `activations` are the
  dead latents' rows of `chosen`, in latent order: latent j gets `chosen_j`); the update and the
  reset of the Adam moments are the library's. The optimizer state (which torch creates lazily at
  the first step, and which the library indexes) is filled with the row's moments (zeros for
  `resample_anthropic`) before the call. The library hard-codes Anthropic's scale 0.2 and the
  uncentred input, so `resample_anthropic` is checked on cases with `encoder_scale=0.2,
  centred=False` only (`hypothesis.assume`). `resampled` is the library's `deads` mask after the call
  (it clears the dead latents beyond the number of inputs drawn: none here, one input per latent).
  For `adam_reset_latents` the activations are rows of ones (they feed only the parameter update,
  not the reset).

Not provided: `reconstruction_loss` (computed inline in `loss`, from the model's own `x_hat`);
`dead_by_steps` (the rule `steps_since_active > resample_steps / 2` is inlined
in `update`, after an optimizer step).

## Target `dictionary_learning.topk` (`trainers.top_k.AutoEncoderTopK` and `TopKTrainer`)

- `topk`: `AutoEncoderTopK(d_sae, d_sae, k).encode(z)` with the encoder set to the identity
  (`encoder.weight = I`, `encoder.bias = 0`, `b_dec = 0`), so that its pre-activations are `z`
  exactly (`z @ I` adds only exact zeros); the library has no standalone TopK function.
- `decode`: `AutoEncoderTopK.decode(f)` (dense latents).
- `topk_total_loss`, `topk_loss_gradients`: `TopKTrainer.loss(x, step=0, logging=False)` and
  `loss.backward()`, `k=k`. The threshold update starts after `threshold_start_step` (1000) and does
  not enter the loss; the AuxK term counts a latent dead after 10,000,000 tokens without firing, so
  in a fresh trainer it is 0 and the loss is the reconstruction term alone. The loss has no sparsity
  term: the rows are checked on cases with `l1_coefficient = 0` only (TOPK-6's default;
  `hypothesis.assume`).
- `remove_parallel_component`, `renormalise_rows`: `trainers.trainer.
  remove_gradient_parallel_to_decoder_directions` and `set_decoder_norm_to_unit_norm`, the helpers
  `TopKTrainer.update` calls after `backward()` and after the optimizer step.
- `geometric_median`: `trainers.top_k.geometric_median(x)` (defaults `max_iter=100`, `tol=1e-5`), which
  `TopKTrainer.update` uses to initialise `b_dec` at step 0.
- `auxk_loss`, `auxk_loss_gradients`: `TopKTrainer.get_auxiliary_loss(residual_BD, post_relu_acts_BF)`,
  as `TopKTrainer.loss` calls it: `residual_BD = (x − x_hat).detach()` (`loss` passes `e.detach()`,
  `e = x − x_hat`), `post_relu_acts_BF` the `post_relu_feat_acts_BF` that `AutoEncoderTopK.encode(z,
  return_topk=True)` returns with the identity encoder above (`ReLU(z)`, by the library). The dead
  mask is the trainer's `num_tokens_since_fired >= dead_feature_threshold`: the counter is set to
  `dead · dead_feature_threshold`; `top_k_aux` (an attribute, `activation_dim // 2` by default) is set
  to the row's `k_aux`. The decoder is the trainer's `ae.decoder` (`W_dec`); `b_dec` and `x_hat` get no
  gradient from it (their gradients are returned as zeros, as is every gradient when the library
  returns its constant 0 for "no dead latent"). `auxk_latents` is not provided: the auxiliary
  latents stay inside `get_auxiliary_loss`.
- dtypes: float32 is listed first, so that the engine detects this target's conventions in float32:
  `get_auxiliary_loss` computes in float32 whatever the dtype (a finding), so in float64 no AuxK
  convention would match. Both dtypes are checked.

## Target `dictionary_learning.batchtopk` (`trainers.batch_top_k.BatchTopKSAE`, `BatchTopKTrainer`)

- `batchtopk`, `batchtopk_inference`: `BatchTopKSAE(d_sae, d_sae, k).encode(z, use_threshold=False)`
  and `encode(z, use_threshold=True)` (with the `threshold` buffer set to the row's θ), with the
  identity encoder above.
- `geometric_median`: `BatchTopKTrainer.geometric_median(x)` (its own copy of TopK's function, the
  `b_dec` initialisation of `BatchTopKTrainer.update`).
- `batchtopk_update_threshold`: `BatchTopKTrainer.update_threshold(f)` with the estimate `ae.threshold`
  set to the row's θ and `threshold_beta = beta` (its `n_batches` has nothing to set: the library keeps
  no count of batches).
- `decode`, `batchtopk_total_loss`, `batchtopk_loss_gradients`, `auxk_loss`, `auxk_loss_gradients`: as
  for the TopK target, with `BatchTopKSAE`, `BatchTopKTrainer.loss(x, step=0)` and
  `BatchTopKTrainer.get_auxiliary_loss` (the same code as TopK's).
- The parallel-gradient removal and the renormalisation are the helpers of the TopK target, not
  repeated here.

## Target `dictionary_learning.jumprelu` (`JumpReluAutoEncoder`, `trainers.jumprelu.JumpReluTrainer`)

- `decode`: `JumpReluAutoEncoder.decode(f)` (`f @ W_dec + b_dec`).
- `jumprelu`: the training activation `trainers.jumprelu.JumpReLUFunction.apply(z, θ, bandwidth)`.
- `jumprelu_total_loss`, `jumprelu_loss_gradients`: `JumpReluTrainer.loss(x, step=1)` and
  `loss.backward()`, with `bandwidth=bandwidth` and the row's `l0_coefficient` as the trainer's
  `sparsity_penalty` (its sparsity coefficient; `target_l0` keeps its default 20). The threshold
  parameter is `θ` itself (`threshold`), so its gradient is `∂L/∂θ`. The trainer's
  `num_tokens_since_fired` counts tokens, not steps, and serves only logging: no dead-latent row.

## Target `dictionary_learning.gated` (`GatedAutoEncoder`, `trainers.gdm.GatedSAETrainer`)

- `decode`: `GatedAutoEncoder.decode(f)`.
- `gated_total_loss`, `gated_loss_gradients`: `GatedSAETrainer.loss(x, step=1)` and `loss.backward()`,
  `l1_penalty=l1_coefficient`.
- Not provided: `gated_encode`. `GatedAutoEncoder.encode(x, return_gate=True)` returns
  `ReLU(π_gate)`, not `π_gate`; no path of the library returns the negative gate pre-activations.

## Layouts

`nn.Linear` weights: `encoder.weight (d_sae, d_in) = W_enc.T`; `decoder.weight (d_in, d_sae) = W_dec.T`
(its COLUMNS are the dictionary vectors); the decoder bias is `AutoEncoder.bias`,
`AutoEncoderTopK.b_dec`, `BatchTopKSAE.b_dec`, `GatedAutoEncoder.decoder_bias` = `b_dec`;
`encoder.bias = b_enc`; Gated: `gate_bias = b_gate`, `mag_bias = b_mag`, `r_mag`. `JumpReluAutoEncoder`
keeps the canonical layout (`W_enc (d_in, d_sae)`, `W_dec (d_sae, d_in)`, `threshold = θ`). Gradients
come back transposed the same way. The library has no instance axis; the suite draws none
(`Adapter.instances = False`).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, cast
from unittest import mock

import torch

from refsae.conform.adapter import Adapter

Tensor = torch.Tensor
TRAINER = {"layer": 0, "lm_name": "conformance"}
"""The trainers' required `layer=` and `lm_name=` (recorded in their config only)."""


def _load(module: Any, values: Mapping[str, Tensor]) -> None:
    """Copy canonical-layout tensors into the module's parameters (named by `named_parameters`)."""
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name, value in values.items():
            params[name].copy_(value)


def _linear_params(
    W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, bias: str
) -> dict[str, Tensor]:
    return {"encoder.weight": W_enc.T, "encoder.bias": b_enc, "decoder.weight": W_dec.T, bias: b_dec}


def _grads(ae: Any, bias: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The gradients of an `nn.Linear` model's parameters, back in the canonical layout."""
    p = dict(ae.named_parameters())
    return (p["encoder.weight"].grad.T, p["encoder.bias"].grad, p["decoder.weight"].grad.T, p[bias].grad)


def _grad_or_zeros(t: Tensor) -> Tensor:
    """`t.grad`, or zeros where the library's loss did not reach `t` (no gradient is a zero gradient)."""
    return t.grad if t.grad is not None else torch.zeros_like(t)


def _identity_encoder(ae: Any, bias: str) -> Any:
    """`ae` (d_in = d_sae) with encoder weight I and zero biases: its pre-activations are its input."""
    d_sae = ae.dict_size
    dtype = ae.encoder.weight.dtype
    zeros = torch.zeros(d_sae, dtype=dtype)
    _load(ae, {"encoder.weight": torch.eye(d_sae, dtype=dtype), "encoder.bias": zeros, bias: zeros})
    return ae


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The library prints progress (`resampling n neurons`); keep the suite's output clean."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def _draw_in_order() -> Iterator[None]:
    """`torch.multinomial(weights, n, ...)` returns 0 … n − 1 (the row gives the draw, RES-16)."""

    def draw(input: Tensor, num_samples: Any, replacement: bool = False, **_: Any) -> Tensor:
        return torch.arange(int(num_samples), device=input.device)

    with mock.patch.object(torch, "multinomial", draw):
        yield


def _lib_trainers() -> Any:
    import dictionary_learning.trainers

    return dictionary_learning.trainers


class AutoEncoder(Adapter):
    """`dictionary_learning.AutoEncoder`, `StandardTrainer` and `evaluation.evaluate`."""

    name: ClassVar[str] = "dictionary_learning"
    library: ClassVar[str] = "dictionary-learning"
    # StandardTrainer's docstring: "Decoder column norms are constrained to 1." (the decoder is used
    # as is in the forward pass, with a unit-norm constraint: refsae's `constrained`).
    claims: ClassVar[Mapping[str, str]] = {"decoder": "constrained"}

    def _model(self, d_in: int, d_sae: int, dtype: torch.dtype) -> Any:
        from dictionary_learning import AutoEncoder as LibAutoEncoder

        return LibAutoEncoder(d_in, d_sae).to(device=self.device, dtype=dtype)

    def _trainer(self, d_in: int, d_sae: int, dtype: torch.dtype, **config: Any) -> Any:
        settings: dict[str, Any] = {"steps": 2, "warmup_steps": 0, "sparsity_warmup_steps": None}
        settings.update(config)
        trainer = _lib_trainers().StandardTrainer(
            activation_dim=d_in, dict_size=d_sae, device=self.device, **TRAINER, **settings
        )
        trainer.ae.to(dtype=dtype)
        return trainer

    def encode(self, x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> Tensor:
        ae = self._model(x.shape[-1], W_enc.shape[1], x.dtype)
        _load(ae, {"encoder.weight": W_enc.T, "encoder.bias": b_enc, "bias": b_dec})
        with torch.no_grad():
            return cast(Tensor, ae.encode(x))

    def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        ae = self._model(W_dec.shape[1], W_dec.shape[0], f.dtype)
        _load(ae, {"decoder.weight": W_dec.T, "bias": b_dec})
        with torch.no_grad():
            return cast(Tensor, ae.decode(f))

    def forward(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor
    ) -> tuple[Tensor, Tensor]:
        ae = self._model(x.shape[-1], W_enc.shape[1], x.dtype)
        _load(ae, _linear_params(W_enc, b_enc, W_dec, b_dec, "bias"))
        with torch.no_grad():
            x_hat, f = ae(x, output_features=True)
        return f, x_hat

    def _trainer_loss(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, l1_coefficient: float
    ) -> tuple[Any, Tensor]:
        d_in, d_sae = W_enc.shape
        trainer = self._trainer(d_in, d_sae, x.dtype, l1_penalty=l1_coefficient)
        _load(trainer.ae, _linear_params(W_enc, b_enc, W_dec, b_dec, "bias"))
        return trainer.ae, cast(Tensor, trainer.loss(x, step=1, logging=False))

    def total_loss(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, *, l1_coefficient: float
    ) -> Tensor:
        _, loss = self._trainer_loss(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient)
        return loss.detach()

    def loss_gradients(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, *, l1_coefficient: float
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        ae, loss = self._trainer_loss(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient)
        loss.backward()  # type: ignore[no-untyped-call]
        return _grads(ae, "bias")

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
        trainer = self._trainer(d_sae, d_sae, f.dtype, steps=3, warmup_steps=1, resample_steps=2)
        _identity_encoder(trainer.ae, "bias")
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
        trainer = self._trainer(d_in, d_sae, params["W_enc"].dtype)
        _load(
            trainer.ae,
            _linear_params(params["W_enc"], params["b_enc"], params["W_dec"], params["b_dec"], "bias"),
        )
        library = {
            "encoder.weight": "W_enc",
            "encoder.bias": "b_enc",
            "decoder.weight": "W_dec",
            "bias": "b_dec",
        }
        for name, p in trainer.ae.named_parameters():
            canonical = library[name]
            trainer.optimizer.state[p] = {
                "step": torch.tensor(1.0),
                **{
                    g: _to_linear(canonical, moments[g][canonical]).clone() for g in ("exp_avg", "exp_avg_sq")
                },
            }
        deads = dead.to(torch.bool).clone()
        with _quiet(), _draw_in_order():
            trainer.resample_neurons(deads, rows[deads])
        return trainer, deads

    def adam_reset_latents(
        self, exp_avg: Mapping[str, Tensor], exp_avg_sq: Mapping[str, Tensor], latents: Tensor
    ) -> dict[str, dict[str, Tensor]]:
        d_in, d_sae = exp_avg["W_enc"].shape
        dtype = exp_avg["W_enc"].dtype
        params = {
            "W_enc": torch.zeros(d_in, d_sae, dtype=dtype),
            "b_enc": torch.zeros(d_sae, dtype=dtype),
            "W_dec": torch.zeros(d_sae, d_in, dtype=dtype),
            "b_dec": torch.zeros(d_in, dtype=dtype),
        }
        ones = torch.ones(d_sae, d_in, dtype=dtype)
        trainer, _ = self._resample(params, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}, latents, ones)
        library = {
            "encoder.weight": "W_enc",
            "encoder.bias": "b_enc",
            "decoder.weight": "W_dec",
            "bias": "b_dec",
        }
        out: dict[str, dict[str, Tensor]] = {"exp_avg": {}, "exp_avg_sq": {}}
        for name, p in trainer.ae.named_parameters():
            for g in out:
                out[g][library[name]] = _to_linear(library[name], trainer.optimizer.state[p][g])
        return out

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
        zeros = {k: torch.zeros_like(v) for k, v in param.items()}
        trainer, deads = self._resample(param, {"exp_avg": zeros, "exp_avg_sq": zeros}, dead, chosen)
        ae = trainer.ae
        new = {
            "W_enc": ae.encoder.weight.detach().T,
            "b_enc": ae.encoder.bias.detach(),
            "W_dec": ae.decoder.weight.detach().T,
            "b_dec": ae.bias.detach(),
        }
        return {"param": new, "resampled": deads}


def _to_linear(name: str, t: Tensor) -> Tensor:
    """A canonical tensor in the `nn.Linear` layout (and back: the transpose is its own inverse)."""
    return t.T if name in ("W_enc", "W_dec") else t


class _TopKFamily(Adapter):
    """What the TopK and BatchTopK targets share: the model with `k`, the trainer's loss and AuxK."""

    library: ClassVar[str] = "dictionary-learning"
    # float32 first: the engine detects conventions in the first dtype, and `get_auxiliary_loss`
    # computes the AuxK loss in float32 whatever the dtype (`.float()`), so that in float64 no
    # convention matches (conformance/dictionary_learning/findings.toml); both dtypes are checked.
    dtypes: ClassVar[tuple[str, ...]] = ("float32", "float64")
    model_class: ClassVar[str] = ""
    trainer_class: ClassVar[str] = ""

    def _model(self, d_in: int, d_sae: int, k: int, dtype: torch.dtype) -> Any:
        return self._cls()(d_in, d_sae, k).to(device=self.device, dtype=dtype)

    def _cls(self) -> Any:
        if self.model_class == "AutoEncoderTopK":
            from dictionary_learning.trainers.top_k import AutoEncoderTopK as cls
        else:
            from dictionary_learning.trainers.batch_top_k import BatchTopKSAE as cls
        return cls

    def _identity(self, d_sae: int, k: int, dtype: torch.dtype) -> Any:
        return _identity_encoder(self._model(d_sae, d_sae, k, dtype), "b_dec")

    def _post_relu(self, z: Tensor) -> Tensor:
        """The model's `post_relu_feat_acts_BF` of pre-activations `z` (identity encoder)."""
        ae = self._identity(z.shape[-1], 1, z.dtype)
        if self.model_class == "AutoEncoderTopK":
            return cast(Tensor, ae.encode(z, return_topk=True)[3])
        return cast(Tensor, ae.encode(z, return_active=True, use_threshold=False)[2])

    def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        ae = self._model(W_dec.shape[1], W_dec.shape[0], 1, f.dtype)
        _load(ae, {"decoder.weight": W_dec.T, "b_dec": b_dec})
        with torch.no_grad():
            return cast(Tensor, ae.decode(f))

    def _trainer(self, d_in: int, d_sae: int, k: int, dtype: torch.dtype) -> Any:
        trainer = getattr(_lib_trainers(), self.trainer_class)(
            steps=2, activation_dim=d_in, dict_size=d_sae, k=k, warmup_steps=0, device=self.device, **TRAINER
        )
        trainer.ae.to(dtype=dtype)
        return trainer

    def _trainer_loss(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, k: int, l1: float
    ) -> tuple[Any, Tensor]:
        from hypothesis import assume

        assume(l1 == 0.0)  # the TopK losses have no sparsity term (module docstring)
        d_in, d_sae = W_enc.shape
        trainer = self._trainer(d_in, d_sae, k, x.dtype)
        _load(trainer.ae, _linear_params(W_enc, b_enc, W_dec, b_dec, "b_dec"))
        return trainer.ae, cast(Tensor, trainer.loss(x, step=0, logging=False))

    def _loss(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, k: int, l1: float
    ) -> Tensor:
        _, loss = self._trainer_loss(x, W_enc, b_enc, W_dec, b_dec, k, l1)
        return loss.detach()

    def _gradients(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, k: int, l1: float
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        ae, loss = self._trainer_loss(x, W_enc, b_enc, W_dec, b_dec, k, l1)
        loss.backward()  # type: ignore[no-untyped-call]
        return _grads(ae, "b_dec")

    # --- AuxK: the trainer's get_auxiliary_loss on the row's residual and pre-activations ---

    def _auxk(
        self, x: Tensor, x_hat: Tensor, z: Tensor, W_dec: Tensor, b_dec: Tensor, dead: Tensor, k_aux: int
    ) -> tuple[Tensor, Any]:
        d_sae, d_in = W_dec.shape
        trainer = self._trainer(d_in, d_sae, 1, x.dtype)
        _load(trainer.ae, {"decoder.weight": W_dec.T, "b_dec": b_dec})
        trainer.top_k_aux = k_aux
        trainer.num_tokens_since_fired = dead.to(torch.long) * trainer.dead_feature_threshold
        residual = (x - x_hat).detach()  # as TopKTrainer.loss passes e.detach(), e = x − x_hat
        return cast(Tensor, trainer.get_auxiliary_loss(residual, self._post_relu(z))), trainer.ae

    def auxk_loss(
        self, x: Tensor, x_hat: Tensor, z: Tensor, W_dec: Tensor, b_dec: Tensor, dead: Tensor, *, k_aux: int
    ) -> Tensor:
        with torch.no_grad():
            loss, _ = self._auxk(x, x_hat, z, W_dec, b_dec, dead, k_aux)
        return loss

    def auxk_loss_gradients(
        self, x: Tensor, x_hat: Tensor, z: Tensor, W_dec: Tensor, b_dec: Tensor, dead: Tensor, *, k_aux: int
    ) -> dict[str, Tensor]:
        z = z.clone().requires_grad_(True)
        x_hat = x_hat.clone().requires_grad_(True)
        loss, ae = self._auxk(x, x_hat, z, W_dec, b_dec, dead, k_aux)
        if loss.requires_grad:  # the library's "no dead latent" 0 is a constant
            loss.backward()  # type: ignore[no-untyped-call]
        return {
            "z": _grad_or_zeros(z),
            "W_dec": _grad_or_zeros(ae.decoder.weight).T,
            "b_dec": _grad_or_zeros(ae.b_dec),
            "x_hat": _grad_or_zeros(x_hat),
        }


class AutoEncoderTopK(_TopKFamily):
    """`dictionary_learning.trainers.top_k.AutoEncoderTopK` and `TopKTrainer`."""

    name: ClassVar[str] = "dictionary_learning.topk"
    model_class: ClassVar[str] = "AutoEncoderTopK"
    trainer_class: ClassVar[str] = "TopKTrainer"

    def topk(self, z: Tensor, *, k: int) -> Tensor:
        ae = self._identity(z.shape[-1], k, z.dtype)
        with torch.no_grad():
            return cast(Tensor, ae.encode(z))

    def topk_total_loss(
        self,
        x: Tensor,
        W_enc: Tensor,
        b_enc: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        *,
        k: int,
        l1_coefficient: float,
    ) -> Tensor:
        return self._loss(x, W_enc, b_enc, W_dec, b_dec, k, l1_coefficient)

    def topk_loss_gradients(
        self,
        x: Tensor,
        W_enc: Tensor,
        b_enc: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        *,
        k: int,
        l1_coefficient: float,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self._gradients(x, W_enc, b_enc, W_dec, b_dec, k, l1_coefficient)

    def geometric_median(self, x: Tensor) -> Tensor:
        from dictionary_learning.trainers.top_k import geometric_median

        return cast(Tensor, geometric_median(x))

    def remove_parallel_component(self, W_dec: Tensor, grad_W_dec: Tensor) -> Tensor:
        from dictionary_learning.trainers.trainer import remove_gradient_parallel_to_decoder_directions

        d_sae, d_in = W_dec.shape
        out = remove_gradient_parallel_to_decoder_directions(
            W_dec.T.clone(), grad_W_dec.T.clone(), d_in, d_sae
        )
        return cast(Tensor, out).T

    def renormalise_rows(self, W_dec: Tensor) -> Tensor:
        from dictionary_learning.trainers.trainer import set_decoder_norm_to_unit_norm

        d_sae, d_in = W_dec.shape
        param = torch.nn.Parameter(W_dec.T.clone())
        return cast(Tensor, set_decoder_norm_to_unit_norm(param, d_in, d_sae)).T.detach()


class BatchTopKSAE(_TopKFamily):
    """`dictionary_learning.trainers.batch_top_k.BatchTopKSAE` and `BatchTopKTrainer`."""

    name: ClassVar[str] = "dictionary_learning.batchtopk"
    model_class: ClassVar[str] = "BatchTopKSAE"
    trainer_class: ClassVar[str] = "BatchTopKTrainer"

    def batchtopk(self, z: Tensor, *, k: int) -> Tensor:
        ae = self._identity(z.shape[-1], k, z.dtype)
        with torch.no_grad():
            return cast(Tensor, ae.encode(z, use_threshold=False))

    def geometric_median(self, x: Tensor) -> Tensor:
        from dictionary_learning.trainers.batch_top_k import BatchTopKTrainer

        return cast(Tensor, BatchTopKTrainer.geometric_median(x))

    def batchtopk_update_threshold(
        self, threshold: Tensor, f: Tensor, *, n_batches: int, beta: float
    ) -> Tensor:
        d_sae = f.shape[-1]
        trainer = self._trainer(d_sae, d_sae, 1, f.dtype)
        trainer.threshold_beta = beta
        trainer.ae.threshold = threshold.clone()
        trainer.update_threshold(f)
        return cast(Tensor, trainer.ae.threshold)

    def batchtopk_inference(self, z: Tensor, threshold: Tensor) -> Tensor:
        ae = self._identity(z.shape[-1], 1, z.dtype)
        ae.threshold = threshold.clone()
        with torch.no_grad():
            return cast(Tensor, ae.encode(z, use_threshold=True))

    def batchtopk_total_loss(
        self,
        x: Tensor,
        W_enc: Tensor,
        b_enc: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        *,
        k: int,
        l1_coefficient: float,
    ) -> Tensor:
        return self._loss(x, W_enc, b_enc, W_dec, b_dec, k, l1_coefficient)

    def batchtopk_loss_gradients(
        self,
        x: Tensor,
        W_enc: Tensor,
        b_enc: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        *,
        k: int,
        l1_coefficient: float,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self._gradients(x, W_enc, b_enc, W_dec, b_dec, k, l1_coefficient)


JUMP = ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")


class JumpReluAutoEncoder(Adapter):
    """`dictionary_learning.JumpReluAutoEncoder`, `JumpReLUFunction` and `JumpReluTrainer`."""

    name: ClassVar[str] = "dictionary_learning.jumprelu"
    library: ClassVar[str] = "dictionary-learning"

    def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        from dictionary_learning import JumpReluAutoEncoder as LibJumpRelu

        d_sae, d_in = W_dec.shape
        ae = LibJumpRelu(d_in, d_sae, device=self.device).to(dtype=f.dtype)
        _load(ae, {"W_dec": W_dec, "b_dec": b_dec})
        with torch.no_grad():
            return cast(Tensor, ae.decode(f))

    def jumprelu(self, z: Tensor, theta: Tensor) -> Tensor:
        from dictionary_learning.trainers.jumprelu import JumpReLUFunction

        bandwidth = 0.001  # JumpReluTrainer's default; the forward pass does not use it
        with torch.no_grad():
            return cast(Tensor, JumpReLUFunction.apply(z, theta, bandwidth))

    def _trainer_loss(
        self,
        x: Tensor,
        W_enc: Tensor,
        b_enc: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        theta: Tensor,
        l0_coefficient: float,
        bandwidth: float,
    ) -> tuple[Any, Tensor]:
        d_in, d_sae = W_enc.shape
        trainer = _lib_trainers().JumpReluTrainer(
            steps=2,
            activation_dim=d_in,
            dict_size=d_sae,
            bandwidth=bandwidth,
            sparsity_penalty=l0_coefficient,
            warmup_steps=0,
            sparsity_warmup_steps=None,
            device=self.device,
            **TRAINER,
        )
        trainer.ae.to(dtype=x.dtype)
        _load(trainer.ae, dict(zip(JUMP, (W_enc, b_enc, W_dec, b_dec, theta), strict=True)))
        return trainer.ae, cast(Tensor, trainer.loss(x, step=1, logging=False))

    def jumprelu_total_loss(
        self,
        x: Tensor,
        W_enc: Tensor,
        b_enc: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        theta: Tensor,
        *,
        l0_coefficient: float,
        bandwidth: float,
    ) -> Tensor:
        _, loss = self._trainer_loss(x, W_enc, b_enc, W_dec, b_dec, theta, l0_coefficient, bandwidth)
        return loss.detach()

    def jumprelu_loss_gradients(
        self,
        x: Tensor,
        W_enc: Tensor,
        b_enc: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        theta: Tensor,
        *,
        l0_coefficient: float,
        bandwidth: float,
    ) -> dict[str, Tensor]:
        ae, loss = self._trainer_loss(x, W_enc, b_enc, W_dec, b_dec, theta, l0_coefficient, bandwidth)
        loss.backward()  # type: ignore[no-untyped-call]
        return {name: _grad_or_zeros(getattr(ae, name)) for name in JUMP}


GATED = ("W_enc", "b_gate", "r_mag", "b_mag", "W_dec", "b_dec")
GATED_LIBRARY = ("encoder.weight", "gate_bias", "r_mag", "mag_bias", "decoder.weight", "decoder_bias")


class GatedAutoEncoder(Adapter):
    """`dictionary_learning.GatedAutoEncoder` and `GatedSAETrainer`."""

    name: ClassVar[str] = "dictionary_learning.gated"
    library: ClassVar[str] = "dictionary-learning"

    def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        from dictionary_learning import GatedAutoEncoder as LibGated

        d_sae, d_in = W_dec.shape
        ae = LibGated(d_in, d_sae, device=self.device).to(dtype=f.dtype)
        _load(ae, {"decoder.weight": W_dec.T, "decoder_bias": b_dec})
        with torch.no_grad():
            return cast(Tensor, ae.decode(f))

    def _trainer_loss(
        self, x: Tensor, params: tuple[Tensor, ...], l1_coefficient: float
    ) -> tuple[Any, Tensor]:
        d_in, d_sae = params[0].shape
        trainer = _lib_trainers().GatedSAETrainer(
            steps=2,
            activation_dim=d_in,
            dict_size=d_sae,
            l1_penalty=l1_coefficient,
            warmup_steps=0,
            sparsity_warmup_steps=None,
            device=self.device,
            **TRAINER,
        )
        trainer.ae.to(dtype=x.dtype)
        values = {lib: _to_linear(name, p) for name, lib, p in zip(GATED, GATED_LIBRARY, params, strict=True)}
        _load(trainer.ae, values)
        return trainer.ae, cast(Tensor, trainer.loss(x, step=1, logging=False))

    def gated_total_loss(
        self,
        x: Tensor,
        W_enc: Tensor,
        b_gate: Tensor,
        r_mag: Tensor,
        b_mag: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        *,
        l1_coefficient: float,
    ) -> Tensor:
        _, loss = self._trainer_loss(x, (W_enc, b_gate, r_mag, b_mag, W_dec, b_dec), l1_coefficient)
        return loss.detach()

    def gated_loss_gradients(
        self,
        x: Tensor,
        W_enc: Tensor,
        b_gate: Tensor,
        r_mag: Tensor,
        b_mag: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        *,
        l1_coefficient: float,
    ) -> dict[str, Tensor]:
        ae, loss = self._trainer_loss(x, (W_enc, b_gate, r_mag, b_mag, W_dec, b_dec), l1_coefficient)
        loss.backward()  # type: ignore[no-untyped-call]
        p = dict(ae.named_parameters())
        return {
            name: _to_linear(name, _grad_or_zeros(p[lib]))
            for name, lib in zip(GATED, GATED_LIBRARY, strict=True)
        }


__all__ = [
    "AutoEncoder",
    "AutoEncoderTopK",
    "BatchTopKSAE",
    "GatedAutoEncoder",
    "JumpReluAutoEncoder",
]
