"""Targets: a built-in adapter's name or `module:factory` (CONF-6)."""

from __future__ import annotations

import importlib

from refsae.conform.adapter import Adapter

BUILTIN: dict[str, str] = {
    "refsae": "refsae.conform.refsae_adapter:RefsaeAdapter",
    "sae_lens": "refsae.conform.adapters.sae_lens:StandardSAE",
    "sae_lens.topk": "refsae.conform.adapters.sae_lens:TopKSAE",
    "sae_lens.batchtopk": "refsae.conform.adapters.sae_lens:BatchTopKSAE",
    "sae_lens.jumprelu": "refsae.conform.adapters.sae_lens_jumprelu:JumpReLUTrainingSAE",
    "sae_lens.jumprelu_quadratic": "refsae.conform.adapters.sae_lens_jumprelu:JumpReLUQuadraticSAE",
    "sae_lens.gated": "refsae.conform.adapters.sae_lens:GatedSAE",
    "sae_lens.evals": "refsae.conform.adapters.evals:SAELensEvals",
    "sae_lens.folding": "refsae.conform.adapters.folding:SAELensFolding",
    "sae_lens.matryoshka": "refsae.conform.adapters.matryoshka:SAELensMatryoshka",
    "sae_lens.transcoder": "refsae.conform.adapters.transcoder:SAELensTranscoder",
    "sae_lens.jumprelu_transcoder": "refsae.conform.adapters.transcoder:SAELensJumpReLUTranscoder",
    "sae_bench": "refsae.conform.adapters.evals:SAEBench",
    "sparse_autoencoder": "refsae.conform.adapters.sparse_autoencoder:SparseAutoencoder",
    "dictionary_learning": "refsae.conform.adapters.dictionary_learning:AutoEncoder",
    "dictionary_learning.topk": "refsae.conform.adapters.dictionary_learning:AutoEncoderTopK",
    "dictionary_learning.batchtopk": "refsae.conform.adapters.dictionary_learning:BatchTopKSAE",
    "dictionary_learning.jumprelu": "refsae.conform.adapters.dictionary_learning:JumpReluAutoEncoder",
    "dictionary_learning.gated": "refsae.conform.adapters.dictionary_learning:GatedAutoEncoder",
    "dictionary_learning.folding": "refsae.conform.adapters.folding:DictionaryLearningFolding",
    "dictionary_learning.evals": "refsae.conform.adapters.evals:DictionaryLearningEvaluate",
    "dictionary_learning.matryoshka": "refsae.conform.adapters.matryoshka:DictionaryLearningMatryoshka",
    "sparsify": "refsae.conform.adapters.sparsify:SparseCoder",
    "sparsify.transcoder": "refsae.conform.adapters.transcoder:SparsifyTranscoder",
    "saev": "refsae.conform.adapters.saev:SparseAutoencoder",
    "overcomplete": "refsae.conform.adapters.overcomplete:SAE",
    "overcomplete.topk": "refsae.conform.adapters.overcomplete:TopKSAE",
    "overcomplete.batchtopk": "refsae.conform.adapters.overcomplete:BatchTopKSAE",
    "overcomplete.jumprelu": "refsae.conform.adapters.overcomplete:JumpSAE",
}
"""Built-in target names -> `module:factory`. The library adapters import their library only when
loaded; each library's nox session installs it (`nox -s "conformance(library='sae_lens')"`)."""


class TargetError(ValueError):
    """A target that cannot be loaded (a usage error: the CLI exits 2)."""


def load(target: str) -> Adapter:
    """The adapter of `target`: a built-in name, or `module:factory` where `factory()` returns an
    `Adapter` (a subclass is instantiated)."""
    spec = BUILTIN.get(target, target)
    if ":" not in spec:
        raise TargetError(
            f"unknown target {target!r}: expected a built-in ({', '.join(BUILTIN)}) or module:factory"
        )
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetError(f"target {target!r}: cannot import {module_name!r} ({exc})") from exc
    factory = getattr(module, attr, None)
    if factory is None:
        raise TargetError(f"target {target!r}: module {module_name!r} has no {attr!r}")
    adapter = factory() if callable(factory) else factory
    if not isinstance(adapter, Adapter):
        raise TargetError(f"target {target!r}: {spec} gave {type(adapter).__name__}, not an Adapter")
    return adapter
