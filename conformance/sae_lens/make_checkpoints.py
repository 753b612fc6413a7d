"""Write tiny SAELens 6 checkpoints (the CKPT fixtures under tests/fixtures/checkpoints/sae_lens/).

Run `python conformance/sae_lens/make_checkpoints.py [OUTDIR]` in the SAELens venv (default OUTDIR:
`tests/fixtures/checkpoints/sae_lens` under the repository root); it regenerates the fixtures,
deterministically (fixed seed), so that running it twice gives byte-identical files.

Each `<OUTDIR>/<name>/` holds `cfg.json` and `sae_weights.safetensors` as written by SAELens's own
save code: `SAE.save_model` for the inference classes (standard, topk, abstopk, jumprelu, gated and
the four transcoders, plus variants of standard/topk with other config options), and
`TrainingSAE.save_inference_model` for `batchtopk`, which SAELens saves as a `jumprelu` SAE (decoder
norms folded in, `threshold = topk_threshold` for every latent). d_in 8, d_sae 32 (d_out 6 for
transcoders), float32. Every parameter and buffer is overwritten first with seeded random values:
nonzero biases, decoder rows of norm 0.5 to 2, thresholds in [0.1, 1.0] (some latents fire on
standard-normal x, some don't).

`pre6_standard/` and `pre6_topk/` hold a pre-6.0 `cfg.json` (no `sae_lens_version`, old keys such as
`hook_point`, `activation_fn_str`, `activation_fn_kwargs`, a boolean `normalize_activations`) and
weights written here with safetensors (pre6_standard also with the all-ones `scaling_factor` older
versions saved). SAELens 6 reads them with `SAE.load_from_disk` (`sae_lens_disk_loader`, then
`handle_config_defaulting` -> `handle_pre_6_0_config` in sae_lens/loading/pretrained_sae_loaders.py);
the script checks that it loads them and that every fixture round-trips through `load_from_disk`.
It runs itself under PYTHONHASHSEED=0 (batchtopk's cfg.json key order is set order).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sae_lens import (
    SAE,
    AbsTopKSAE,
    AbsTopKSAEConfig,
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
    GatedSAE,
    GatedSAEConfig,
    JumpReLUSAE,
    JumpReLUSAEConfig,
    JumpReLUSkipTranscoder,
    JumpReLUSkipTranscoderConfig,
    JumpReLUTranscoder,
    JumpReLUTranscoderConfig,
    SkipTranscoder,
    SkipTranscoderConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
    Transcoder,
    TranscoderConfig,
)
from safetensors.torch import save_file

SEED = 20240601
D_IN, D_SAE, D_OUT, K = 8, 32, 6, 4
TOPK_THRESHOLD = 0.45  # BatchTopK's running threshold, written as the JumpReLU threshold
DEFAULT_OUTDIR = Path(__file__).resolve().parents[2] / "tests/fixtures/checkpoints/sae_lens"


def draw(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Seeded non-trivial values for one parameter or buffer, by its SAELens name."""
    if name == "W_enc":
        return rng.normal(0.0, 1.0 / np.sqrt(shape[0]), shape)
    if name == "W_dec":  # rows = dictionary vectors, norms in [0.5, 2]
        rows = rng.normal(size=shape)
        scale = rng.uniform(0.5, 2.0, (shape[0], 1)) / np.linalg.norm(rows, axis=1, keepdims=True)
        return np.asarray(rows * scale)
    if name in ("b_enc", "b_dec", "b_gate", "b_mag"):
        return rng.normal(0.0, 0.5, shape)
    if name == "threshold":
        return rng.uniform(0.1, 1.0, shape)
    if name == "r_mag":
        return rng.normal(0.0, 0.3, shape)
    if name == "W_skip":  # (d_out, d_in)
        return rng.normal(0.0, 0.3, shape)
    if name == "topk_threshold":
        return np.full(shape, TOPK_THRESHOLD)
    raise KeyError(f"no rule for parameter {name!r}")


@torch.no_grad()
def randomise(sae: torch.nn.Module, rng: np.random.Generator) -> None:
    tensors = list(sae.named_parameters()) + list(sae.named_buffers())
    for name, tensor in sorted(tensors, key=lambda item: item[0]):
        tensor.copy_(torch.from_numpy(draw(name, tuple(tensor.shape), rng)).to(tensor.dtype))


def dims(transcoder: bool = False) -> dict[str, Any]:
    if transcoder:  # SAELens's transcoders refuse apply_b_dec_to_input=True
        return {"d_in": D_IN, "d_sae": D_SAE, "d_out": D_OUT, "apply_b_dec_to_input": False}
    return {"d_in": D_IN, "d_sae": D_SAE}


