"""Adapters of the libraries' Matryoshka BatchTopK SAEs (specs/matryoshka.md): SAELens 6.54.x (target
`sae_lens.matryoshka`: `MatryoshkaBatchTopKTrainingSAE`, its `training_forward_pass` and the level
decodes `_iterable_decode` it sums) and dictionary_learning 0.1.0 (target
`dictionary_learning.matryoshka`: `MatryoshkaBatchTopKSAE` and `MatryoshkaBatchTopKTrainer.loss`).
Each builds the library's class for the case's widths, loads the case's parameters and calls the
library. saev's Matryoshka objective is not in its released package (saev 0.1.0 on PyPI has none):
specs/matryoshka.md describes it from its source. Which library code each row calls:
conformance/sae_lens/README.md, conformance/dictionary_learning/README.md; what the suite found:
their findings.toml."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any, ClassVar, cast

import torch
from torch import Tensor

from refsae.conform.adapters.dictionary_learning import TRAINER
from refsae.conform.adapters.sae_lens import CANONICAL, SAELensBase
from refsae.conform.module_adapter import ModuleAdapter, library


def _group_sizes(widths: Sequence[int]) -> list[int]:
    """dictionary_learning's non-cumulative group sizes of cumulative widths."""
    return [b - a for a, b in pairwise((0, *widths))]


class SAELensMatryoshka(SAELensBase):
    """`MatryoshkaBatchTopKTrainingSAE` with `rescale_acts_by_decoder_norm=False`: the plain BatchTopK
    selection whose levels MAT-2..MAT-7 define (SAELens's default `True` ranks z_j‖W_dec_j‖ instead:
    EQ-7's reparametrisation, the `sae_lens.batchtopk` target's finding)."""

    name: ClassVar[str] = "sae_lens.matryoshka"
    cls: ClassVar[str] = "MatryoshkaBatchTopKTrainingSAE"
    parameters: ClassVar[Mapping[str, str]] = CANONICAL
    loss_rows: ClassVar[tuple[str, ...]] = (
        "matryoshka_batchtopk_total_loss",
        "matryoshka_batchtopk_loss_gradients",
    )

    def supports(self, operation: str) -> bool:
        """The inherited `decode` (DEC-1) is the `sae_lens.batchtopk` target's: here only the levels'."""
        return operation != "decode" and super().supports(operation)

    def _config(self, k: float, widths: Sequence[int]) -> dict[str, Any]:
        # a list of our own: _validate_matryoshka_config appends d_sae to the caller's list in place
        return {"k": k, "matryoshka_widths": list(widths), "rescale_acts_by_decoder_norm": False}

    def build(self, like: Mapping[str, Tensor], *, k: int, widths: Sequence[int]) -> Any:
        return self.make(like, **self._config(k, widths))

    def matryoshka_decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor, *, widths: Sequence[int]) -> Tensor:
        """`_iterable_decode(f, include_outer_loss=True)`: the level reconstructions the training loss
        sums (W_enc, b_enc are unused placeholders)."""
        zeros = torch.zeros(W_dec.shape[0], dtype=W_dec.dtype, device=W_dec.device)
        params = {"W_enc": W_dec.T.contiguous(), "b_enc": zeros, "W_dec": W_dec, "b_dec": b_dec}
        sae = self.sae(params, **self._config(W_dec.shape[0], widths))
        with torch.no_grad():
            return torch.stack([x_hat for _, x_hat in sae._iterable_decode(f, include_outer_loss=True)])


class DictionaryLearningMatryoshka(ModuleAdapter):
    """`MatryoshkaBatchTopKSAE` (exact group sizes) in `MatryoshkaBatchTopKTrainer`, whose `loss` at
    step 0 (the threshold is not updated before `threshold_start_step`; no latent is dead, so AuxK
    adds 0) is the row's, with `group_weights = [1] * n`: the trainer averages its weighted level
    losses (`l2_losses.mean()`), so unit weights give MAT-6. Its default weights 1/n divide by n a
    second time (conformance/dictionary_learning/findings.toml)."""

    name: ClassVar[str] = "dictionary_learning.matryoshka"
    library: ClassVar[str] = "dictionary-learning"
    holder: ClassVar[str] = "ae"
    parameters: ClassVar[Mapping[str, str]] = CANONICAL
    loss_rows: ClassVar[tuple[str, ...]] = (
        "matryoshka_batchtopk_total_loss",
        "matryoshka_batchtopk_loss_gradients",
    )
    dtypes: ClassVar[tuple[str, ...]] = ("float32", "float64")

    def build(self, like: Mapping[str, Tensor], *, k: int, widths: Sequence[int]) -> Any:
        d_in, d_sae = like["W_enc"].shape
        dtype = like["W_enc"].dtype
        module = library("dictionary_learning.trainers.matryoshka_batch_top_k")
        trainer = module.MatryoshkaBatchTopKTrainer(
            steps=2, warmup_steps=0, activation_dim=d_in, dict_size=d_sae, k=k, group_fractions=[1.0],
            device=self.device, **TRAINER,
        )  # fmt: skip
        sizes = _group_sizes(widths)
        trainer.ae = module.MatryoshkaBatchTopKSAE(d_in, d_sae, k, sizes).to(device=self.device, dtype=dtype)
        trainer.group_sizes = sizes
        trainer.group_weights = [1.0] * len(sizes)
        return trainer

    def loss(self, module: Any, x: Tensor, **options: Any) -> Tensor:
        return cast(Tensor, module.loss(x, step=0, logging=False))
