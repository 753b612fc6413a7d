"""sparsify (https://github.com/EleutherAI/sparsify): `cfg.json` + `sae.safetensors`, one folder per
hookpoint, as `SparseCoder.save_to_disk` writes them (CKPT-14).

Keys: `encoder.weight` (d_sae, d_in) → W_enc transposed, `encoder.bias` → b_enc, `W_dec` (d_sae, d_in)
and `b_dec` as is, `W_skip` (d_in, d_in) as is (applied as x W_skipᵀ to the raw input). Config:
`activation` topk → `topk` with `k` (groupmax is refused: refsae does not define it yet); `num_latents`
(or d_in · `expansion_factor` when 0) → d_sae; `transcode` true → `untied` and kind transcoder (b_dec
not subtracted), false → `tied`; `skip_connection` → the skip term; `normalize_decoder` acts only in
training (a note); `multi_topk` changes only what `forward` returns in training (a note).
"""

from __future__ import annotations

from pathlib import Path

from refsae.checkpoints import files
from refsae.checkpoints.errors import CheckpointError
from refsae.checkpoints.formats import Format
from refsae.checkpoints.model import Checkpoint, Source
from refsae.checkpoints.options import Options
from refsae.checkpoints.validate import checked

CFG, WEIGHTS = "cfg.json", "sae.safetensors"
NAMES = {"encoder.weight": ("W_enc", True), "encoder.bias": ("b_enc", False)}


def read(path: Path, options: Options) -> Checkpoint:
    cfg_file = path / CFG
    cfg = files.read_json(cfg_file)
    activation = files.need(cfg, "activation", cfg_file, str) if "activation" in cfg else "topk"
    if activation != "topk":
        raise CheckpointError(
            cfg_file, "activation", f"{activation!r}: refsae defines topk only here (issue 16)"
        )
    transcode = files.check_type(cfg.get("transcode", False), "transcode", cfg_file, bool)
    skip = files.check_type(cfg.get("skip_connection", False), "skip_connection", cfg_file, bool)
    d_in = files.need(cfg, "d_in", cfg_file, int)
    d_sae = files.need(cfg, "num_latents", cfg_file, int) or d_in * files.need(
        cfg, "expansion_factor", cfg_file, int
    )
    arrays, dtypes = files.read_safetensors(path / WEIGHTS)
    params, sources = files.rename(arrays, WEIGHTS, NAMES)
    notes = []
    if skip and not transcode:
        notes.append("an SAE with a skip connection: kind skip_transcoder with target x (CKPT-14)")
    if cfg.get("multi_topk"):
        sources["multi_topk"] = Source(CFG, "multi_topk")
        notes.append(
            "multi_topk: forward returns the top-4k reconstruction (a training objective); encode keeps k"
        )
    if cfg.get("normalize_decoder"):
        notes.append(
            "normalize_decoder: applied at initialisation and in training only; W_dec is used as stored"
        )
    sources["architecture"] = Source(
        CFG, "activation", "" if "activation" in cfg else "missing: sparsify's default"
    )
    sources["k"] = Source(CFG, "k")
    sources["encode"] = Source(CFG, "transcode")
    sources["kind"] = Source(CFG, "skip_connection" if skip else "transcode")
    sources["dim.d_in"], sources["dim.d_sae"] = Source(CFG, "d_in"), Source(CFG, "num_latents")
    kind = "skip_transcoder" if skip else "transcoder" if transcode else "sae"
    ckpt = Checkpoint(
        format="sparsify",
        path=path,
        architecture="topk",
        kind=kind,  # type: ignore[arg-type]
        params=params,
        k=files.need(cfg, "k", cfg_file, int),
        encode="untied" if transcode else "tied",
        stored_dtype=files.stored_dtype(dtypes, path / WEIGHTS),
        sources=sources,
        notes=tuple(notes),
    )
    return checked(ckpt, dims={"d_in": d_in, "d_sae": d_sae})


FORMAT = Format(name="sparsify", marks=(CFG, WEIGHTS), read=read)
