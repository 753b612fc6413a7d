"""Regenerate the saev checkpoint fixtures (CKPT): tiny ReLU SAEs (d_in 8, d_sae 32).

Run from the repository root with the saev venv's python:

    python conformance/saev/make_checkpoints.py [OUTDIR]

(OUTDIR defaults to tests/fixtures/checkpoints/saev). saev 0.1.0 has one architecture, the ReLU SAE
`saev.nn.SparseAutoencoder` (no TopK, JumpReLU or Matryoshka). Each checkpoint is written with the
library's own `saev.nn.dump(fpath, sae)`, the call `saev.training.main` makes
(`<ckpt_path>/<run id>/sae.pt`): one JSON line (`vars(sae.cfg)`, the `config.SparseAutoencoder`
fields) followed by `torch.save(sae.state_dict())`.

- `relu/sae.pt`: `config.SparseAutoencoder(d_vit=8, exp_factor=4)` with the defaults
  (`normalize_w_dec=True`, `remove_parallel_grads=True`: training-time flags only);
- `relu_unnormalized/sae.pt`: the same with `normalize_w_dec=False, remove_parallel_grads=False`.

Before dumping, every parameter is overwritten with seeded random float32 values: nonzero biases,
encoder columns of norm about 1, decoder rows with norms in [0.5, 2] (not unit norm).
The training-run `config.json` that `saev.training.main` writes beside `sae.pt` (an inline
`json.dump(dataclasses.asdict(cfg))` of the whole `config.Train`) is not reproduced.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from saev import config, nn

D_IN, EXP_FACTOR, SEED = 8, 4, 0

VARIANTS: dict[str, dict[str, Any]] = {
    "relu": {},
    "relu_unnormalized": {"normalize_w_dec": False, "remove_parallel_grads": False},
}


def seeded_values(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Non-trivial values for one parameter, by its name."""
    if name == "W_dec":  # (d_sae, d_vit): rows are the dictionary vectors
        w = rng.standard_normal(shape)
        w /= np.linalg.norm(w, axis=1, keepdims=True)
        return np.asarray(w * rng.uniform(0.5, 2.0, size=(shape[0], 1)))
    if name == "W_enc":  # (d_vit, d_sae)
        return np.asarray(rng.standard_normal(shape) / np.sqrt(D_IN))
    return rng.normal(0.0, 0.5, size=shape)  # b_enc, b_dec


def build(seed: int, **options: Any) -> nn.SparseAutoencoder:
    """A saev SAE with every parameter overwritten from `np.random.default_rng(seed)`."""
    torch.manual_seed(seed)
    cfg = config.SparseAutoencoder(
        d_vit=D_IN, exp_factor=EXP_FACTOR, n_reinit_samples=0, seed=seed, **options
    )
    sae = nn.SparseAutoencoder(cfg)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, param in sae.named_parameters():
            value = seeded_values(name, tuple(param.shape), rng)
            param.copy_(torch.from_numpy(value).to(param.dtype))
    return sae


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    for i, (name, options) in enumerate(VARIANTS.items()):
        shutil.rmtree(outdir / name, ignore_errors=True)
        nn.dump(str(outdir / name / "sae.pt"), build(SEED + i, **options))


if __name__ == "__main__":
    default = Path("tests/fixtures/checkpoints/saev")
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
