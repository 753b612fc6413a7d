"""Regenerate the dictionary_learning checkpoint fixtures (CKPT): tiny SAEs (d_in 8, d_sae 32).

Run from the repository root with the dictionary_learning venv's python:

    python conformance/dictionary_learning/make_checkpoints.py [OUTDIR]

(OUTDIR defaults to tests/fixtures/checkpoints/dictionary_learning). It writes, for each of
`standard` (AutoEncoder), `topk` (AutoEncoderTopK, k=4), `batchtopk` (BatchTopKSAE, k=4, inference
threshold set), `jumprelu` (JumpReluAutoEncoder), `gated` (GatedAutoEncoder), `matryoshka`
(MatryoshkaBatchTopKSAE, k=4, groups 8+24), and for `standard_normalized`, `batchtopk_normalized` and
`jumprelu_normalized` (the same, trained with `normalize_activations=True`), the folder
`OUTDIR/<arch>/` holding `config.json` and `ae.pt`, plus `OUTDIR/norm_factors.json`.

Both files come from the library's own training loop, `dictionary_learning.training.trainSAE`
(steps=1, save_dir=a temporary folder): it writes `trainer_0/config.json` before training and
`trainer_0/ae.pt` (`t.save({k: v.cpu() for k, v in ae.state_dict().items()})`, after
`ae.scale_biases(norm_factor)` when normalising) at the end; the two files are then moved, unchanged,
to `OUTDIR/<arch>/`. The one training step is the only thing replaced: each trainer class is
subclassed so that its `update` overwrites every parameter (and the float `threshold` buffer) with
seeded random values instead of taking an optimizer step. Those values are in the normalised space
when normalising; trainSAE then multiplies the biases (and threshold) by the norm factor on saving.
config.json does not record the factor (trainSAE adds it to `trainer.config` only after writing it),
so the factor `get_norm_factor` computed on the same data is written to `norm_factors.json`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch as t
from dictionary_learning.trainers.batch_top_k import BatchTopKTrainer
from dictionary_learning.trainers.gdm import GatedSAETrainer
from dictionary_learning.trainers.jumprelu import JumpReluTrainer
from dictionary_learning.trainers.matryoshka_batch_top_k import MatryoshkaBatchTopKTrainer
from dictionary_learning.trainers.standard import StandardTrainer
from dictionary_learning.trainers.top_k import TopKTrainer
from dictionary_learning.training import get_norm_factor, trainSAE

D_IN, D_SAE, K, SEED = 8, 32, 4, 0


class Activations(list[t.Tensor]):
    """Re-iterable batches of random activations, with the `config` an ActivationBuffer records."""

    @property
    def config(self) -> dict[str, Any]:
        return {
            "d_submodule": D_IN,
            "io": "out",
            "n_ctxs": 4,
            "ctx_len": 16,
            "refresh_batch_size": 4,
            "out_batch_size": 16,
            "device": "cpu",
        }


def activations(seed: int) -> Activations:
    g = t.Generator().manual_seed(seed)
    return Activations([0.75 * t.randn(16, D_IN, generator=g) for _ in range(4)])


def seeded_values(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Non-trivial values for one parameter, by its state-dict name."""
    if name in ("threshold",):
        if len(shape) == 0:  # TopK / BatchTopK / Matryoshka inference threshold (post-ReLU)
            return np.asarray(rng.uniform(0.3, 0.6))
        return rng.uniform(0.1, 0.8, size=shape)  # JumpReLU, per latent
    if name in ("decoder.weight", "W_dec"):
        rows_first = name == "W_dec"  # decoder.weight is (d_in, d_sae): columns are dictionary rows
        w = rng.standard_normal(shape)
        axis = 1 if rows_first else 0
        norms = rng.uniform(0.5, 2.0, size=D_SAE)
        w = w / np.linalg.norm(w, axis=axis, keepdims=True)
        return np.asarray(w * (norms[:, None] if rows_first else norms[None, :]))
    if name in ("encoder.weight", "W_enc"):
        return np.asarray(rng.standard_normal(shape) / np.sqrt(D_IN))
    if name == "r_mag":
        return rng.uniform(-0.5, 0.5, size=shape)
    return rng.normal(0.0, 0.5, size=shape)  # every bias


def seeded(trainer_cls: type, seed: int) -> type:
    """The trainer class with `update` replaced by a seeded overwrite of all float parameters."""

    def update(self: Any, step: int, activations: t.Tensor) -> None:
        rng = np.random.default_rng(seed)
        with t.no_grad():
            for name, tensor in self.ae.state_dict().items():
                if not tensor.is_floating_point():
                    continue  # k, group_sizes
                value = seeded_values(name, tuple(tensor.shape), rng)
                tensor.copy_(t.from_numpy(np.asarray(value)).to(tensor.dtype))

    return type(trainer_cls.__name__, (trainer_cls,), {"update": update})


COMMON: dict[str, Any] = {
    "steps": 2,
    "activation_dim": D_IN,
    "dict_size": D_SAE,
    "layer": 0,
    "lm_name": "fixture",
    "warmup_steps": 0,
    "seed": SEED,
    "device": "cpu",
}
NO_SPARSITY_WARMUP = {"sparsity_warmup_steps": None}
ARCHS: dict[str, tuple[type, dict[str, Any], bool]] = {
    "standard": (StandardTrainer, NO_SPARSITY_WARMUP, False),
    "topk": (TopKTrainer, {"k": K}, False),
    "batchtopk": (BatchTopKTrainer, {"k": K}, False),
    "jumprelu": (JumpReluTrainer, NO_SPARSITY_WARMUP, False),
    "gated": (GatedSAETrainer, NO_SPARSITY_WARMUP, False),
    "matryoshka": (MatryoshkaBatchTopKTrainer, {"k": K, "group_fractions": [0.25, 0.75]}, False),
    "standard_normalized": (StandardTrainer, NO_SPARSITY_WARMUP, True),
    "batchtopk_normalized": (BatchTopKTrainer, {"k": K}, True),
    "jumprelu_normalized": (JumpReluTrainer, NO_SPARSITY_WARMUP, True),
}


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    norm_factors: dict[str, float] = {}
    for i, (arch, (trainer_cls, extra, normalize)) in enumerate(ARCHS.items()):
        data = activations(SEED + i)
        config = {"trainer": seeded(trainer_cls, SEED + 100 + i), **COMMON, **extra}
        with tempfile.TemporaryDirectory() as tmp:
            trainSAE(
                data,
                [config],
                steps=1,
                save_dir=tmp,
                normalize_activations=normalize,
                device="cpu",
            )
            target = outdir / arch
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            for name in ("config.json", "ae.pt"):
                shutil.move(os.path.join(tmp, "trainer_0", name), target / name)
        if normalize:
            norm_factors[arch] = get_norm_factor(activations(SEED + i), steps=100)
    (outdir / "norm_factors.json").write_text(json.dumps(norm_factors, indent=4) + "\n")


if __name__ == "__main__":
    t.manual_seed(SEED)
    default = Path("tests/fixtures/checkpoints/dictionary_learning")
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
