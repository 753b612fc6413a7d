"""SAELens 6 (`sae_lens`, https://github.com/decoderesearch/SAELens): `cfg.json` +
`sae_weights.safetensors`, as `SAE.save_model` writes them (CKPT-7..CKPT-11).

The weights have refsae's names and layouts (W_enc (d_in, d_sae), W_dec (d_sae, d_out), no transposes).
The config says the rest:

| cfg.json | refsae |
|---|---|
| `architecture` standard / topk / jumprelu / gated | `relu` / `topk` / `jumprelu` / `gated` |
| `architecture` (jumprelu_)(skip_)transcoder | kind and activation |
| `k` (topk) | k |
| `rescale_acts_by_decoder_norm` (topk) | folded: W_enc, b_enc ⊙ ‖W_dec_j‖, W_dec_j / ‖W_dec_j‖ (CKPT-9) |
| `apply_b_dec_to_input` | `tied` (true) / `untied` (false) |
| `normalize_activations` | row normalisations (CKPT-10); `expected_average_only_in`: a note |
| `metadata.training_architecture` | a note (BatchTopK is saved as `jumprelu`, CKPT-8) |

A config without `sae_lens_version` (top level or in `metadata`) older than 6 is first translated as
SAELens's `handle_pre_6_0_config` does (CKPT-11): `activation_fn_str` → `activation_fn`, missing
`apply_b_dec_to_input` → true, a boolean `normalize_activations` → `none` / `expected_average_only_in`,
`activation_fn = topk` with `activation_fn_kwargs.k` → architecture `topk`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from refsae.checkpoints import files
from refsae.checkpoints.errors import CheckpointError
from refsae.checkpoints.formats import Format
from refsae.checkpoints.formats.sae_lens_cfg import ARCHITECTURES, pre6
from refsae.checkpoints.formats.sae_lens_write import write as write
from refsae.checkpoints.model import Checkpoint, Source
from refsae.checkpoints.options import Options
from refsae.checkpoints.validate import checked

CFG, WEIGHTS = "cfg.json", "sae_weights.safetensors"
NORMS = ("none", "expected_average_only_in", "constant_norm_rescale", "layer_norm")


def read(path: Path, options: Options) -> Checkpoint:
    cfg_file = path / CFG
    raw = files.read_json(cfg_file)
    cfg, translated = pre6(raw)
    notes: list[str] = []
    if translated:
        notes.append("a pre-6 config, translated as SAELens's handle_pre_6_0_config does (CKPT-11)")
    how = "translated from a pre-6 key" if translated else ""
    name = files.need(cfg, "architecture", cfg_file, str)
    if name not in ARCHITECTURES:
        raise CheckpointError(
            cfg_file,
            "architecture",
            f"{name!r} is not an architecture refsae defines: {', '.join(ARCHITECTURES)}",
        )
    architecture, kind = ARCHITECTURES[name]
    arrays, dtypes = files.read_safetensors(path / WEIGHTS)
    sources: dict[str, Source] = {n: Source(WEIGHTS, n) for n in arrays}
    sources["architecture"] = sources["kind"] = Source(
        CFG, "architecture", how if "architecture" not in raw else ""
    )
    dims = {"d_in": files.need(cfg, "d_in", cfg_file, int), "d_sae": files.need(cfg, "d_sae", cfg_file, int)}
    sources["dim.d_in"], sources["dim.d_sae"] = Source(CFG, "d_in"), Source(CFG, "d_sae")
    if kind != "sae":
        dims["d_out"] = files.need(cfg, "d_out", cfg_file, int)
        sources["dim.d_out"] = Source(CFG, "d_out")
    tied = files.check_type(cfg.get("apply_b_dec_to_input", True), "apply_b_dec_to_input", cfg_file, bool)
    sources["encode"] = Source(CFG, "apply_b_dec_to_input", how if "apply_b_dec_to_input" not in raw else "")
    norm = files.check_type(cfg.get("normalize_activations", "none"), "normalize_activations", cfg_file, str)
    if norm not in NORMS:
        raise CheckpointError(
            cfg_file, "normalize_activations", f"{norm!r}: refsae defines {', '.join(NORMS)}"
        )
    if norm == "expected_average_only_in":
        notes.append(
            "normalize_activations = expected_average_only_in: the weights were trained on inputs scaled "
            "by a factor these files do not store; SAELens applies no scaling at inference (CKPT-10)"
        )
    if "scaling_factor" in arrays:  # pre-6 files; SAELens's loader drops it when it is all ones
        if not np.all(arrays["scaling_factor"] == 1.0):
            raise CheckpointError(
                path / WEIGHTS,
                "scaling_factor",
                "a fine-tuning scaling factor (≠ 1) is not defined by refsae",
            )
        del arrays["scaling_factor"]
        notes.append("scaling_factor: all ones, dropped (as SAELens's loader does)")
    if cfg.get("finetuning_scaling_factor"):
        raise CheckpointError(
            cfg_file, "finetuning_scaling_factor", "a fine-tuning scaling factor is not defined by refsae"
        )
    params, k, rescaled = _params(arrays, cfg, cfg_file, architecture)
    if rescaled:
        notes.append(
            "rescale_acts_by_decoder_norm: TopK of z ⊙ ‖W_dec_j‖, decoded by W_dec_j / ‖W_dec_j‖ (CKPT-9)"
        )
        how = "⊙ ‖W_dec_j‖ (rescale_acts_by_decoder_norm)"
        sources["W_enc"], sources["b_enc"] = Source(WEIGHTS, "W_enc", how), Source(WEIGHTS, "b_enc", how)
        sources["W_dec"] = Source(WEIGHTS, "W_dec", "rows / ‖W_dec_j‖ (rescale_acts_by_decoder_norm)")
    if k is not None:
        sources["k"] = Source(CFG, "k" if "k" in raw else "activation_fn_kwargs.k")
    if norm in ("constant_norm_rescale", "layer_norm"):
        sources["row_norm"] = Source(CFG, "normalize_activations")
    trained = (
        cfg.get("metadata", {}).get("training_architecture")
        if isinstance(cfg.get("metadata"), dict)
        else None
    )
    if trained and trained != name:
        notes.append(f"trained as {trained!r} (metadata.training_architecture), saved as {name!r} (CKPT-8)")
    if cfg.get("reshape_activations", "none") not in ("none", None):
        notes.append(
            f"reshape_activations = {cfg['reshape_activations']}: inputs are flattened heads; same function"
        )
    ckpt = Checkpoint(
        format="sae_lens",
        path=path,
        architecture=architecture,  # type: ignore[arg-type]
        kind=kind,  # type: ignore[arg-type]
        params=params,
        k=k,
        encode="tied" if tied else "untied",
        row_norm=norm if norm in ("constant_norm_rescale", "layer_norm") else "none",
        stored_dtype=_stored(dtypes, path / WEIGHTS),
        sources=sources,
        notes=tuple(notes),
    )
    return checked(ckpt, dims=dims)


def _params(
    arrays: dict[str, np.ndarray], cfg: dict[str, Any], cfg_file: Path, architecture: str
) -> tuple[dict[str, np.ndarray], int | None, bool]:
    """(parameters, k, whether rescale_acts_by_decoder_norm was folded in, CKPT-9): TopK of z ⊙ n
    decoded by (f / n) W_dec equals TopK of x (W_enc ⊙ n) + b_enc ⊙ n decoded by W_dec / n, n_j =
    ‖W_dec_j‖; refsae holds the folded parameters, computed in float64."""
    params = dict(arrays)
    if architecture != "topk":
        return params, None, False
    k = files.need(cfg, "k", cfg_file, int)
    key = "rescale_acts_by_decoder_norm"
    rescale = files.check_type(cfg.get(key, False), key, cfg_file, bool)
    if not rescale or not {"W_enc", "b_enc", "W_dec"} <= set(params):
        return params, k, False  # `checked` names a missing parameter
    n = np.linalg.norm(params["W_dec"], axis=-1)
    if not (n > 0).all():
        raise CheckpointError(
            cfg_file, key, f"decoder rows {np.flatnonzero(n == 0).tolist()} are zero: no norm to rescale by"
        )
    params["W_enc"], params["b_enc"] = params["W_enc"] * n, params["b_enc"] * n
    params["W_dec"] = params["W_dec"] / n[:, None]
    return params, k, True


def _stored(dtypes: dict[str, str], file: Path) -> str:
    kinds = sorted(set(dtypes.values()))
    if len(kinds) > 1:
        raise CheckpointError(file, "", f"tensors stored in several dtypes: {kinds}")
    return kinds[0] if kinds else "float32"


FORMAT = Format(name="sae_lens", marks=(CFG, WEIGHTS), read=read, write=write)
