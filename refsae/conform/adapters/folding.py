"""Adapters of the libraries' weight folds (specs/folding.md) and activation normalisation
(specs/normalisation.md): SAELens 6.54.x (target `sae_lens.folding`: `SAE.fold_W_dec_norm`,
`JumpReLUSAE.fold_W_dec_norm`, `SAE.fold_activation_norm_scaling_factor`,
`ActivationScaler.estimate_scaling_factor`, and the SAE's run-time normalisations
`constant_norm_rescale` and `layer_norm`) and dictionary_learning 0.1.0 (target
`dictionary_learning.folding`: `AutoEncoder.normalize_decoder`, `scale_biases`, `get_norm_factor`).
Each fold loads the case's parameters into the library's inference class, calls the fold, and reads
the parameters back; each normalisation calls the library's function on the case's tokens.
Which library code each row calls: conformance/sae_lens/README.md and conformance/dictionary_learning/
README.md; what the suite found: their findings.toml."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, cast

import torch
from torch import Tensor

from refsae.conform.adapter import Adapter
from refsae.conform.module_adapter import library, quiet


def _dtype_name(t: Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _assign(module: Any, values: Mapping[str, Tensor]) -> Any:
    """Each named parameter of `module` replaced by a copy of the case's tensor (its dtype and shape)."""
    for path, value in values.items():
        *owners, name = path.split(".")
        owner = module
        for part in owners:
            owner = getattr(owner, part)
        setattr(owner, name, torch.nn.Parameter(value.detach().clone()))
    return module


@contextlib.contextmanager
def _silent() -> Iterator[None]:
    """The libraries' progress bars (tqdm, on stderr) and prints kept out of the suite's output."""
    with quiet(), contextlib.redirect_stderr(io.StringIO()):
        yield


