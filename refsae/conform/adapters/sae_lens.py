"""Adapters of SAELens (https://github.com/jbloomAus/SAELens, PyPI `sae-lens` 6.54.x), one per
architecture: each builds SAELens's training class with its default config and loads the case's
parameters with `load_state_dict`. Which library code each row calls, and why: conformance/sae_lens/
README.md; what the suite found: conformance/sae_lens/findings.toml."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, cast

import torch
from torch import Tensor

from refsae.conform.adapter import Domain
from refsae.conform.module_adapter import ModuleAdapter, backward_to, eye_and_zeros, library, pad

CANONICAL = {"W_enc": "W_enc", "b_enc": "b_enc", "W_dec": "W_dec", "b_dec": "b_dec"}
"""SAELens's parameters have the canonical names and layout (no transposes)."""


def _saes() -> Any:
    return library("sae_lens.saes")


def _step(sae: Any, x: Tensor) -> Any:
    """SAELens's training forward pass at step 0 (coefficients from `get_coefficients()`)."""
    saes = _saes()
    coefficients = {
        k: float(v.value) if isinstance(v, saes.sae.TrainCoefficientConfig) else float(v)
        for k, v in sae.get_coefficients().items()
    }
    step = saes.sae.TrainStepInput(
        sae_in=x, coefficients=coefficients, dead_neuron_mask=None, n_training_steps=0, is_logging_step=False
    )
    return sae.training_forward_pass(step)


def _params(W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor) -> dict[str, Tensor]:
    return {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}


class SAELensBase(ModuleAdapter):
    library: ClassVar[str] = "sae-lens"
    # SAEConfig.apply_b_dec_to_input, "Whether to apply decoder bias to the input before encoding"
    # (TopKSAEConfig's docstring, sae_lens/saes/topk_sae.py), default True.
    claims: ClassVar[Mapping[str, str]] = {"encode": "tied"}
    parameters: ClassVar[Mapping[str, str]] = CANONICAL
    cls: ClassVar[str] = ""
    """The SAELens training class of the target."""

    def sae(self, values: Mapping[str, Tensor], cls: str = "", **config: Any) -> Any:
        """`make`, loaded with `values`."""
        return self.load(self.make(values, cls, **config), values)

    def make(self, like: Mapping[str, Tensor], cls: str = "", **config: Any) -> Any:
        """SAELens class `cls` (default: the target's) with `clsConfig(**config)`, d_in and d_sae of
        `W_dec`, its dtype and device."""
        saes = _saes()
        cls = cls or self.cls
        W_dec = like["W_dec"]
        d_sae, d_in = W_dec.shape
        dtype = str(W_dec.dtype).removeprefix("torch.")
        config = {"d_in": d_in, "d_sae": d_sae, "dtype": dtype, "device": str(W_dec.device), **config}
        return getattr(saes, cls)(getattr(saes, f"{cls}Config")(**config))

    def load(self, module: Any, values: Mapping[str, Tensor]) -> Any:
        """SAELens's own loading path, `load_state_dict`; every parameter must be given."""
        state = {self.parameters[k]: v.detach().clone() for k, v in values.items()}
        missing, unexpected = module.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"topk_threshold"}:
            raise RuntimeError(f"{self.cls}: parameters missing {missing}, unexpected {unexpected}")
        return module

    def loss(self, module: Any, x: Tensor, **options: Any) -> Tensor:
        return cast(Tensor, _step(module, x).loss)

    def _decoder_sae(self, W_dec: Tensor, b_dec: Tensor) -> Any:
        zeros = torch.zeros(W_dec.shape[0], dtype=W_dec.dtype, device=W_dec.device)
        params = {"W_enc": W_dec.T.contiguous(), "W_dec": W_dec, "b_dec": b_dec}
        extra = {"b_gate": zeros, "r_mag": zeros, "b_mag": zeros} if self.cls == "GatedTrainingSAE" else {}
        if self.cls != "GatedTrainingSAE":
            params["b_enc"] = zeros
        return self.sae({**params, **extra}, **self._decode_config(W_dec.shape[0]))

    def _decode_config(self, d_sae: int) -> dict[str, Any]:
        return {}

    def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        """`decode(f)` of the training class (W_enc, b_enc are unused placeholders)."""
        with torch.no_grad():
            return cast(Tensor, self._decoder_sae(W_dec, b_dec).decode(f))


