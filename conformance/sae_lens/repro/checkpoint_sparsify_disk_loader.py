"""sae-lens 6.54.12: `SAE.load_from_disk(path, converter=sparsify_disk_loader)` cannot load a sparsify
checkpoint. sparsify's `SparseCoder.save_to_disk` stores `W_dec` as (num_latents, d_in), the dictionary
vectors as rows (sparsify/sparse_coder.py, `W_dec = nn.Parameter(encoder.weight.data.clone())`), the
layout SAELens's own `W_dec` has; `sparsify_disk_loader` transposes it (sae_lens/loading/
pretrained_sae_loaders.py, lines 1501-1504), so `load_state_dict` raises a size mismatch whenever
d_in != num_latents (CKPT-14, CKPT-20). The files below are written with safetensors exactly as
save_to_disk writes them (cfg.json = the SparseCoderConfig fields plus d_in)."""

import json
import tempfile
from pathlib import Path

import torch
from sae_lens import SAE
from sae_lens.loading.pretrained_sae_loaders import sparsify_disk_loader
from safetensors.torch import save_file

d_in, d_sae, k = 8, 32, 4
g = torch.Generator().manual_seed(0)
encoder_weight = torch.randn(d_sae, d_in, generator=g)
tensors = {
    "encoder.weight": encoder_weight,  # nn.Linear(d_in, d_sae).weight: (d_sae, d_in)
    "encoder.bias": torch.randn(d_sae, generator=g),
    "W_dec": torch.randn(d_sae, d_in, generator=g),  # (num_latents, d_in), rows are dictionary vectors
    "b_dec": torch.randn(d_in, generator=g),
}
cfg = {"activation": "topk", "expansion_factor": 32, "normalize_decoder": True, "num_latents": d_sae,
       "k": k, "multi_topk": False, "skip_connection": False, "transcode": False, "d_in": d_in}  # fmt: skip

with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "layers.0"
    path.mkdir()
    save_file(tensors, str(path / "sae.safetensors"))
    (path / "cfg.json").write_text(json.dumps(cfg))
    try:
        sae = SAE.load_from_disk(path, device="cpu", dtype="float32", converter=sparsify_disk_loader)
    except RuntimeError as e:
        print("load_from_disk raised:", str(e).splitlines()[-1].strip())
        print("BUG REPRODUCED")
        raise SystemExit(1) from None
x = torch.randn(5, d_in, generator=g)
print("loaded; W_dec", tuple(sae.W_dec.shape), "matches", torch.equal(sae.W_dec, tensors["W_dec"]))
print("fixed" if torch.equal(sae.W_dec, tensors["W_dec"]) else "BUG REPRODUCED")
raise SystemExit(0 if torch.equal(sae.W_dec, tensors["W_dec"]) else 1)
