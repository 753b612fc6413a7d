"""sparsify's own loaders (PyPI `eai-sparsify`) of its checkpoint folders (`cfg.json` +
`sae.safetensors`, as `SparseCoder.save_to_disk` writes them, one folder per hookpoint).

- `load_from_disk`: `sparsify.SparseCoder.load_from_disk(path, device="cpu")` (the dtype is that of
  the first tensor in the safetensors file; the module is then cast with `.to(torch.float64)`).
- `load_many`: `SparseCoder.load_many(str(path.parent), local=True, layers=[path.name])[path.name]`,
  the trainer-layout loader (a run folder holding one folder per hookpoint).

encode is the coder's `encode(x)`, whose `(top_acts, top_indices, pre_acts)` are densified into
(batch, d_sae) (zeros elsewhere); decode is `decode(acts, indices)` with every latent's index (so the
sum runs over all d_sae latents: the dense f); forward is `forward(x).sae_out` (for a transcoder the
prediction of the target, with the skip term `x @ W_skip.mT` when `skip_connection`). The library is
imported inside the loaders only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from refsae.checkpoints.library import Array, LibraryModel, Loader


def _model(loader: str, coder: Any) -> LibraryModel:
    """A LibraryModel over a sparsify SparseCoder, cast to float64."""
    import torch

    coder = coder.to(torch.float64).eval()
    d_sae = int(coder.num_latents)

    def tensor(a: Array) -> Any:
        return torch.as_tensor(np.asarray(a, dtype=np.float64))

    def array(t: Any) -> Array:
        return np.asarray(t.detach().cpu().numpy(), dtype=np.float64)

    def encode(x: Array) -> Array:
        with torch.no_grad():
            top_acts, top_indices, _pre_acts = coder.encode(tensor(x))
            dense = top_acts.new_zeros(top_acts.shape[0], d_sae)
            dense.scatter_(-1, top_indices, top_acts)
        return array(dense)

    def decode(f: Array) -> Array:
        acts = tensor(f)
        indices = torch.arange(d_sae).expand(acts.shape[0], d_sae).contiguous()
        with torch.no_grad():
            return array(coder.decode(acts, indices))

    def forward(x: Array) -> Array:
        with torch.no_grad():
            return array(coder(tensor(x)).sae_out)

    return LibraryModel(loader=loader, encode=encode, decode=decode, forward=forward)


def load_from_disk(path: Path) -> LibraryModel:
    """`sparsify.SparseCoder.load_from_disk(path, device="cpu")`."""
    from sparsify import SparseCoder

    coder = SparseCoder.load_from_disk(path, device="cpu")
    return _model("sparsify.SparseCoder.load_from_disk", coder)


def load_many(path: Path) -> LibraryModel:
    """`sparsify.SparseCoder.load_many(parent, local=True, layers=[name])[name]`: the hookpoint
    folder `path` read as one layer of its parent run folder."""
    from sparsify import SparseCoder

    coders = SparseCoder.load_many(str(path.parent), local=True, layers=[path.name], device="cpu")
    return _model("sparsify.SparseCoder.load_many", coders[path.name])


LOADERS: dict[str, Loader] = {
    "sparsify.SparseCoder.load_from_disk": load_from_disk,
    "sparsify.SparseCoder.load_many": load_many,
}
READS: dict[str, str] = dict.fromkeys(LOADERS, "sparsify")
