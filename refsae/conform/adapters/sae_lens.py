"""Adapters of SAELens (PyPI `sae-lens` 6.54.x, import `sae_lens`), one per SAE architecture (CONF-6).

Every target builds SAELens's **training** class with its default config (`apply_b_dec_to_input=True`,
`normalize_activations="none"`, the architecture's own defaults, e.g. `rescale_acts_by_decoder_norm=True`
for TopK and BatchTopK), only `d_in`, `d_sae`, `dtype`, `device` and the coefficients named by a row's
options set, and loads the case's parameters with `load_state_dict` (SAELens's own loading path).
Losses go through `training_forward_pass(TrainStepInput(sae_in=x, coefficients=…, dead_neuron_mask=None,
n_training_steps=0, is_logging_step=False)).loss` (no dead mask: the AuxK term is 0 there; the `auxk_*`
rows call it directly), gradients through `.backward()` on it, read from the parameters' `.grad`. What
the suite found is recorded in `conformance/sae_lens/findings.toml`.

Layouts: SAELens's parameters have the canonical layout (`W_enc (d_in, d_sae)`, `W_dec (d_sae, d_in)`,
rows = dictionary vectors), so no transposes. Unused parameters of a row (e.g. `W_dec` for `encode`)
are zeros. No instance axis: the cases are drawn without one (`instances = False`).

## `sae_lens` (`StandardTrainingSAE`, ReLU, `l1_coefficient`)

- `encode`, `decode`, `forward`: the SAE's `encode`, `decode` and `forward` (`(encode(x), sae(x))`).
- `sparsity_loss`: `calculate_aux_loss(...)["l1_loss"]` with the `l1` coefficient 1 and `feature_acts=f`
  (it reads `f` and `W_dec` only).
- `total_loss`, `loss_gradients`: the training loss with `l1_coefficient`, and its backward.
- `renormalise_rows`: `fold_W_dec_norm()`, SAELens's operation that makes the decoder rows unit-norm
  (`W_dec / W_dec.norm(dim=-1).clamp(min=1e-8)`, folding the norms into `W_enc` and `b_enc`, which the
  row does not read); the output is the resulting `W_dec`.
- `l0`: `sae_lens.synthetic.evals.L0Calculator` (`add_batch(f)`, `compute()`, a Python float).
- `explained_variance`: `sae_lens.evals.ExplainedVarianceCalculator` (`add_batch(x_hat, x)`,
  `compute()`), the explained variance of `run_evals` and of the synthetic-data evaluation.
- `dead_by_steps`: the `SAETrainer.dead_neurons` property (`n_forward_passes_since_fired >
  dead_feature_window`) of a trainer whose counter is the row's `steps_since` (in the trainer's own
  float32 buffer) and whose `dead_feature_window` is `n`.
- `fire_counts`, `update_steps_since_fired`: one `SAETrainer._train_step`, which updates
  `act_freq_scores` (from zeros: the fire counts) and `n_forward_passes_since_fired` (from the row's
  `steps_since`) from the batch's `feature_acts` (`.bool()`: non-zero fires). The trainer's SAE has
  `d_in = d_sae`, `W_enc = I` and zero biases, so that its `feature_acts` are `ReLU(f)` for the input
  `f` (`f @ I` adds only exact zeros; ReLU changes no positive entry, and a zero or negative one does
  not fire under DEAD-1 either). The step's backward pass and Adam step change nothing that is read.

Not provided: `reconstruction_loss` (computed inline in `training_forward_pass`); `decoder_directions`;
`remove_parallel_component` (SAELens's trainer does not remove the parallel gradient and has no
function for it); `dead_fraction` (`DeadLatentsCalculator` takes latents, not fire counts);
`dead_by_fire_fraction`; `adam_step` (torch's `Adam`); `training_step` (`SAETrainer._train_step` also
clips the gradient norm to 1 and steps a learning-rate schedule, and has no Adam state of its own to
load: outside the row); resampling and `b_dec` initialisation (SAELens 6 has neither).

## `sae_lens.topk` (`TopKTrainingSAE`, `TopK`) and `sae_lens.batchtopk` (`BatchTopKTrainingSAE`, `BatchTopK`)

- `decode`: the training SAE's `decode` (with `rescale_acts_by_decoder_norm`: `f / ‖W_dec_j‖ @ W_dec`).
- `topk`: `TopK(k)(z)`; `batchtopk`: `BatchTopK(k)(z)`.
- `decode_sparse` (TopK): `(values, indices)` become the COO tensor that SAELens's own
  `TopK(use_sparse_activations=True)` builds (row index repeated k times, the indices, the values),
  which `decode` multiplies sparsely.
- `topk_total_loss`, `topk_loss_gradients`, `batchtopk_total_loss`, `batchtopk_loss_gradients`: the
  training loss with `k` and its backward. SAELens's TopK losses have no sparsity term, i.e. they are
  the rows at `l1_coefficient = 0` only: cases with another coefficient are skipped
  (`hypothesis.assume`).
- `auxk_latents`: `topk_sae.calculate_topk_aux_acts(k_aux, z, dead)`, the helper of the AuxK loss. Its
  caller clamps `k_aux` to the number of dead latents before calling it (the helper then selects
  `-inf` entries), so cases with `k_aux > n_dead` are skipped.
- `auxk_loss`, `auxk_loss_gradients`: `calculate_topk_aux_loss(sae_in=x, sae_out=x_hat, hidden_pre=z,
  dead_neuron_mask=dead)` (`aux_loss_coefficient` 1, the default) and its backward to `z`, `W_dec`,
  `b_dec`, `x_hat` (no graph to a tensor: a zero gradient; no dead latent: the loss is a constant 0).
  SAELens fixes `k_aux = d_in // 2`. To give it the row's `k_aux`, `x`, `x_hat`, `b_dec` and the columns
  of `W_dec` are padded with zero dimensions up to `d_in' = max(d_in, 2 k_aux)`, where `d_in' // 2 =
  k_aux` (the library's loss sums the squared error over `d_in`, and the padded dimensions add exact
  zeros to every sum and norm); the padding is removed from the gradients. Cases with `d_in > 2 k_aux
  + 1`, where no padding can give the row's `k_aux`, are skipped.
- `batchtopk_update_threshold`: the case's threshold goes into the `topk_threshold` buffer (float64 in
  SAELens) and `update_topk_threshold(f)` is called with `topk_threshold_lr = 1 − β`. SAELens's update
  is an EMA (BTOPK-5 `update="ema"`); it has no running mean (`n_batches` sets nothing).
- `batchtopk_inference`: SAELens saves a BatchTopK SAE as a `JumpReLUSAE` whose `threshold` is
  `topk_threshold` repeated per latent (`process_state_dict_for_saving_inference`); its `encode` is run
  with `W_enc = I`, `b_enc = b_dec = 0` (`d_in = d_sae`), so that its pre-activations are exactly `z`.

## `sae_lens.jumprelu` (`JumpReLUTrainingSAE`, `JumpReLU`)

- `decode`; `jumprelu`: SAELens's `JumpReLU` autograd function on `(z, θ)` (the training activation).
- `jumprelu_total_loss`, `jumprelu_loss_gradients`: the training loss (`jumprelu_sparsity_loss_mode=
  "step"`, `jumprelu_ste_to_input=False`, `pre_act_loss_coefficient=None`, the defaults) with
  `l0_coefficient` and `jumprelu_bandwidth = bandwidth`, and its backward. The `threshold` parameter
  is `θ` itself in SAELens 6.x (`log_threshold` survives only in the loader of old checkpoints), so
  the `threshold` output is the gradient of `θ`. SAELens keeps `threshold` in float32 whatever the SAE
  dtype (`JumpReLUTrainingSAE._apply`): the target lists float32 first, so that conventions are
  detected in the dtype the whole SAE has.

## `sae_lens.gated` (`GatedTrainingSAE`, `l1_coefficient`)

- `decode`; `gated_total_loss`, `gated_loss_gradients`: the training loss and its backward.
- `gated_encode`: SAELens returns `f` and the *magnitude* pre-activation, not `π_gate`; `π_gate` is the
  `hidden_pre` of the same `GatedTrainingSAE` with the magnitude path given the gate's parameters
  (`r_mag = 0`, `b_mag = b_gate`): `sae_in @ (W_enc * exp(0)) + b_gate`, exactly `sae_in @ W_enc + b_gate`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import torch
from torch import Tensor

from refsae.conform.adapter import Adapter

Params = Mapping[str, Tensor]


@functools.cache
def _saes() -> Any:
    """`sae_lens.saes`, imported on first use."""
    import sae_lens.saes

    return sae_lens.saes


def _skip_unless(condition: bool) -> None:
    """Skip the case (`hypothesis.assume`) unless `condition`: a choice SAELens fixes (module docstring)."""
    from hypothesis import assume

    assume(condition)


def _build(cls: str, params: Params, **config: Any) -> Any:
    """SAELens training class `cls` (config `clsConfig`, d_in and d_sae of `W_dec`, its dtype and device)
    with `params` loaded by `load_state_dict`."""
    saes = _saes()
    like = params["W_dec"]
    d_sae, d_in = like.shape
    dtype = str(like.dtype).removeprefix("torch.")
    cfg = getattr(saes, f"{cls}Config")(
        d_in=d_in, d_sae=d_sae, dtype=dtype, device=str(like.device), **config
    )
    sae = getattr(saes, cls)(cfg)
    missing, unexpected = sae.load_state_dict(
        {k: v.detach().clone() for k, v in params.items()}, strict=False
    )
    if unexpected or set(missing) - {"topk_threshold"}:
        raise RuntimeError(f"{cls}: parameters missing {missing}, unexpected {unexpected}")
    return sae


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


def _grads(sae: Any, x: Tensor, names: tuple[str, ...]) -> dict[str, Tensor]:
    """Backward of the training loss; the `.grad` of each named parameter."""
    _step(sae, x).loss.backward()
    return {name: cast(Tensor, getattr(sae, name).grad) for name in names}


def _sae_params(W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor) -> dict[str, Tensor]:
    return {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}


def _grad_or_zeros(t: Tensor) -> Tensor:
    """`t.grad`, or zeros where the loss has no graph to `t` (its gradient is 0)."""
    return t.grad if t.grad is not None else torch.zeros_like(t)


def _trainer(d_sae: int, dtype: torch.dtype) -> Any:
    """An `SAETrainer` around a `StandardTrainingSAE` with `d_in = d_sae`, `W_enc = I` and zero biases
    (its `feature_acts` are `ReLU(x)`); `lr_end` is given because the trainer asserts it is set."""
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    eye = torch.eye(d_sae, dtype=dtype)
    zeros = torch.zeros(d_sae, dtype=dtype)
    sae = _build("StandardTrainingSAE", _sae_params(eye, zeros, eye, zeros))
    cfg = SAETrainerConfig(total_training_samples=1, train_batch_size_samples=1, lr_end=3e-4)
    return SAETrainer(cfg=cfg, sae=sae, data_provider=iter(()))


GRADS = ("W_enc", "b_enc", "W_dec", "b_dec")


class _SAELens(Adapter):
    library: ClassVar[str] = "sae-lens"
    # SAEConfig.apply_b_dec_to_input, "Whether to apply decoder bias to the input before encoding"
    # (TopKSAEConfig's docstring, sae_lens/saes/topk_sae.py), default True.
    claims: ClassVar[Mapping[str, str]] = {"encode": "tied"}
    cls: ClassVar[str] = ""
    """The SAELens training class of `decode`."""

    def _decoder_sae(self, W_dec: Tensor, b_dec: Tensor) -> Any:
        zeros = torch.zeros(W_dec.shape[0], dtype=W_dec.dtype, device=W_dec.device)
        params = {"W_enc": W_dec.T.contiguous(), "W_dec": W_dec, "b_dec": b_dec}
        extra = {"b_gate": zeros, "r_mag": zeros, "b_mag": zeros} if self.cls == "GatedTrainingSAE" else {}
        if self.cls != "GatedTrainingSAE":
            params["b_enc"] = zeros
        return _build(self.cls, {**params, **extra}, **self._decode_config(W_dec.shape[0]))

    def _decode_config(self, d_sae: int) -> dict[str, Any]:
        return {}

    def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        """`decode(f)` of the training class (W_enc, b_enc are unused placeholders)."""
        with torch.no_grad():
            return cast(Tensor, self._decoder_sae(W_dec, b_dec).decode(f))


class StandardSAE(_SAELens):
    """`StandardTrainingSAE`: ReLU SAE with SAELens's L1 penalty (`l1_coefficient`), and the metrics and
    dead-latent bookkeeping of `sae_lens.evals`, `sae_lens.synthetic.evals` and `SAETrainer`."""

    name: ClassVar[str] = "sae_lens"
    cls: ClassVar[str] = "StandardTrainingSAE"

    def _sae(self, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, l1: float = 1.0) -> Any:
        return _build(self.cls, _sae_params(W_enc, b_enc, W_dec, b_dec), l1_coefficient=l1)

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

    def sparsity_loss(self, f: Tensor, W_dec: Tensor) -> Tensor:
        """`calculate_aux_loss(...)["l1_loss"]` with the l1 coefficient 1 (it reads f and W_dec only)."""
        zeros = torch.zeros(W_dec.shape[1], dtype=W_dec.dtype, device=W_dec.device)
        sae = self._sae(W_dec.T.contiguous(), torch.zeros_like(W_dec[:, 0]), W_dec, zeros)
        step = _saes().sae.TrainStepInput(
            sae_in=zeros[None],
            coefficients={"l1": 1.0},
            dead_neuron_mask=None,
            n_training_steps=0,
            is_logging_step=False,
        )
        with torch.no_grad():
            return cast(
                Tensor,
                sae.calculate_aux_loss(step, feature_acts=f, hidden_pre=f, sae_out=zeros[None])["l1_loss"],
            )

    def total_loss(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, *, l1_coefficient: float
    ) -> Tensor:
        with torch.no_grad():
            return cast(Tensor, _step(self._sae(W_enc, b_enc, W_dec, b_dec, l1_coefficient), x).loss)

    def loss_gradients(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, *, l1_coefficient: float
    ) -> dict[str, Tensor]:
        return _grads(self._sae(W_enc, b_enc, W_dec, b_dec, l1_coefficient), x, GRADS)

    def renormalise_rows(self, W_dec: Tensor) -> Tensor:
        """`fold_W_dec_norm()`; the row reads the resulting `W_dec` (W_enc, b_enc take the folded norms)."""
        zeros = torch.zeros(W_dec.shape[1], dtype=W_dec.dtype, device=W_dec.device)
        sae = self._sae(W_dec.T.contiguous(), torch.zeros_like(W_dec[:, 0]), W_dec, zeros)
        sae.fold_W_dec_norm()
        return cast(Tensor, sae.W_dec.detach())

    def l0(self, f: Tensor) -> Tensor:
        from sae_lens.synthetic.evals import L0Calculator

        calculator = L0Calculator()
        calculator.add_batch(f)
        return torch.tensor(calculator.compute(), dtype=torch.float64)

    def explained_variance(self, x: Tensor, x_hat: Tensor) -> Tensor:
        from sae_lens.evals import ExplainedVarianceCalculator

        calculator = ExplainedVarianceCalculator()
        calculator.add_batch(x_hat, x)
        return torch.tensor(calculator.compute(), dtype=torch.float64)

    def dead_by_steps(self, steps_since: Tensor, *, n: int) -> Tensor:
        trainer = _trainer(steps_since.shape[-1], torch.float64)
        trainer.cfg.dead_feature_window = n
        trainer.n_forward_passes_since_fired = steps_since.to(trainer.n_forward_passes_since_fired.dtype)
        return cast(Tensor, trainer.dead_neurons)

    def _fired_step(self, steps_since: Tensor, f: Tensor) -> Any:
        """A trainer after one `_train_step` on `f` (its SAE's `feature_acts` are `ReLU(f)`)."""
        trainer = _trainer(f.shape[-1], f.dtype)
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


class _TopKBase(_SAELens):
    """What TopK and BatchTopK share: the training SAE with `k` set, its loss and gradients, AuxK."""

    eps: ClassVar[float] = NO_EPS
    # TopKTrainingSAEConfig: "rescale_acts_by_decoder_norm (bool): Treat the decoder as if it was already
    # normalized" (default True, sae_lens/saes/topk_sae.py; inherited by BatchTopKTrainingSAEConfig).
    claims: ClassVar[Mapping[str, str]] = {"encode": "tied", "decoder": "normalised"}

    def _decode_config(self, d_sae: int) -> dict[str, Any]:
        return {"k": d_sae}

    def _sae(self, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, k: int) -> Any:
        return _build(self.cls, _sae_params(W_enc, b_enc, W_dec, b_dec), k=k)

    def _loss(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, k: int, l1: float
    ) -> Tensor:
        """The training loss; SAELens's TopK losses have no sparsity term: only `l1_coefficient = 0`."""
        _skip_unless(l1 == 0.0)
        with torch.no_grad():
            return cast(Tensor, _step(self._sae(W_enc, b_enc, W_dec, b_dec, k), x).loss)

    def _gradients(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, k: int, l1: float
    ) -> dict[str, Tensor]:
        _skip_unless(l1 == 0.0)
        return _grads(self._sae(W_enc, b_enc, W_dec, b_dec, k), x, GRADS)

    def auxk_latents(self, z: Tensor, dead: Tensor, *, k_aux: int) -> Tensor:
        """`calculate_topk_aux_acts`, called by the loss with `k_aux` clamped to the dead count."""
        mask = dead.to(torch.bool)
        _skip_unless(k_aux <= int(mask.sum()))
        with torch.no_grad():
            return cast(Tensor, _saes().topk_sae.calculate_topk_aux_acts(k_aux, z, mask))

    def _auxk(
        self, x: Tensor, x_hat: Tensor, z: Tensor, W_dec: Tensor, b_dec: Tensor, dead: Tensor, k_aux: int
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """`calculate_topk_aux_loss` on the row's arrays padded to `d_in' = max(d_in, 2 k_aux)` zero
        dimensions (module docstring); the loss and the leaves whose gradients the row reads."""
        d_sae, d_in = W_dec.shape
        _skip_unless(d_in <= 2 * k_aux + 1)
        width = max(d_in, 2 * k_aux)

        def pad(t: Tensor) -> Tensor:
            return torch.nn.functional.pad(t, (0, width - d_in))

        W_dec_p = pad(W_dec)
        zeros = torch.zeros(d_sae, dtype=W_dec.dtype, device=W_dec.device)
        sae = _build(self.cls, _sae_params(W_dec_p.T.contiguous(), zeros, W_dec_p, pad(b_dec)), k=d_sae)
        assert sae.cfg.d_in // 2 == k_aux  # SAELens's k_aux = sae_in.shape[-1] // 2
        x_hat_p = pad(x_hat).requires_grad_(True)
        z_leaf = z.clone().requires_grad_(True)
        loss = sae.calculate_topk_aux_loss(
            sae_in=pad(x), sae_out=x_hat_p, hidden_pre=z_leaf, dead_neuron_mask=dead.to(torch.bool)
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
        loss, leaves = self._auxk(x, x_hat, z, W_dec, b_dec, dead, k_aux)
        if loss.requires_grad:
            loss.backward()  # type: ignore[no-untyped-call]
        d_in = x.shape[-1]
        return {
            "z": _grad_or_zeros(leaves["z"]),
            "W_dec": _grad_or_zeros(leaves["W_dec"])[:, :d_in],
            "b_dec": _grad_or_zeros(leaves["b_dec"])[:d_in],
            "x_hat": _grad_or_zeros(leaves["x_hat"])[:, :d_in],
        }


class TopKSAE(_TopKBase):
    """`TopKTrainingSAE` (default `rescale_acts_by_decoder_norm=True`) and its `TopK` activation."""

    name: ClassVar[str] = "sae_lens.topk"
    cls: ClassVar[str] = "TopKTrainingSAE"

    def topk(self, z: Tensor, *, k: int) -> Tensor:
        return cast(Tensor, _saes().topk_sae.TopK(k)(z))

    def decode_sparse(self, values: Tensor, indices: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        batch, k = values.shape
        rows = torch.arange(batch, device=values.device).repeat_interleave(k)
        coo = torch.sparse_coo_tensor(
            torch.stack([rows, indices.flatten()]),
            values.flatten(),
            (batch, W_dec.shape[0]),
            check_invariants=True,
        )
        return self.decode(coo, W_dec, b_dec)

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
    ) -> dict[str, Tensor]:
        return self._gradients(x, W_enc, b_enc, W_dec, b_dec, k, l1_coefficient)


class BatchTopKSAE(_TopKBase):
    """`BatchTopKTrainingSAE` (default `rescale_acts_by_decoder_norm=True`), `BatchTopK`, and the
    `JumpReLUSAE` it is saved as for inference."""

    name: ClassVar[str] = "sae_lens.batchtopk"
    cls: ClassVar[str] = "BatchTopKTrainingSAE"
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
        sae = _build(self.cls, _sae_params(W, W[0], W, W[0]), k=d_sae, topk_threshold_lr=1.0 - beta)
        sae.topk_threshold = threshold.to(sae.topk_threshold.dtype).clone()  # float64 in SAELens
        sae.update_topk_threshold(f)
        return cast(Tensor, sae.topk_threshold)

    def batchtopk_inference(self, z: Tensor, threshold: Tensor) -> Tensor:
        d_sae = z.shape[-1]
        eye = torch.eye(d_sae, dtype=z.dtype, device=z.device)
        zeros = torch.zeros(d_sae, dtype=z.dtype, device=z.device)
        saes = _saes()
        dtype = str(z.dtype).removeprefix("torch.")
        sae = saes.JumpReLUSAE(
            saes.JumpReLUSAEConfig(d_in=d_sae, d_sae=d_sae, dtype=dtype, device=str(z.device))
        )
        # as process_state_dict_for_saving_inference: threshold = ones_like(b_enc) * topk_threshold
        theta = torch.ones_like(zeros) * threshold
        sae.load_state_dict({"W_enc": eye, "b_enc": zeros, "W_dec": eye, "b_dec": zeros, "threshold": theta})
        with torch.no_grad():
            return cast(Tensor, sae.encode(z))

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
    ) -> dict[str, Tensor]:
        return self._gradients(x, W_enc, b_enc, W_dec, b_dec, k, l1_coefficient)


class JumpReLUSAE(_SAELens):
    """`JumpReLUTrainingSAE` (default `jumprelu_sparsity_loss_mode="step"`, `jumprelu_ste_to_input=False`,
    `pre_act_loss_coefficient=None`) and its `JumpReLU` autograd function."""

    name: ClassVar[str] = "sae_lens.jumprelu"
    cls: ClassVar[str] = "JumpReLUTrainingSAE"
    # JumpReLUTrainingSAE: "The threshold is parameterized directly rather than as exp(log_threshold)"
    # (sae_lens/saes/jumprelu_sae.py).
    claims: ClassVar[Mapping[str, str]] = {**_SAELens.claims, "parametrisation": "theta"}
    # The threshold parameter is float32 in every SAE dtype (module docstring): detect in float32.
    dtypes: ClassVar[tuple[str, ...]] = ("float32", "float64")

    def _decoder_sae(self, W_dec: Tensor, b_dec: Tensor) -> Any:
        zeros = torch.zeros(W_dec.shape[0], dtype=W_dec.dtype, device=W_dec.device)
        return self._sae(W_dec.T.contiguous(), zeros, W_dec, b_dec, zeros + 1.0, 1.0, 1.0)

    def _sae(
        self,
        W_enc: Tensor,
        b_enc: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        theta: Tensor,
        l0: float,
        bandwidth: float,
    ) -> Any:
        params = {**_sae_params(W_enc, b_enc, W_dec, b_dec), "threshold": theta}
        return _build(self.cls, params, l0_coefficient=l0, jumprelu_bandwidth=bandwidth)

    def jumprelu(self, z: Tensor, theta: Tensor) -> Tensor:
        bandwidth = _saes().JumpReLUTrainingSAEConfig.jumprelu_bandwidth  # unused by the forward pass
        return cast(Tensor, _saes().jumprelu_sae.JumpReLU.apply(z, theta, bandwidth, False))

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
        with torch.no_grad():
            sae = self._sae(W_enc, b_enc, W_dec, b_dec, theta, l0_coefficient, bandwidth)
            return cast(Tensor, _step(sae, x).loss)

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
        sae = self._sae(W_enc, b_enc, W_dec, b_dec, theta, l0_coefficient, bandwidth)
        return _grads(sae, x, (*GRADS, "threshold"))


GATED = ("W_enc", "b_gate", "r_mag", "b_mag", "W_dec", "b_dec")


class GatedSAE(_SAELens):
    """`GatedTrainingSAE` (its L1 on ReLU(π_gate) and auxiliary reconstruction, `l1_coefficient`)."""

    name: ClassVar[str] = "sae_lens.gated"
    cls: ClassVar[str] = "GatedTrainingSAE"

    def _sae(
        self,
        W_enc: Tensor,
        b_gate: Tensor,
        r_mag: Tensor,
        b_mag: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        l1: float = 1.0,
    ) -> Any:
        params = dict(zip(GATED, (W_enc, b_gate, r_mag, b_mag, W_dec, b_dec), strict=True))
        return _build(self.cls, params, l1_coefficient=l1)

    def gated_encode(
        self, x: Tensor, W_enc: Tensor, b_gate: Tensor, r_mag: Tensor, b_mag: Tensor, b_dec: Tensor
    ) -> tuple[Tensor, Tensor]:
        W_dec = torch.zeros_like(W_enc.T)
        with torch.no_grad():
            f, _ = self._sae(W_enc, b_gate, r_mag, b_mag, W_dec, b_dec).encode_with_hidden_pre(x)
            gate = self._sae(W_enc, b_gate, torch.zeros_like(r_mag), b_gate, W_dec, b_dec)
            _, pi_gate = gate.encode_with_hidden_pre(x)
        return f, pi_gate

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
        with torch.no_grad():
            sae = self._sae(W_enc, b_gate, r_mag, b_mag, W_dec, b_dec, l1_coefficient)
            return cast(Tensor, _step(sae, x).loss)

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
        sae = self._sae(W_enc, b_gate, r_mag, b_mag, W_dec, b_dec, l1_coefficient)
        return _grads(sae, x, GATED)
