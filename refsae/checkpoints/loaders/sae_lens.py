"""SAELens's own loaders (PyPI `sae-lens` 6.54), of its own format and of the other libraries'
formats it converts.

- `sae_lens.SAE.load_from_disk`: `SAE.load_from_disk(path, device="cpu", dtype="float64")` on a
  SAELens folder (`cfg.json` + `sae_weights.safetensors`, as `SAE.save_model` /
  `TrainingSAE.save_inference_model` write them; a pre-6.0 `cfg.json`, without `sae_lens_version`,
  is translated by `handle_pre_6_0_config`). Any registered inference architecture: standard,
  topk, abstopk, jumprelu (also what batchtopk is saved as), gated, transcoder, skip_transcoder,
  jumprelu_transcoder, jumprelu_skip_transcoder.
- `sae_lens.sparsify_disk_loader`: `SAE.load_from_disk(path, ..., converter=sparsify_disk_loader)`
  on a sparsify hookpoint folder (`cfg.json` with `d_in`, `k`, `num_latents` or
  `expansion_factor`, `normalize_decoder`, + `sae.safetensors` with `encoder.weight`
  (d_sae, d_in), `encoder.bias`, `W_dec`, `b_dec`). SAELens reads it as a `topk` SAE with
  `apply_b_dec_to_input = not normalize_decoder`, `W_enc = encoder.weight.T`,
  `W_dec = W_dec.T`, and ignores `transcode`, `skip_connection`/`W_skip`, `activation`. It only
  accepts a folder named `embed_tokens` or matching `layers[._]N`; any other folder is copied to a
  temporary `layers.0/` first (same files, same bytes).
- `sae_lens.dictionary_learning_sae_huggingface_loader_1`: `SAE.from_pretrained(release=<folder>,
  sae_id=".", dtype="float64", converter=dictionary_learning_sae_huggingface_loader_1)` on a
  dictionary_learning folder (`ae.pt` state dict + `config.json` with `trainer.dict_class`,
  `activation_dim`, `dict_size`, `k`, `layer`, `lm_name` and `buffer.ctx_len`). The loader only
  downloads from the Hugging Face Hub: its `hf_hub_download` is replaced, for the call, by a
  function returning `<release>/<filename>` on the local disk; the rest is SAELens's code.

encode, decode and forward are the loaded SAE's own `encode`, `decode` and `forward` (a
transcoder's forward maps x to the target, with `x @ W_skip.T` for skip transcoders), computed in
float64 (the weights are cast on load). For `normalize_activations` "layer_norm" and
"constant_norm_rescale", SAELens's decode reads statistics its encode stored, so decode alone
raises. The library is imported inside the loaders only.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from refsae.checkpoints.library import LibraryModel, Loader, through_torch


def _model(loader: str, sae: Any) -> LibraryModel:
    """A LibraryModel over a loaded SAELens SAE, cast to float64 and in eval mode."""
    import torch

    sae = sae.to(torch.float64)  # SAE.to also sets cfg.dtype and sae.dtype (used by process_sae_in)
    sae.eval()

    dtype = str(sae.W_enc.dtype).removeprefix("torch.")
    return LibraryModel(
        loader=loader,
        encode=through_torch(sae.encode),
        decode=through_torch(sae.decode),
        forward=through_torch(sae.forward),
        dtype=dtype,
    )


def load_from_disk(path: Path) -> LibraryModel:
    """`sae_lens.SAE.load_from_disk(path, device="cpu", dtype="float64")`."""
    from sae_lens import SAE

    sae = SAE.load_from_disk(path, device="cpu", dtype="float64")
    return _model("sae_lens.SAE.load_from_disk", sae)


_SPARSIFY_FOLDER = re.compile(r"layers[._](\d+)")


def sparsify_disk_loader(path: Path) -> LibraryModel:
    """`SAE.load_from_disk(path, device="cpu", dtype="float64", converter=sparsify_disk_loader)`,
    through a copy named `layers.0` when the folder's name is not one SAELens accepts."""
    from sae_lens import SAE
    from sae_lens.loading.pretrained_sae_loaders import sparsify_disk_loader as converter

    name = "sae_lens.sparsify_disk_loader"
    if path.name == "embed_tokens" or _SPARSIFY_FOLDER.search(path.name):
        sae = SAE.load_from_disk(path, device="cpu", dtype="float64", converter=converter)
        return _model(name, sae)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "layers.0"
        shutil.copytree(path, copy)
        sae = SAE.load_from_disk(copy, device="cpu", dtype="float64", converter=converter)
    return _model(name, sae)


def dictionary_learning_sae_huggingface_loader_1(path: Path) -> LibraryModel:
    """`SAE.from_pretrained(str(path), ".", dtype="float64",
    converter=dictionary_learning_sae_huggingface_loader_1)` with the Hub download replaced by a
    local path lookup."""
    import warnings
    from unittest import mock

    from sae_lens import SAE
    from sae_lens.loading import pretrained_sae_loaders as loaders

    def local(repo_id: str, filename: str, **_: Any) -> str:
        return str(Path(repo_id) / filename)

    with mock.patch.object(loaders, "hf_hub_download", local), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not a registered release" / norm_scaling_factor notes
        sae = SAE.from_pretrained(
            str(path.resolve()),
            ".",
            device="cpu",
            dtype="float64",
            converter=loaders.dictionary_learning_sae_huggingface_loader_1,
        )
    return _model("sae_lens.dictionary_learning_sae_huggingface_loader_1", sae)


LOADERS: dict[str, Loader] = {
    "sae_lens.SAE.load_from_disk": load_from_disk,
    "sae_lens.sparsify_disk_loader": sparsify_disk_loader,
    "sae_lens.dictionary_learning_sae_huggingface_loader_1": dictionary_learning_sae_huggingface_loader_1,
}

READS: dict[str, str] = {
    "sae_lens.SAE.load_from_disk": "sae_lens",
    "sae_lens.sparsify_disk_loader": "sparsify",
    "sae_lens.dictionary_learning_sae_huggingface_loader_1": "dictionary_learning",
}
