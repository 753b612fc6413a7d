"""Matryoshka BatchTopK training-step benchmark (PERF-7): refsae's fused step beside its autograd
formulation, the encoder's matrix product (the floor) and SAELens's own step.

For each configuration, in one process, the implementations' repetitions interleaved after warming
each up:

- `floor`: z = u W_enc into a preallocated output: the one dense product the step needs (the batch
  selection reads every pre-activation);
- `refsae`: `refsae.torch.matryoshka_train_step_` (the grouped sparse backward of
  `refsae.torch.fast.matryoshka`) with `torch.optim.Adam(fused=True)`: loss, gradients, parallel-gradient
  removal, Adam, unit-norm constraint;
- `refsae_autograd`: the same step with `backward="autograd"`: `matryoshka_batchtopk_total_loss`
  decodes each level from its prefix (f[:, :m_i] W_dec[:m_i]) and autograd differentiates the n decodes,
  the formulation of SAELens's `MatryoshkaBatchTopKTrainingSAE` and dictionary_learning's trainer;
- `sae_lens`: SAELens's `SAETrainer._train_step` on its `MatryoshkaBatchTopKTrainingSAE`
  (`rescale_acts_by_decoder_norm=False`; skipped with the reason when sae_lens is not importable).

Each time is the median of `--reps` interleaved repetitions (the spread, min–max, beside it; see
benchmarks/interleaved.py), runtime type checks off (REFSAE_CHECKS=0 is set here).

    python benchmarks/bench_matryoshka.py [--device cpu|cuda] [--config NAME ...] [--out FILE]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("REFSAE_CHECKS", "0")

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from interleaved import Builder, main  # noqa: E402

LR = 1e-4


@dataclass(frozen=True)
class Config:
    name: str
    batch: int
    d_in: int
    d_sae: int
    k: int
    widths: tuple[int, ...]


CONFIGS = {
    c.name: c
    for c in (
        Config("mat_bk32_1024x512x8192", 1024, 512, 8192, 32, (128, 512, 2048, 8192)),
        Config("mat_bk32_4096x768x16384", 4096, 768, 16384, 32, (128, 512, 2048, 8192, 16384)),
        Config("tiny", 64, 16, 128, 4, (8, 32, 128)),
    )
}
DEFAULT_CONFIGS = ("mat_bk32_1024x512x8192", "mat_bk32_4096x768x16384")


def _x(cfg: Config, dtype: torch.dtype, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(cfg.batch, cfg.d_in, generator=g).to(device=device, dtype=dtype)


def build_floor(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    u = _x(cfg, dtype, device)
    W_enc = torch.randn(cfg.d_in, cfg.d_sae, dtype=dtype, device=device)
    out = torch.empty(cfg.batch, cfg.d_sae, dtype=dtype, device=device)
    return lambda: torch.mm(u, W_enc, out=out)


def _refsae(cfg: Config, dtype: torch.dtype, device: str, backward: str) -> Callable[[], Any]:
    from refsae.torch import SAE, SAEConfig, matryoshka_train_step_

    sae = SAE(
        SAEConfig(cfg.d_in, cfg.d_sae, dtype=dtype, device=device), generator=torch.Generator().manual_seed(0)
    )
    opt = torch.optim.Adam(sae.parameters(), lr=LR, fused=True)
    x = _x(cfg, dtype, device)
    return lambda: matryoshka_train_step_(sae, opt, x, k=cfg.k, widths=cfg.widths, backward=backward)


def build_refsae(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    return _refsae(cfg, dtype, device, "fused")


def build_refsae_autograd(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    return _refsae(cfg, dtype, device, "autograd")


def build_sae_lens(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    import sae_lens.saes as saes
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    sae = saes.MatryoshkaBatchTopKTrainingSAE(
        saes.MatryoshkaBatchTopKTrainingSAEConfig(
            d_in=cfg.d_in,
            d_sae=cfg.d_sae,
            k=cfg.k,
            matryoshka_widths=list(cfg.widths),
            rescale_acts_by_decoder_norm=False,
            dtype=str(dtype).removeprefix("torch."),
            device=device,
        )
    )
    trainer_cfg = SAETrainerConfig(
        total_training_samples=10**9, train_batch_size_samples=cfg.batch, lr=LR, lr_end=LR, device=device
    )
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=iter(()))
    x = _x(cfg, dtype, device)
    return lambda: trainer._train_step(sae, x)


BUILDERS: dict[str, Builder] = {
    "floor": build_floor,
    "refsae": build_refsae,
    "refsae_autograd": build_refsae_autograd,
    "sae_lens": build_sae_lens,
}


if __name__ == "__main__":
    doc = __doc__.splitlines()[0]
    raise SystemExit(main(doc, CONFIGS, DEFAULT_CONFIGS, BUILDERS, "refsae_autograd", "matryoshka"))
