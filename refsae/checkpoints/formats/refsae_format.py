"""refsae's own format (CKPT-18): `refsae.json` names every item of the function (the conventions
by their spec names) and `params.safetensors` holds the canonical parameters (notation.md layouts:
W_enc (d_in, d_sae), W_dec (d_sae, d_out) …) in the stored dtype. Nothing is inferred: every item of
`Checkpoint` is a key, and a reader refuses an unknown or missing one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from refsae.checkpoints import files
from refsae.checkpoints.errors import CheckpointError
from refsae.checkpoints.formats import Format
from refsae.checkpoints.formats.stated import CHOICES
from refsae.checkpoints.model import Checkpoint, Source
from refsae.checkpoints.options import Options
from refsae.checkpoints.validate import checked
from refsae.checkpoints.writing import exact_dtype, write_json, write_safetensors

VERSION = 1
KEYS: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "version": int,
    "architecture": str,
    "kind": str,
    "k": (int, type(None)),
    "encode": str,
    "decoder": str,
    "input_scale": (float, int),
    "row_norm": str,
    "stored_dtype": str,
    "d_in": int,
    "d_sae": int,
    "d_out": int,
}


def read(path: Path, options: Options) -> Checkpoint:
    cfg_file, weights = path / "refsae.json", path / "params.safetensors"
    cfg = files.read_json(cfg_file)
    for key in cfg:
        if key not in KEYS:
            raise CheckpointError(cfg_file, key, f"unknown key; this format has {', '.join(KEYS)}")
    values: dict[str, Any] = {key: files.need(cfg, key, cfg_file, kind) for key, kind in KEYS.items()}
    if values["format"] != "refsae" or values["version"] != VERSION:
        raise CheckpointError(
            cfg_file, "version", f"refsae format version {VERSION} expected, got {values['version']}"
        )
    for item, choices in CHOICES.items():
        if values[item] not in choices:
            raise CheckpointError(cfg_file, item, f"{values[item]!r} is not one of {', '.join(choices)}")
    arrays, dtypes = files.read_safetensors(weights)
    if set(dtypes.values()) - {values["stored_dtype"]}:
        raise CheckpointError(
            weights, "", f"tensors in {sorted(set(dtypes.values()))}, config says {values['stored_dtype']}"
        )
    sources = {name: Source(weights.name, name) for name in arrays}
    for item in (*CHOICES, "k", "input_scale", "row_norm", "stored_dtype"):
        sources[item] = Source(cfg_file.name, item)
    for dim in ("d_in", "d_sae", "d_out"):
        sources[f"dim.{dim}"] = Source(cfg_file.name, dim)
    ckpt = Checkpoint(
        format="refsae",
        path=path,
        architecture=values["architecture"],
        kind=values["kind"],
        params=arrays,
        k=values["k"],
        encode=values["encode"],
        decoder=values["decoder"],
        input_scale=float(values["input_scale"]),
        row_norm=values["row_norm"],
        stored_dtype=values["stored_dtype"],
        sources=sources,
    )
    return checked(ckpt, dims={d: values[d] for d in ("d_in", "d_sae", "d_out")})


def write(ckpt: Checkpoint, directory: Path) -> None:
    """Write `ckpt` into `directory` (already created, empty; `writing.atomic_directory`)."""
    dtype = exact_dtype(ckpt.params, ckpt.stored_dtype)
    write_safetensors(directory / "params.safetensors", ckpt.params, dtype)
    write_json(
        directory / "refsae.json",
        {
            "format": "refsae",
            "version": VERSION,
            "architecture": ckpt.architecture,
            "kind": ckpt.kind,
            "k": ckpt.k,
            "encode": ckpt.encode,
            "decoder": ckpt.decoder,
            "input_scale": ckpt.input_scale,
            "row_norm": ckpt.row_norm,
            "stored_dtype": dtype,
            "d_in": ckpt.d_in,
            "d_sae": ckpt.d_sae,
            "d_out": ckpt.d_out,
        },
    )


FORMAT = Format(name="refsae", marks=("refsae.json", "params.safetensors"), read=read, write=write)
