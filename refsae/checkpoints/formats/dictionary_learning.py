"""dictionary_learning (https://github.com/saprmarks/dictionary_learning): `ae.pt` (a torch state
dict) + `config.json` ({"trainer": {...}, "buffer": {...}}), as `trainSAE` writes them (CKPT-12, CKPT-13).

| `trainer.dict_class` | architecture | encode |
|---|---|---|
| AutoEncoder | relu | tied |
| AutoEncoderTopK | topk (k; its `threshold` unused by `encode`'s default) | tied |
| BatchTopKSAE, MatryoshkaBatchTopKSAE | batchtopk (θ = `threshold`) | tied |
| JumpReluAutoEncoder | jumprelu | untied |
| GatedAutoEncoder | gated | tied |

Keys: `encoder.weight`ᵀ → W_enc, `encoder.bias` → b_enc, `decoder.weight`ᵀ → W_dec (nn.Linear layouts,
transposed), `bias` (AutoEncoder) or `b_dec` → b_dec; Gated: `gate_bias` → b_gate, `mag_bias` → b_mag,
`r_mag`, `decoder_bias` → b_dec; Matryoshka and JumpReLU: `W_enc`, `b_enc`, `W_dec`, `b_dec` as stored.

Activation normalisation (`trainSAE(normalize_activations=True)`) multiplies the biases and thresholds by
the norm factor before saving (`scale_biases`): the files compute the function on raw activations and
store no factor (CKPT-13); `config.json` does not record it either (it is written before the factor is
computed).
"""

from __future__ import annotations

from pathlib import Path

from refsae.checkpoints import files
from refsae.checkpoints.errors import CheckpointError
from refsae.checkpoints.formats import Format
from refsae.checkpoints.model import Checkpoint, Source
from refsae.checkpoints.options import Options
from refsae.checkpoints.validate import checked

CONFIG, WEIGHTS = "config.json", "ae.pt"
LINEAR = {
    "encoder.weight": ("W_enc", True),
    "encoder.bias": ("b_enc", False),
    "decoder.weight": ("W_dec", True),
}
CLASSES: dict[str, tuple[str, str, dict[str, tuple[str, bool]]]] = {
    "AutoEncoder": ("relu", "tied", {**LINEAR, "bias": ("b_dec", False)}),
    "AutoEncoderTopK": ("topk", "tied", LINEAR),
    "BatchTopKSAE": ("batchtopk", "tied", LINEAR),
    "MatryoshkaBatchTopKSAE": ("batchtopk", "tied", {}),
    "JumpReluAutoEncoder": ("jumprelu", "untied", {}),
    "GatedAutoEncoder": (
        "gated",
        "tied",
        {
            **LINEAR,
            "gate_bias": ("b_gate", False),
            "mag_bias": ("b_mag", False),
            "decoder_bias": ("b_dec", False),
        },
    ),
}
"""dict_class → (architecture, encode, stored key → (canonical name, transposed))."""


def read(path: Path, options: Options) -> Checkpoint:
    cfg_file = path / CONFIG
    cfg = files.read_json(cfg_file)
    trainer = files.need(cfg, "trainer", cfg_file, dict)
    dict_class = files.need(trainer, "dict_class", cfg_file, str)
    if dict_class not in CLASSES:
        raise CheckpointError(
            cfg_file, "trainer.dict_class", f"{dict_class!r}: refsae reads {', '.join(CLASSES)}"
        )
    architecture, encode, names = CLASSES[dict_class]
    arrays, dtypes = files.read_torch(path / WEIGHTS, integers=frozenset({"k", "group_sizes"}))
    notes: list[str] = []
    k = None
    if architecture in ("topk", "batchtopk"):
        k = files.need(trainer, "k", cfg_file, int)
        if "k" in arrays and int(arrays["k"]) != k:
            raise CheckpointError(
                path / WEIGHTS, "k", f"k = {int(arrays['k'])} but trainer.k = {k} in {CONFIG}"
            )
        arrays.pop("k", None)
    if architecture == "topk" and "threshold" in arrays:
        notes.append(
            "threshold: stored, unused by AutoEncoderTopK.encode's default (use_threshold=False); dropped"
        )
        del arrays["threshold"]
    if "group_sizes" in arrays:
        sizes = arrays.pop("group_sizes").tolist()
        notes.append(
            f"Matryoshka group sizes {sizes}: every group is active at inference (a BatchTopK threshold)"
        )
    params, sources = files.rename(arrays, WEIGHTS, names)
    sources["architecture"] = sources["kind"] = Source(CONFIG, "trainer.dict_class")
    sources["encode"] = Source(
        CONFIG,
        "trainer.dict_class",
        f"{dict_class}.encode subtracts b_dec"
        if encode == "tied"
        else f"{dict_class}.encode does not subtract b_dec",
    )
    if k is not None:
        sources["k"] = Source(CONFIG, "trainer.k")
    dims = {
        "d_in": files.need(trainer, "activation_dim", cfg_file, int),
        "d_sae": files.need(trainer, "dict_size", cfg_file, int),
    }
    sources["dim.d_in"], sources["dim.d_sae"] = (
        Source(CONFIG, "trainer.activation_dim"),
        Source(CONFIG, "trainer.dict_size"),
    )
    notes.append(
        "a norm factor, if one was used in training, is folded into the biases and thresholds (CKPT-13)"
    )
    ckpt = Checkpoint(
        format="dictionary_learning",
        path=path,
        architecture=architecture,  # type: ignore[arg-type]
        params=params,
        k=k,
        encode=encode,  # type: ignore[arg-type]
        stored_dtype=files.stored_dtype(dtypes, path / WEIGHTS),
        sources=sources,
        notes=tuple(notes),
    )
    return checked(ckpt, dims=dims)


FORMAT = Format(name="dictionary_learning", marks=(CONFIG, WEIGHTS), read=read)