def _trainer(adapter: SAELensBase, d_sae: int, dtype: torch.dtype) -> Any:
    """An `SAETrainer` around a `StandardTrainingSAE` with `d_in = d_sae`, `W_enc = I` and zero biases
    (its `feature_acts` are `ReLU(x)`); `lr_end` is given because the trainer asserts it is set."""
    config = library("sae_lens.config")
    eye = torch.eye(d_sae, dtype=dtype)
    zeros = torch.zeros(d_sae, dtype=dtype)
    sae = adapter.sae(_params(eye, zeros, eye, zeros), "StandardTrainingSAE")
    cfg = config.SAETrainerConfig(total_training_samples=1, train_batch_size_samples=1, lr_end=3e-4)
    return library("sae_lens.training.sae_trainer").SAETrainer(cfg=cfg, sae=sae, data_provider=iter(()))


class StandardSAE(SAELensBase):
    """`StandardTrainingSAE`: ReLU SAE with SAELens's L1 penalty (`l1_coefficient`), and the metrics and
    dead-latent bookkeeping of `sae_lens.evals`, `sae_lens.synthetic.evals` and `SAETrainer`."""

    name: ClassVar[str] = "sae_lens"
    cls: ClassVar[str] = "StandardTrainingSAE"
    loss_rows: ClassVar[tuple[str, ...]] = ("total_loss", "loss_gradients")

    def build(self, like: Mapping[str, Tensor], *, l1_coefficient: float = 1.0) -> Any:
        return self.make(like, l1_coefficient=l1_coefficient)

    def _sae(self, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor) -> Any:
        return self.model(_params(W_enc, b_enc, W_dec, b_dec))

    def encode(self, x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> Tensor:
        W_dec = torch.zeros_like(W_enc.T)
        with torch.no_grad():
            return cast(Tensor, self._sae(W_enc, b_enc, W_dec, b_dec).encode(x))

    def forward(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor
    ) -> tuple[Tensor, Tensor]:
        sae = self._sae(W_enc, b_enc, W_dec, b_dec)
        with torch.no_grad():
            return sae.encode(x), sae(x)

    def _decoder_only(self, W_dec: Tensor) -> Any:
        zeros = torch.zeros(W_dec.shape[1], dtype=W_dec.dtype, device=W_dec.device)
        return self._sae(W_dec.T.contiguous(), torch.zeros_like(W_dec[:, 0]), W_dec, zeros), zeros

    def sparsity_loss(self, f: Tensor, W_dec: Tensor) -> Tensor:
        """`calculate_aux_loss(...)["l1_loss"]` with the l1 coefficient 1 (it reads f and W_dec only)."""
        sae, zeros = self._decoder_only(W_dec)
        step = _saes().sae.TrainStepInput(
            sae_in=zeros[None],
            coefficients={"l1": 1.0},
            dead_neuron_mask=None,
            n_training_steps=0,
            is_logging_step=False,
        )
        with torch.no_grad():
            losses = sae.calculate_aux_loss(step, feature_acts=f, hidden_pre=f, sae_out=zeros[None])
            return cast(Tensor, losses["l1_loss"])

    def renormalise_rows(self, W_dec: Tensor) -> Tensor:
        """`fold_W_dec_norm()`; the row reads the resulting `W_dec` (W_enc, b_enc take the folded norms)."""
        sae, _ = self._decoder_only(W_dec)
        sae.fold_W_dec_norm()
        return cast(Tensor, sae.W_dec.detach())

    def l0(self, f: Tensor) -> Tensor:
        calculator = library("sae_lens.synthetic.evals").L0Calculator()
        calculator.add_batch(f)
        return torch.tensor(calculator.compute(), dtype=torch.float64)

    def explained_variance(self, x: Tensor, x_hat: Tensor) -> Tensor:
        calculator = library("sae_lens.evals").ExplainedVarianceCalculator()
        calculator.add_batch(x_hat, x)
        return torch.tensor(calculator.compute(), dtype=torch.float64)

    def dead_by_steps(self, steps_since: Tensor, *, n: int) -> Tensor:
        trainer = _trainer(self, steps_since.shape[-1], torch.float64)
        trainer.cfg.dead_feature_window = n
        trainer.n_forward_passes_since_fired = steps_since.to(trainer.n_forward_passes_since_fired.dtype)
        return cast(Tensor, trainer.dead_neurons)

    def _fired_step(self, steps_since: Tensor, f: Tensor) -> Any:
        """A trainer after one `_train_step` on `f` (its SAE's `feature_acts` are `ReLU(f)`)."""
        trainer = _trainer(self, f.shape[-1], f.dtype)
        trainer.n_forward_passes_since_fired = steps_since.to(trainer.n_forward_passes_since_fired.dtype)
        trainer._train_step(sae=trainer.sae, sae_in=f)
        return trainer

    def fire_counts(self, f: Tensor) -> Tensor:
        trainer = self._fired_step(torch.zeros(f.shape[-1], dtype=torch.int64), f)
        return cast(Tensor, trainer.act_freq_scores.to(torch.int64))

    def update_steps_since_fired(self, steps_since: Tensor, f: Tensor) -> Tensor:
        trainer = self._fired_step(steps_since, f)
        return cast(Tensor, trainer.n_forward_passes_since_fired.to(torch.int64))


# SAELens divides by ‖W_dec_j‖ with no eps (`act_times_W_dec`); refsae requires eps > 0, and
# ‖W‖ + 1e-300 rounds to ‖W‖ for every norm the strategies draw.
NO_EPS = 1e-300


def _auxk_width(case: Any) -> bool:
    """SAELens fixes `k_aux = d_in // 2`; zero padding reaches the row's `k_aux` when d_in ≤ 2 k_aux + 1."""
    return bool(case.arrays["W_dec"].shape[-1] <= 2 * case.options["k_aux"] + 1)


class _TopKBase(SAELensBase):
    """What TopK and BatchTopK share: the training SAE with `k` set, its loss and gradients, AuxK."""

    eps: ClassVar[float] = NO_EPS
    # TopKTrainingSAEConfig: "rescale_acts_by_decoder_norm (bool): Treat the decoder as if it was already
    # normalized" (default True, sae_lens/saes/topk_sae.py; inherited by BatchTopKTrainingSAEConfig).
    claims: ClassVar[Mapping[str, str]] = {"encode": "tied", "decoder": "normalised"}
    domains: ClassVar[tuple[Domain, ...]] = (
        Domain(
            "l1_coefficient_zero",
            "SAELens's TopK and BatchTopK training losses have no sparsity term",
            ("topk_total_loss", "topk_loss_gradients", "batchtopk_total_loss", "batchtopk_loss_gradients"),
            lambda case: case.options["l1_coefficient"] == 0.0,
        ),
        Domain(
            "k_aux_at_most_dead",
            "calculate_topk_aux_acts's caller clamps k_aux to the number of dead latents first",
            ("auxk_latents",),
            lambda case: case.options["k_aux"] <= int(case.arrays["dead"].astype(bool).sum()),
        ),
        Domain(
            "k_aux_reachable_by_padding",
            "SAELens fixes k_aux = d_in // 2; zero padding reaches k_aux only where d_in <= 2 k_aux + 1",
            ("auxk_loss", "auxk_loss_gradients"),
            _auxk_width,
        ),
    )

    def _decode_config(self, d_sae: int) -> dict[str, Any]:
        return {"k": d_sae}

    def build(self, like: Mapping[str, Tensor], *, k: int, l1_coefficient: float = 0.0) -> Any:
        return self.make(like, k=k)

    def auxk_latents(self, z: Tensor, dead: Tensor, *, k_aux: int) -> Tensor:
        """`calculate_topk_aux_acts`, called by the loss with `k_aux` clamped to the dead count."""
        with torch.no_grad():
            return cast(Tensor, _saes().topk_sae.calculate_topk_aux_acts(k_aux, z, dead.to(torch.bool)))

    def _auxk(
        self, x: Tensor, x_hat: Tensor, z: Tensor, W_dec: Tensor, b_dec: Tensor, dead: Tensor, k_aux: int
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """`calculate_topk_aux_loss` on the row's arrays padded to `d_in' = max(d_in, 2 k_aux)` zero
        dimensions (conformance/sae_lens/README.md); the loss and the leaves the row reads."""
        d_sae, d_in = W_dec.shape
        width = max(d_in, 2 * k_aux)
        W_dec_p = pad(W_dec, width)
        zeros = torch.zeros(d_sae, dtype=W_dec.dtype, device=W_dec.device)
        sae = self.sae(_params(W_dec_p.T.contiguous(), zeros, W_dec_p, pad(b_dec, width)), k=d_sae)
        assert sae.cfg.d_in // 2 == k_aux  # SAELens's k_aux = sae_in.shape[-1] // 2
        x_hat_p = pad(x_hat, width).requires_grad_(True)
        z_leaf = z.clone().requires_grad_(True)
        loss = sae.calculate_topk_aux_loss(
            sae_in=pad(x, width), sae_out=x_hat_p, hidden_pre=z_leaf, dead_neuron_mask=dead.to(torch.bool)
        )
        return cast(Tensor, loss), {"z": z_leaf, "W_dec": sae.W_dec, "b_dec": sae.b_dec, "x_hat": x_hat_p}

    def auxk_loss(
        self, x: Tensor, x_hat: Tensor, z: Tensor, W_dec: Tensor, b_dec: Tensor, dead: Tensor, *, k_aux: int
    ) -> Tensor:
        loss, _ = self._auxk(x, x_hat, z, W_dec, b_dec, dead, k_aux)
        return loss.detach()

    def auxk_loss_gradients(
        self, x: Tensor, x_hat: Tensor, z: Tensor, W_dec: Tensor, b_dec: Tensor, dead: Tensor, *, k_aux: int
    ) -> dict[str, Tensor]:
        """Gradients to the leaves of `_auxk`, the padding removed."""
        grads = backward_to(*self._auxk(x, x_hat, z, W_dec, b_dec, dead, k_aux))
        d_in = x.shape[-1]
        trimmed = {"W_dec": grads["W_dec"][:, :d_in], "x_hat": grads["x_hat"][:, :d_in]}
        return {**grads, **trimmed, "b_dec": grads["b_dec"][:d_in]}


class TopKSAE(_TopKBase):
    """`TopKTrainingSAE` (default `rescale_acts_by_decoder_norm=True`) and its `TopK` activation."""

    name: ClassVar[str] = "sae_lens.topk"
    cls: ClassVar[str] = "TopKTrainingSAE"
    loss_rows: ClassVar[tuple[str, ...]] = ("topk_total_loss", "topk_loss_gradients")

    def topk(self, z: Tensor, *, k: int) -> Tensor:
        return cast(Tensor, _saes().topk_sae.TopK(k)(z))

    def decode_sparse(self, values: Tensor, indices: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        """The COO tensor SAELens's `TopK(use_sparse_activations=True)` builds, then `decode`."""
        batch, k = values.shape
        rows = torch.arange(batch, device=values.device).repeat_interleave(k)
        coo = torch.sparse_coo_tensor(
            torch.stack([rows, indices.flatten()]),
            values.flatten(),
            (batch, W_dec.shape[0]),
            check_invariants=True,
        )
        return self.decode(coo, W_dec, b_dec)


class BatchTopKSAE(_TopKBase):
    """`BatchTopKTrainingSAE` (default `rescale_acts_by_decoder_norm=True`), `BatchTopK`, and the
    `JumpReLUSAE` it is saved as for inference."""

    name: ClassVar[str] = "sae_lens.batchtopk"
    cls: ClassVar[str] = "BatchTopKTrainingSAE"
    loss_rows: ClassVar[tuple[str, ...]] = ("batchtopk_total_loss", "batchtopk_loss_gradients")
    # BatchTopKTrainingSAEConfig: "The threshold is updated using an exponential moving average of the
    # minimum positive activation value" (sae_lens/saes/batchtopk_sae.py).
    claims: ClassVar[Mapping[str, str]] = {**_TopKBase.claims, "update": "ema"}

    def batchtopk(self, z: Tensor, *, k: int) -> Tensor:
        return cast(Tensor, _saes().batchtopk_sae.BatchTopK(k)(z))

    def batchtopk_update_threshold(
        self, threshold: Tensor, f: Tensor, *, n_batches: int, beta: float
    ) -> Tensor:
        """`update_topk_threshold(f)` from the case's threshold with `topk_threshold_lr = 1 − β` (an EMA;
        `n_batches` sets nothing)."""
        d_sae = f.shape[-1]
        W = torch.zeros(d_sae, d_sae, dtype=f.dtype, device=f.device)
        sae = self.sae(_params(W, W[0], W, W[0]), k=d_sae, topk_threshold_lr=1.0 - beta)
        sae.topk_threshold = threshold.to(sae.topk_threshold.dtype).clone()  # float64 in SAELens
        sae.update_topk_threshold(f)
        return cast(Tensor, sae.topk_threshold)

    def batchtopk_inference(self, z: Tensor, threshold: Tensor) -> Tensor:
        """The `JumpReLUSAE` of `process_state_dict_for_saving_inference` (threshold = ones_like(b_enc) ·
        topk_threshold), with W_enc = I and zero biases: its pre-activations are `z`."""
        eye, zeros = eye_and_zeros(z)
        saes, dtype = _saes(), str(z.dtype).removeprefix("torch.")
        d_sae = z.shape[-1]
        cfg = saes.JumpReLUSAEConfig(d_in=d_sae, d_sae=d_sae, dtype=dtype, device=str(z.device))
        sae = saes.JumpReLUSAE(cfg)
        theta = torch.ones_like(zeros) * threshold
        sae.load_state_dict({"W_enc": eye, "b_enc": zeros, "W_dec": eye, "b_dec": zeros, "threshold": theta})
        with torch.no_grad():
            return cast(Tensor, sae.encode(z))


class JumpReLUSAE(SAELensBase):
    """`JumpReLUTrainingSAE` (default `jumprelu_sparsity_loss_mode="step"`, `jumprelu_ste_to_input=False`,
    `pre_act_loss_coefficient=None`) and its `JumpReLU` autograd function."""

    name: ClassVar[str] = "sae_lens.jumprelu"
    cls: ClassVar[str] = "JumpReLUTrainingSAE"
    parameters: ClassVar[Mapping[str, str]] = {**CANONICAL, "theta": "threshold"}
    loss_rows: ClassVar[tuple[str, ...]] = ("jumprelu_total_loss", "jumprelu_loss_gradients")
    # JumpReLUTrainingSAE: "The threshold is parameterized directly rather than as exp(log_threshold)"
    # (sae_lens/saes/jumprelu_sae.py).
    claims: ClassVar[Mapping[str, str]] = {**SAELensBase.claims, "parametrisation": "theta"}
    # The threshold parameter is float32 in every SAE dtype (conformance/sae_lens/README.md): detect
    # in float32.
    dtypes: ClassVar[tuple[str, ...]] = ("float32", "float64")
    working_precision: ClassVar[Mapping[str, tuple[str, str]]] = dict.fromkeys(
        ("jumprelu_total_loss", "jumprelu_loss_gradients"),
        ("float32", "the threshold and its gradient are kept in float32 (jumprelu_sae.py, `_apply`)"),
    )

    def build(self, like: Mapping[str, Tensor], *, l0_coefficient: float, bandwidth: float) -> Any:
        return self.make(like, l0_coefficient=l0_coefficient, jumprelu_bandwidth=bandwidth)

    def _decoder_sae(self, W_dec: Tensor, b_dec: Tensor) -> Any:
        zeros = torch.zeros(W_dec.shape[0], dtype=W_dec.dtype, device=W_dec.device)
        params = {**_params(W_dec.T.contiguous(), zeros, W_dec, b_dec), "theta": zeros + 1.0}
        return self.model(params, l0_coefficient=1.0, bandwidth=1.0)

    def jumprelu(self, z: Tensor, theta: Tensor) -> Tensor:
        bandwidth = _saes().JumpReLUTrainingSAEConfig.jumprelu_bandwidth  # unused by the forward pass
        return cast(Tensor, _saes().jumprelu_sae.JumpReLU.apply(z, theta, bandwidth, False))


class GatedSAE(SAELensBase):
    """`GatedTrainingSAE` (its L1 on ReLU(π_gate) and auxiliary reconstruction, `l1_coefficient`)."""

    name: ClassVar[str] = "sae_lens.gated"
    cls: ClassVar[str] = "GatedTrainingSAE"
    parameters: ClassVar[Mapping[str, str]] = {
        k: k for k in ("W_enc", "b_gate", "r_mag", "b_mag", "W_dec", "b_dec")
    }
    loss_rows: ClassVar[tuple[str, ...]] = ("gated_total_loss", "gated_loss_gradients")

    def build(self, like: Mapping[str, Tensor], *, l1_coefficient: float = 1.0) -> Any:
        return self.make(like, l1_coefficient=l1_coefficient)

    def gated_encode(
        self, x: Tensor, W_enc: Tensor, b_gate: Tensor, r_mag: Tensor, b_mag: Tensor, b_dec: Tensor
    ) -> tuple[Tensor, Tensor]:
        """`f`, and `π_gate` as the `hidden_pre` of the magnitude path given the gate's parameters
        (`r_mag = 0`, `b_mag = b_gate`): `sae_in @ (W_enc * exp(0)) + b_gate`, exactly."""
        W_dec = torch.zeros_like(W_enc.T)
        arrays = (W_enc, b_gate, r_mag, b_mag, W_dec, b_dec)
        params = dict(zip(self.parameters, arrays, strict=True))
        with torch.no_grad():
            f, _ = self.model(params).encode_with_hidden_pre(x)
            gate = self.model({**params, "r_mag": torch.zeros_like(r_mag), "b_mag": b_gate})
            _, pi_gate = gate.encode_with_hidden_pre(x)
        return f, pi_gate
