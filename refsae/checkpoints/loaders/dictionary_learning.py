"""dictionary_learning's own loaders (PyPI `dictionary-learning` 0.1.0) of its checkpoint folders
(`config.json` + `ae.pt`, as `dictionary_learning.training.trainSAE` writes them).

- `load_dictionary`: `dictionary_learning.utils.load_dictionary(path, device="cpu")`, which reads
  `config.json`'s `trainer.dict_class` (and `trainer.k`) and calls that class's `from_pretrained`
  with `device` (AutoEncoder: also `.to(dtype=float32)` and `normalize_decoder=True`).
- `from_pretrained`: the class named by `trainer.dict_class`, `from_pretrained(path/"ae.pt")` with
  its defaults (k read from the state dict).

The loaded module is then cast with `.to(torch.float64)` (integer buffers such as `k` stay as they
are); encode, decode and forward are the module's own `encode(x)`, `decode(f)` and `forward(x)`,
with their default options (BatchTopK/Matryoshka: `use_threshold=True`; TopK: `use_threshold=False`;
Gated: `normalize_decoder=False`). The library is imported inside the loaders only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from refsae.checkpoints.library import LibraryModel, Loader, through_torch

CLASSES = {
    "AutoEncoder": "dictionary_learning.dictionary",
    "GatedAutoEncoder": "dictionary_learning.dictionary",
    "AutoEncoderNew": "dictionary_learning.dictionary",
    "JumpReluAutoEncoder": "dictionary_learning.dictionary",
    "AutoEncoderTopK": "dictionary_learning.trainers.top_k",
    "BatchTopKSAE": "dictionary_learning.trainers.batch_top_k",
    "MatryoshkaBatchTopKSAE": "dictionary_learning.trainers.matryoshka_batch_top_k",
}
"""`config.json`'s `trainer.dict_class` to the module defining it."""


def _config(path: Path) -> dict[str, Any]:
    with open(path / "config.json") as f:
        config: dict[str, Any] = json.load(f)
    return config


def _model(loader: str, module: Any) -> LibraryModel:
    """A LibraryModel over a dictionary_learning module, cast to float64."""
    import torch

    module = module.to(torch.float64).eval()

    return LibraryModel(
        loader, through_torch(module.encode), through_torch(module.decode), through_torch(module.forward)
    )


def load_dictionary(path: Path) -> LibraryModel:
    """`dictionary_learning.utils.load_dictionary(str(path), device="cpu")` (its dispatch on
    `trainer.dict_class`)."""
    from dictionary_learning.utils import load_dictionary as load

    module, _config = load(str(path), device="cpu")
    return _model("dictionary_learning.utils.load_dictionary", module)


def from_pretrained(path: Path) -> LibraryModel:
    """`<dict_class>.from_pretrained(str(path / "ae.pt"))`, the class named by config.json."""
    import importlib

    dict_class = _config(path)["trainer"]["dict_class"]
    cls = getattr(importlib.import_module(CLASSES[dict_class]), dict_class)
    module = cls.from_pretrained(str(path / "ae.pt"))
    return _model("dictionary_learning.<dict_class>.from_pretrained", module)


LOADERS: dict[str, Loader] = {
    "dictionary_learning.utils.load_dictionary": load_dictionary,
    "dictionary_learning.<dict_class>.from_pretrained": from_pretrained,
}
READS: dict[str, str] = dict.fromkeys(LOADERS, "dictionary_learning")
