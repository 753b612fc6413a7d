"""What a library's own loader makes of a checkpoint (CKPT-20): its encode, decode and forward as
float64 NumPy functions, so that `refsae.checkpoints.compare` can hold them against the oracle's.

Each module in `refsae.checkpoints.loaders` (one per library, imported only in that library's venv)
exposes `LOADERS: dict[str, Loader]`: a loader's name (the library function it calls) to a function
taking the checkpoint directory and returning a `LibraryModel`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class LibraryModel:
    """A checkpoint as loaded by a library's own code.

    `encode` maps x (batch, d_in) to the dense latents f (batch, d_sae), `decode` maps f to x_hat
    (batch, d_out) and `forward` x to x_hat (for a transcoder: to ŷ, with any skip term). All take and
    return float64 arrays; `dtype` names the dtype the library computed in (float64 where its modules
    can be cast, else what it loads)."""

    loader: str
    encode: Callable[[Array], Array]
    decode: Callable[[Array], Array]
    forward: Callable[[Array], Array]
    dtype: str = "float64"


Loader = Callable[[Path], LibraryModel]


def through_torch(fn: Callable[[Any], Any]) -> Callable[[Array], Array]:
    """`fn`, a library's tensor function, as an array function: the input becomes a float64 tensor, the
    call runs under `torch.no_grad()`, a sparse result is made dense and comes back as float64."""

    def run(a: Array) -> Array:
        import torch

        with torch.no_grad():
            out = fn(torch.as_tensor(np.asarray(a, dtype=np.float64)))
        if out.is_sparse:
            out = out.to_dense()
        return np.asarray(out.detach().cpu().numpy(), dtype=np.float64)

    return run
