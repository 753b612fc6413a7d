"""Writing a checkpoint in SAELens 6's format (CKPT-19): `cfg.json` + `sae_weights.safetensors`, the
layout `SAE.save_model` writes, so that `SAE.load_from_disk` reads it.

Only what SAELens computes the same way is written; anything else is refused with the reason, before a
file exists: a `normalised` decoder, an input scale, a skip term on a `tied` encoder. A BatchTopK
checkpoint is written as SAELens writes its own: a `jumprelu` whose thresholds all equal max(θ, 0)
(BTOPK-6). Values are written in the stored dtype, or in float64 where the reader computed them
(a fold, CKPT-9): never rounded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from refsae.checkpoints.errors import CheckpointError
from refsae.checkpoints.model import Checkpoint
from refsae.checkpoints.writing import exact_dtype, write_json, write_safetensors

NAMES: dict[tuple[str, str], str] = {
    ("relu", "sae"): "standard",
    ("topk", "sae"): "topk",
    ("jumprelu", "sae"): "jumprelu",
    ("batchtopk", "sae"): "jumprelu",
    ("gated", "sae"): "gated",
    ("relu", "transcoder"): "transcoder",
    ("relu", "skip_transcoder"): "skip_transcoder",
    ("jumprelu", "transcoder"): "jumprelu_transcoder",
    ("batchtopk", "transcoder"): "jumprelu_transcoder",
    ("jumprelu", "skip_transcoder"): "jumprelu_skip_transcoder",
    ("batchtopk", "skip_transcoder"): "jumprelu_skip_transcoder",
}
VERSION = "6.0.0"
"""The `metadata.sae_lens_version` written: SAELens reads the config as a 6.x one (no pre-6 translation)."""


def _refuse(ckpt: Checkpoint, dst: Path) -> None:
    key = (ckpt.architecture, ckpt.kind)
    if key not in NAMES:
        raise CheckpointError(dst, "architecture", f"SAELens has no {ckpt.architecture} {ckpt.kind}")
    if ckpt.decoder != "constrained":
        raise CheckpointError(
            dst, "decoder", "SAELens decodes with W_dec as stored: a normalised decoder cannot be written"
        )
    if ckpt.input_scale != 1.0:
        raise CheckpointError(dst, "input_scale", "SAELens stores no input scale (CKPT-10)")
    if ckpt.kind != "sae" and ckpt.encode == "tied":
        raise CheckpointError(
            dst, "encode", "SAELens's transcoders never subtract b_dec (apply_b_dec_to_input is refused)"
        )


def write(ckpt: Checkpoint, directory: Path) -> None:
    """Write `ckpt` into `directory` (created empty by `writing.atomic_directory`)."""
    _refuse(ckpt, directory)
    arrays: dict[str, np.ndarray] = {k: v for k, v in ckpt.params.items()}
    if ckpt.architecture == "batchtopk":
        arrays["threshold"] = np.full(ckpt.d_sae, max(float(arrays["threshold"]), 0.0))
    dtype = exact_dtype(arrays, ckpt.stored_dtype)
    cfg: dict[str, Any] = {
        "architecture": NAMES[(ckpt.architecture, ckpt.kind)],
        "d_in": ckpt.d_in,
        "d_sae": ckpt.d_sae,
        "dtype": dtype,
        "device": "cpu",
        "apply_b_dec_to_input": ckpt.encode == "tied",
        "normalize_activations": ckpt.row_norm,
        "reshape_activations": "none",
        "metadata": {"sae_lens_version": VERSION, "written_by": "refsae checkpoint convert"},
    }
    if ckpt.kind != "sae":
        cfg["d_out"] = ckpt.d_out
    if ckpt.architecture == "topk":
        cfg["k"], cfg["rescale_acts_by_decoder_norm"] = ckpt.k, False
    write_safetensors(directory / "sae_weights.safetensors", arrays, dtype)
    write_json(directory / "cfg.json", cfg)
