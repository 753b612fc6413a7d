"""saev's own loader (PyPI `saev` 0.1.0) of its checkpoint folders (`sae.pt`, as `saev.nn.dump`
writes it: one JSON line of `config.SparseAutoencoder` fields, then a torch-saved state dict).

- `load`: `saev.nn.load(str(path / "sae.pt"), device="cpu")`, then `.to(torch.float64)`.

saev's `SparseAutoencoder` has no `encode` method: encode is `forward(x)[1]` (its `f_x`), forward is
`forward(x)[0]` (`x_hat`), decode is its `decode(f_x)`. The library is imported inside the loader
only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from refsae.checkpoints.library import Array, LibraryModel, Loader


def _model(loader: str, sae: Any) -> LibraryModel:
    """A LibraryModel over a saev SparseAutoencoder, cast to float64."""
    import torch

    sae = sae.to(torch.float64).eval()

    def run(fn: Any, a: Array) -> Array:
        with torch.no_grad():
            out = fn(torch.as_tensor(np.asarray(a, dtype=np.float64)))
        return np.asarray(out.detach().cpu().numpy(), dtype=np.float64)

    return LibraryModel(
        loader=loader,
        encode=lambda x: run(lambda t: sae(t)[1], x),
        decode=lambda f: run(sae.decode, f),
        forward=lambda x: run(lambda t: sae(t)[0], x),
    )


def load(path: Path) -> LibraryModel:
    """`saev.nn.load(str(path / "sae.pt"), device="cpu")`."""
    from saev import nn

    return _model("saev.nn.load", nn.load(str(path / "sae.pt"), device="cpu"))


LOADERS: dict[str, Loader] = {"saev.nn.load": load}
READS: dict[str, str] = {"saev.nn.load": "saev"}
