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

from refsae.checkpoints.library import LibraryModel, Loader, through_torch


def _model(loader: str, sae: Any) -> LibraryModel:
    """A LibraryModel over a saev SparseAutoencoder, cast to float64."""
    import torch

    sae = sae.to(torch.float64).eval()

    return LibraryModel(
        loader,
        encode=through_torch(lambda t: sae(t)[1]),
        decode=through_torch(sae.decode),
        forward=through_torch(lambda t: sae(t)[0]),
    )


def load(path: Path) -> LibraryModel:
    """`saev.nn.load(str(path / "sae.pt"), device="cpu")`."""
    from saev import nn

    return _model("saev.nn.load", nn.load(str(path / "sae.pt"), device="cpu"))


LOADERS: dict[str, Loader] = {"saev.nn.load": load}
READS: dict[str, str] = {"saev.nn.load": "saev"}
