"""Adapters of the evaluation loops people compare SAEs by (specs/evaluation.md): SAEBench's core
evaluation (https://github.com/adamkarvonen/SAEBench, PyPI `sae-bench` 0.6.0,
`sae_bench/evals/core/main.py`), target `sae_bench`, and SAELens's own (`sae_lens/evals.py`), target
`sae_lens.evals`, both the library's `get_sparsity_and_variance_metrics` called on one batch through
the stand-ins of `eval_harness`; and dictionary_learning's `evaluation.evaluate`, target
`dictionary_learning.evals`. Which metric each row reads, and why: conformance/sae_bench/README.md,
conformance/dictionary_learning/README.md; what the suite found: the libraries' findings.toml."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
from torch import Tensor

from refsae.conform.adapter import Adapter, Domain
from refsae.conform.adapters.eval_harness import METRIC_FLAGS, flags, scalar, stand_ins
from refsae.conform.module_adapter import library

SAEBENCH_DENSITIES = {0.0: "frac_alive", 0.01: "freq_over_1_percent", 0.1: "freq_over_10_percent"}
"""The density thresholds SAEBench's `calculate_misc_metrics` reports, by the name it gives them."""


class EvaluationLoop(Adapter):
    """The rows every `get_sparsity_and_variance_metrics` provides; subclasses call their library's."""

    def loop(
        self, sae: Any, model: Any, store: Any, **switches: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The library's evaluation loop on the stand-ins: (its metrics, its feature metrics). Each
        subclass (SAEBench, SAELens, dictionary_learning) calls its own; the base has none."""
        raise NotImplementedError(f"{type(self).__name__} does not name its library's evaluation loop")

    def _metric(
        self, name: str, x: Tensor | None = None, x_hat: Tensor | None = None, f: Tensor | None = None
    ) -> Tensor:
        sae, model, store = stand_ins(x, x_hat, f)
        metrics, _ = self.loop(sae, model, store, compute_featurewise_density_statistics=False, **flags(name))
        return scalar(metrics[name])

    def densities(self, f: Tensor) -> dict[str, Any]:
        """The loop's feature metrics of the latents f (its `feature_density` list among them)."""
        sae, model, store = stand_ins(f=f)
        switches = dict.fromkeys(METRIC_FLAGS, False)
        _, features = self.loop(sae, model, store, compute_featurewise_density_statistics=True, **switches)
        return features

    def reconstruction_loss(self, x: Tensor, x_hat: Tensor) -> Tensor:
        return self._metric("mse", x=x, x_hat=x_hat)

    def explained_variance(self, x: Tensor, x_hat: Tensor) -> Tensor:
        return self._metric("explained_variance", x=x, x_hat=x_hat)

    def explained_variance_per_token(self, x: Tensor, x_hat: Tensor) -> Tensor:
        return self._metric("explained_variance_legacy", x=x, x_hat=x_hat)

    def cosine_similarity(self, x: Tensor, x_hat: Tensor) -> Tensor:
        return self._metric("cossim", x=x, x_hat=x_hat)

    def l2_ratio(self, x: Tensor, x_hat: Tensor) -> Tensor:
        return self._metric("l2_ratio", x=x, x_hat=x_hat)

    def relative_reconstruction_bias(self, x: Tensor, x_hat: Tensor) -> Tensor:
        return self._metric("relative_reconstruction_bias", x=x, x_hat=x_hat)

    def l0(self, f: Tensor) -> Tensor:
        return self._metric("l0", f=f)

    def feature_density(self, f: Tensor) -> Tensor:
        return torch.tensor(self.densities(f)["feature_density"], dtype=torch.float64)


class SAEBench(EvaluationLoop):
    """SAEBench 0.6.0's core evaluation: `get_sparsity_and_variance_metrics`, and
    `calculate_misc_metrics` for the fractions of latents above a density."""

    name: ClassVar[str] = "sae_bench"
    library: ClassVar[str] = "sae-bench"
    domains: ClassVar[tuple[Domain, ...]] = (
        Domain(
            name="saebench_densities",
            reason="calculate_misc_metrics reports the fraction of latents above the densities 0 "
            "(frac_alive), 0.01 and 0.1 only",
            ops=("fraction_above",),
            holds=lambda case: case.options.get("density") in SAEBENCH_DENSITIES,
        ),
    )

    def loop(
        self, sae: Any, model: Any, store: Any, **switches: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        core = library("sae_bench.evals.core.main")
        return core.get_sparsity_and_variance_metrics(  # type: ignore[no-any-return]
            sae, model, store, n_batches=1, eval_batch_size_prompts=1, model_kwargs={}, **switches
        )

    def fraction_above(self, f: Tensor, *, density: float) -> Tensor:
        features = self.densities(f)
        features["max_encoder_cosine_sim"] = [0.0]  # read by calculate_misc_metrics, not by these fractions
        features["max_decoder_cosine_sim"] = [0.0]
        misc = library("sae_bench.evals.core.main").calculate_misc_metrics(features)
        return scalar(misc[SAEBENCH_DENSITIES[density]])


class SAELensEvals(EvaluationLoop):
    """SAELens 6.54.x's `sae_lens.evals.get_sparsity_and_variance_metrics`, with the identity
    `ActivationScaler` (no normalisation: the case's x is what the SAE sees)."""

    name: ClassVar[str] = "sae_lens.evals"
    library: ClassVar[str] = "sae-lens"

    def loop(
        self, sae: Any, model: Any, store: Any, **switches: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        evals = library("sae_lens.evals")
        scaler = library("sae_lens.training.activation_scaler").ActivationScaler()
        return evals.get_sparsity_and_variance_metrics(  # type: ignore[no-any-return]
            sae, model, store, scaler, n_batches=1, eval_batch_size_prompts=1, model_kwargs={}, **switches
        )


class DictionaryLearningEvaluate(Adapter):
    """dictionary_learning 0.1.0's `evaluation.evaluate(dictionary, activations)` on one batch, with a
    dictionary whose `forward(x, output_features=True)` returns the case's `(x_hat, f)` (the adapter of
    target `dictionary_learning` reads its `frac_variance_explained`, `l0` and `l1_loss` the same way)."""

    name: ClassVar[str] = "dictionary_learning.evals"
    library: ClassVar[str] = "dictionary-learning"
    domains: ClassVar[tuple[Domain, ...]] = (
        Domain(
            name="frac_alive_only",
            reason="evaluate reports the fraction of latents above the density 0 (frac_alive) only",
            ops=("fraction_above",),
            holds=lambda case: case.options.get("density") == 0.0,
        ),
    )

    def _evaluate(
        self, x: Tensor | None = None, x_hat: Tensor | None = None, f: Tensor | None = None
    ) -> dict[str, float]:
        evaluate = library("dictionary_learning.evaluation").evaluate
        sae, model, _ = stand_ins(x, x_hat, f)
        x_in = model.x

        class Given(torch.nn.Module):
            activation_dim = x_in.shape[-1]
            dict_size = sae.f.shape[-1]

            def forward(self, _x: Tensor, output_features: bool = False) -> Any:
                return (sae.x_hat, sae.f) if output_features else sae.x_hat

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # t.var of a one-dimensional stand-in (not read)
            return dict(evaluate(Given(), iter([x_in]), device=str(x_in.device)))

    def cosine_similarity(self, x: Tensor, x_hat: Tensor) -> Tensor:
        return scalar(self._evaluate(x=x, x_hat=x_hat)["cossim"])

    def l2_ratio(self, x: Tensor, x_hat: Tensor) -> Tensor:
        return scalar(self._evaluate(x=x, x_hat=x_hat)["l2_ratio"])

    def relative_reconstruction_bias(self, x: Tensor, x_hat: Tensor) -> Tensor:
        return scalar(self._evaluate(x=x, x_hat=x_hat)["relative_reconstruction_bias"])

    def fraction_above(self, f: Tensor, *, density: float) -> Tensor:
        return scalar(self._evaluate(f=f)["frac_alive"])
