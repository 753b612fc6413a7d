"""saev 0.1.0 (https://github.com/samuelstevens/saev): `sae.pt`, one JSON line (the
`config.SparseAutoencoder` fields: d_vit, exp_factor, …) followed by a torch-saved state dict, as
`saev.nn.dump` writes it (CKPT-15).

Keys W_enc, b_enc, W_dec, b_dec in refsae's layouts; a ReLU SAE that subtracts b_dec (`tied`); d_in =
`d_vit`, d_sae = d_vit · `exp_factor`. `normalize_w_dec` and `remove_parallel_grads` act in training only.
The data loader's normalisation (`scale_mean`, `scale_norm`) is not in the file: the function is on the
activations as the training run normalised them (a note).
"""

from __future__ import annotations

import json
from pathlib import Path

from refsae.checkpoints import files
from refsae.checkpoints.errors import CheckpointError
from refsae.checkpoints.formats import Format
from refsae.checkpoints.model import Checkpoint, Source
from refsae.checkpoints.options import Options
from refsae.checkpoints.validate import checked

FILE = "sae.pt"


def read(path: Path, options: Options) -> Checkpoint:
    file = path / FILE if path.is_dir() else path
    if not file.is_file():
        raise CheckpointError(file, "", "file not found")
    data = file.read_bytes()
    line, sep, rest = data.partition(b"\n")
    if not sep:
        raise CheckpointError(file, "header", "no JSON header line before the state dict")
    try:
        header = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(file, "header", f"the first line is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(file, "header", "the first line is not a JSON object")
    d_in = files.need(header, "d_vit", file, int)
    d_sae = d_in * files.need(header, "exp_factor", file, int)
    arrays, dtypes = files.read_torch(file, rest)
    params, sources = files.rename(arrays, FILE, {})
    sources["architecture"] = sources["kind"] = sources["encode"] = Source(
        FILE, "", "saev 0.1.0 has one architecture"
    )
    sources["dim.d_in"] = Source(FILE, "header.d_vit")
    sources["dim.d_sae"] = Source(FILE, "header.exp_factor", "d_vit · exp_factor")
    ckpt = Checkpoint(
        format="saev",
        path=file.parent,
        architecture="relu",
        params=params,
        encode="tied",
        stored_dtype=files.stored_dtype(dtypes, file),
        sources=sources,
        notes=(
            "inputs as the training run's data loader normalised them (scale_mean / scale_norm, not stored)",
        ),
    )
    return checked(ckpt, dims={"d_in": d_in, "d_sae": d_sae})


FORMAT = Format(name="saev", marks=(FILE,), read=read)