class SAELensFolding(Adapter):
    """SAELens's folds on its inference classes `StandardSAE` and `JumpReLUSAE`, its scaling-factor
    estimate and its run-time normalisations."""

    name: ClassVar[str] = "sae_lens.folding"
    library: ClassVar[str] = "sae-lens"
    working_precision: ClassVar[Mapping[str, tuple[str, str]]] = {
        "activation_norm_factor": (
            "float32",
            "`ActivationScaler._calculate_mean_norm` sums the token norms in float32 "
            "(`norms.float().sum()`, training/activation_scaler.py)",
        ),
    }

    def _sae(self, cls: str, params: Mapping[str, Tensor]) -> Any:
        saes = library("sae_lens.saes")
        d_sae, d_in = params["W_dec"].shape
        config = getattr(saes, f"{cls}Config")(d_in=d_in, d_sae=d_sae, dtype=_dtype_name(params["W_dec"]))
        sae = getattr(saes, cls)(config)
        missing, unexpected = sae.load_state_dict(
            {k: v.detach().clone() for k, v in params.items()}, strict=False
        )
        if missing or unexpected:
            raise RuntimeError(f"{cls}: parameters missing {missing}, unexpected {unexpected}")
        return sae

    def fold_W_dec_norm(self, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        sae = self._sae(
            "StandardSAE", {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": W_dec[0] * 0}
        )
        sae.fold_W_dec_norm()
        return sae.W_enc.detach(), sae.b_enc.detach(), sae.W_dec.detach()

    def fold_W_dec_norm_threshold(self, W_dec: Tensor, theta: Tensor) -> Tensor:
        zeros = theta * 0
        params = {"W_enc": W_dec.T.contiguous(), "b_enc": zeros, "W_dec": W_dec, "b_dec": W_dec[0] * 0}
        sae = self._sae("JumpReLUSAE", {**params, "threshold": theta})
        sae.fold_W_dec_norm()
        return cast(Tensor, sae.threshold.detach())

    def fold_input_scale(
        self, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, *, factor: float
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        sae = self._sae("StandardSAE", {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec})
        sae.fold_activation_norm_scaling_factor(factor)
        return sae.W_enc.detach(), sae.b_enc.detach(), sae.W_dec.detach(), sae.b_dec.detach()

    def fold_input_scale_threshold(self, theta: Tensor, *, factor: float) -> Tensor:
        d_sae = theta.shape[0]
        eye = torch.eye(d_sae, dtype=theta.dtype)
        params = {"W_enc": eye, "b_enc": theta * 0, "W_dec": eye, "b_dec": theta * 0, "threshold": theta}
        sae = self._sae("JumpReLUSAE", params)
        sae.fold_activation_norm_scaling_factor(factor)
        return cast(Tensor, sae.threshold.detach())

    def activation_norm_factor(self, x: Tensor) -> Tensor:
        scaler = library("sae_lens.training.activation_scaler").ActivationScaler()
        with _silent():
            scaler.estimate_scaling_factor(x.shape[-1], iter([x]), n_batches_for_norm_estimate=1)
        return torch.tensor(scaler.scaling_factor, dtype=torch.float64)

    def _normalising_sae(self, mode: str, x: Tensor) -> Any:
        saes = library("sae_lens.saes")
        d_in = x.shape[-1]
        config = saes.StandardSAEConfig(d_in=d_in, d_sae=1, dtype=_dtype_name(x), normalize_activations=mode)
        return saes.StandardSAE(config)

    def constant_norm_rescale(self, x: Tensor) -> tuple[Tensor, Tensor]:
        sae = self._normalising_sae("constant_norm_rescale", x)
        x_n = sae.run_time_activation_norm_fn_in(x)
        return x_n.detach(), sae.x_norm_coeff.detach().squeeze(-1)

    def layer_norm(self, x: Tensor, *, eps: float) -> tuple[Tensor, Tensor, Tensor]:
        sae = self._normalising_sae("layer_norm", x)
        x_n = sae.run_time_activation_norm_fn_in(x, eps=eps)
        return x_n.detach(), sae.ln_mu.detach().squeeze(-1), sae.ln_std.detach().squeeze(-1)

    def layer_norm_inverse(self, y: Tensor, mu: Tensor, sigma: Tensor, *, eps: float) -> Tensor:
        sae = self._normalising_sae("layer_norm", y)
        sae.ln_mu, sae.ln_std = mu.unsqueeze(-1), sigma.unsqueeze(-1)  # what its input map stored
        return cast(Tensor, sae.run_time_activation_norm_fn_out(y, eps=eps)).detach()


class DictionaryLearningFolding(Adapter):
    """dictionary_learning's folds: `AutoEncoder.normalize_decoder()` (what `from_pretrained` calls by
    default) and `scale_biases(norm_factor)` (what `trainSAE` calls at the end when it normalised the
    activations by `norm_factor`, i.e. trained on x / norm_factor: the case's scale c is 1 / norm_factor)."""

    name: ClassVar[str] = "dictionary_learning.folding"
    library: ClassVar[str] = "dictionary-learning"

    def _autoencoder(self, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor) -> Any:
        d_sae, d_in = W_dec.shape
        ae = library("dictionary_learning.dictionary").AutoEncoder(d_in, d_sae)
        values = {"encoder.weight": W_enc.T, "encoder.bias": b_enc, "decoder.weight": W_dec.T, "bias": b_dec}
        return _assign(ae, values)

    def _read(self, ae: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return (
            ae.encoder.weight.detach().T,
            ae.encoder.bias.detach(),
            ae.decoder.weight.detach().T,
            ae.bias.detach(),
        )

    def fold_W_dec_norm(self, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        ae = self._autoencoder(W_enc, b_enc, W_dec, W_dec[0] * 0)
        with quiet():
            ae.normalize_decoder()
        return self._read(ae)[:3]

    def fold_input_scale(
        self, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, *, factor: float
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        ae = self._autoencoder(W_enc, b_enc, W_dec, b_dec)
        ae.scale_biases(1.0 / factor)
        return self._read(ae)

    def fold_input_scale_threshold(self, theta: Tensor, *, factor: float) -> Tensor:
        d_sae = theta.shape[0]
        ae = library("dictionary_learning.dictionary").JumpReluAutoEncoder(d_sae, d_sae)
        eye = torch.eye(d_sae, dtype=theta.dtype)
        zeros = theta * 0
        _assign(ae, {"W_enc": eye, "b_enc": zeros, "W_dec": eye, "b_dec": zeros, "threshold": theta})
        ae.scale_biases(1.0 / factor)
        return cast(Tensor, ae.threshold.detach())

    def activation_norm_factor(self, x: Tensor) -> Tensor:
        """`get_norm_factor` returns s = √(mean ‖x‖²), by which `trainSAE` divides: c = 1 / s."""
        with _silent():
            s = library("dictionary_learning.training").get_norm_factor([x], steps=1)
        return torch.tensor(1.0 / s, dtype=torch.float64)