# fixture name -> constructor of the SAE (batchtopk: the training SAE, saved as jumprelu)
Builder = Callable[[], torch.nn.Module]
FIXTURES: dict[str, Builder] = {
    "standard": lambda: StandardSAE(StandardSAEConfig(**dims())),
    "standard_no_b_dec_in": lambda: StandardSAE(StandardSAEConfig(**dims(), apply_b_dec_to_input=False)),
    "standard_expected_average_only_in": lambda: StandardSAE(
        StandardSAEConfig(**dims(), normalize_activations="expected_average_only_in")
    ),
    "standard_layer_norm": lambda: StandardSAE(
        StandardSAEConfig(**dims(), normalize_activations="layer_norm")
    ),
    "standard_constant_norm_rescale": lambda: StandardSAE(
        StandardSAEConfig(**dims(), normalize_activations="constant_norm_rescale")
    ),
    "topk": lambda: TopKSAE(TopKSAEConfig(**dims(), k=K)),
    "topk_rescale": lambda: TopKSAE(TopKSAEConfig(**dims(), k=K, rescale_acts_by_decoder_norm=True)),
    "abstopk": lambda: AbsTopKSAE(AbsTopKSAEConfig(**dims(), k=K)),
    "batchtopk": lambda: BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(**dims(), k=K)),
    "jumprelu": lambda: JumpReLUSAE(JumpReLUSAEConfig(**dims())),
    "gated": lambda: GatedSAE(GatedSAEConfig(**dims())),
    "transcoder": lambda: Transcoder(TranscoderConfig(**dims(True))),
    "skip_transcoder": lambda: SkipTranscoder(SkipTranscoderConfig(**dims(True))),
    "jumprelu_transcoder": lambda: JumpReLUTranscoder(JumpReLUTranscoderConfig(**dims(True))),
    "jumprelu_skip_transcoder": lambda: JumpReLUSkipTranscoder(JumpReLUSkipTranscoderConfig(**dims(True))),
}

PRE6_CFGS: dict[str, dict[str, Any]] = {
    # SAELens <= 3 style: hook_point*, activation_fn_str, boolean normalize_activations
    "pre6_standard": {
        "architecture": "standard",
        "d_in": D_IN,
        "d_sae": D_SAE,
        "activation_fn_str": "relu",
        "apply_b_dec_to_input": True,
        "finetuning_scaling_factor": False,
        "model_name": "gpt2",
        "hook_point": "blocks.0.hook_resid_pre",
        "hook_point_layer": 0,
        "hook_point_head_index": None,
        "context_size": 128,
        "prepend_bos": True,
        "dataset_path": "NeelNanda/pile-10k",
        "normalize_activations": False,
        "dtype": "float32",
        "device": "cpu",
        "sae_lens_training_version": "3.5.0",
    },
    # SAELens 4/5 style: no architecture, activation_fn_kwargs k, apply_b_dec_to_input omitted
    "pre6_topk": {
        "d_in": D_IN,
        "d_sae": D_SAE,
        "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": K},
        "model_name": "gpt2",
        "hook_name": "blocks.0.hook_resid_pre",
        "hook_layer": 0,
        "hook_head_index": None,
        "context_size": 128,
        "normalize_activations": "none",
        "dtype": "float32",
        "device": "cpu",
        "sae_lens_training_version": "5.3.0",
    },
}


def probe() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(SEED + 1).normal(size=(64, D_IN))).float()


def check_roundtrip(path: Path, sae: Any, name: str) -> None:
    loaded = SAE.load_from_disk(path, device="cpu")
    for key, value in sae.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), (name, key)
    x = probe()
    f = loaded.encode(x)
    assert torch.equal(f, sae.encode(x)), name
    assert torch.equal(loaded(x), sae(x)), name
    frac = (f != 0).float().mean().item()
    assert 0.0 < frac < 1.0, (name, frac)


def write(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    for index, (name, build) in enumerate(FIXTURES.items()):
        path = outdir / name
        shutil.rmtree(path, ignore_errors=True)
        sae: Any = build()
        randomise(sae, np.random.default_rng([SEED, index]))
        if isinstance(sae, BatchTopKTrainingSAE):
            sae.save_inference_model(path)
            loaded = SAE.load_from_disk(path, device="cpu")
            assert isinstance(loaded, JumpReLUSAE), type(loaded)
            assert torch.all(loaded.threshold == torch.tensor(TOPK_THRESHOLD, dtype=torch.float32))
            frac = (loaded.encode(probe()) != 0).float().mean().item()
            assert 0.0 < frac < 1.0, (name, frac)
        else:
            sae.save_model(path)
            check_roundtrip(path, sae, name)
    for offset, (name, cfg) in enumerate(PRE6_CFGS.items(), start=len(FIXTURES)):
        path = outdir / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir()
        arch = StandardSAE(StandardSAEConfig(**dims()))
        ref: Any = arch if name == "pre6_standard" else TopKSAE(TopKSAEConfig(**dims(), k=K))
        randomise(ref, np.random.default_rng([SEED, offset]))
        weights = {k: v.detach().clone().contiguous() for k, v in ref.state_dict().items()}
        if name == "pre6_standard":
            weights["scaling_factor"] = torch.ones(D_SAE)
        save_file(weights, str(path / "sae_weights.safetensors"))
        (path / "cfg.json").write_text(json.dumps(cfg, indent=2) + "\n")
        loaded = SAE.load_from_disk(path, device="cpu")
        assert type(loaded) is type(ref), (name, type(loaded))
        assert loaded.cfg.apply_b_dec_to_input, name
        check_roundtrip(path, ref, name)
    print(f"wrote {len(FIXTURES) + len(PRE6_CFGS)} checkpoints under {outdir}")


if __name__ == "__main__":
    # save_inference_model writes cfg.json in the order of a set of field names (sae.py:1000-1004),
    # i.e. string-hash order: pin the hash seed so that reruns are byte-identical.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTDIR)
