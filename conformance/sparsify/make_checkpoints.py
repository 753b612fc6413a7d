"""Regenerate the sparsify checkpoint fixtures (CKPT): tiny sparse coders (d_in 8, d_sae 32, k 4).

Run from the repository root with the sparsify venv's python:

    python conformance/sparsify/make_checkpoints.py [OUTDIR]

(OUTDIR defaults to tests/fixtures/checkpoints/sparsify). Every coder is written with the library's
own `SparseCoder.save_to_disk(path)` (`cfg.json` + `sae.safetensors`), the call its trainer makes per
hookpoint (`sparsify/trainer.py`, `Trainer._checkpoint`):

- `topk/`: the plain TopK SAE (`SparseCoderConfig(num_latents=32, k=4)`);
- `groupmax/`: `activation="groupmax"` (k=4 groups of 8 latents, one winner each);
- `transcoder/`: `transcode=True` (no b_dec subtracted before encoding);
- `skip_transcoder/`: `transcode=True, skip_connection=True` (adds `W_skip`, (d_in, d_in));
- `skip/`: `skip_connection=True` on an autoencoder;
- `multi_topk/`: `multi_topk=True` (forward then returns the 4k-latent reconstruction, no skip term);
- `multi/`: the trainer's multi-hookpoint layout, written by `Trainer._checkpoint` itself (called on
  a stand-in trainer with no optimizers): `multi/layers.0/`, `multi/layers.1/` (one coder each) plus
  the trainer's `config.json` (the TrainConfig), `state.pt` and `rank_0_state.pt`.

Before saving, every parameter is overwritten with seeded random float32 values: nonzero biases,
encoder rows of norm about 1, decoder rows with norms in [0.5, 2] (not unit norm).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from sparsify import SparseCoder, SparseCoderConfig
from sparsify.config import TrainConfig
from sparsify.trainer import Trainer

D_IN, D_SAE, K, SEED = 8, 32, 4, 0

VARIANTS: dict[str, dict[str, Any]] = {
    "topk": {},
    "groupmax": {"activation": "groupmax"},
    "transcoder": {"transcode": True},
    "skip_transcoder": {"transcode": True, "skip_connection": True},
    "skip": {"skip_connection": True},
    "multi_topk": {"multi_topk": True},
}


def seeded_values(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Non-trivial values for one parameter, by its name."""
    if name == "W_dec":  # (d_sae, d_in): rows are the dictionary vectors
        w = rng.standard_normal(shape)
        w /= np.linalg.norm(w, axis=1, keepdims=True)
        return np.asarray(w * rng.uniform(0.5, 2.0, size=(shape[0], 1)))
    if name == "encoder.weight":  # (d_sae, d_in)
        return np.asarray(rng.standard_normal(shape) / np.sqrt(D_IN))
    if name == "W_skip":  # (d_in, d_in), applied as x @ W_skip.mT
        return 0.3 * rng.standard_normal(shape)
    return rng.normal(0.0, 0.5, size=shape)  # encoder.bias, b_dec


def build(seed: int, **config: Any) -> SparseCoder:
    """A SparseCoder with every parameter overwritten from `np.random.default_rng(seed)`."""
    torch.manual_seed(seed)
    cfg = SparseCoderConfig(num_latents=D_SAE, k=K, **config)
    sae = SparseCoder(D_IN, cfg, device="cpu", dtype=torch.float32)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, param in sae.named_parameters():
            value = seeded_values(name, tuple(param.shape), rng)
            param.copy_(torch.from_numpy(value).to(param.dtype))
    return sae


def write_multi(path: Path, seed: int) -> None:
    """The trainer's layout for two hookpoints, by `Trainer._checkpoint` on a stand-in trainer."""
    cfg = TrainConfig(
        sae=SparseCoderConfig(num_latents=D_SAE, k=K),
        hookpoints=["layers.0", "layers.1"],
        log_to_wandb=False,
        run_name=path.name,
    )
    saes = {hook: build(seed + i) for i, hook in enumerate(cfg.hookpoints)}
    stand_in = SimpleNamespace(
        cfg=cfg,
        optimizers=[],
        lr_schedulers=[],
        global_step=1,
        num_tokens_since_fired={h: torch.zeros(D_SAE, dtype=torch.long) for h in saes},
        best_loss={h: float("inf") for h in saes},
    )
    Trainer._checkpoint(stand_in, saes, str(path), rank_zero=True)


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    for i, (name, config) in enumerate(VARIANTS.items()):
        shutil.rmtree(outdir / name, ignore_errors=True)
        build(SEED + i, **config).save_to_disk(outdir / name)
    shutil.rmtree(outdir / "multi", ignore_errors=True)
    write_multi(outdir / "multi", SEED + 100)


if __name__ == "__main__":
    default = Path("tests/fixtures/checkpoints/sparsify")
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
