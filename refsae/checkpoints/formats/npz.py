"""A bare `params.npz` (CKPT-17): the layout Gemma Scope publishes, W_enc (d_in, d_sae), W_dec
(d_sae, d_in), b_enc, b_dec and, for JumpReLU, `threshold`, with no config file.

The file does not say the conventions; the user states them (`Options`, the CLI's `--architecture`,
`--encode`, `--k`, …). Unstated, refsae takes Gemma Scope's: `jumprelu` when a threshold is stored,
else `relu`; `untied` (x W_enc + b_enc, b_dec not subtracted); `constrained` decoder. The report
marks each of these as stated or defaulted.
"""

from __future__ import annotations

from pathlib import Path

from refsae.checkpoints import files
from refsae.checkpoints.errors import CheckpointError
from refsae.checkpoints.formats import Format
from refsae.checkpoints.formats.stated import stated
from refsae.checkpoints.model import PARAMETERS, Checkpoint, Source
from refsae.checkpoints.options import Options
from refsae.checkpoints.validate import checked


def read(path: Path, options: Options) -> Checkpoint:
    file = path if path.suffix == ".npz" else path / "params.npz"
    arrays, dtypes = files.read_npz(file)
    for key in arrays:
        if key not in PARAMETERS:
            raise CheckpointError(file, key, f"not a parameter name of this layout: {', '.join(PARAMETERS)}")
    default = "jumprelu" if "threshold" in arrays else "relu"
    sources = {name: Source(file.name, name) for name in arrays}
    items, stated_sources = stated(
        options, file.name, {"architecture": default, "kind": "sae", "encode": "untied"}
    )
    sources.update(stated_sources)
    sources["stored_dtype"] = Source(file.name, "", "the arrays' dtype")
    ckpt = Checkpoint(
        format="npz",
        path=file,
        architecture=items["architecture"],  # type: ignore[arg-type]
        kind=items["kind"],  # type: ignore[arg-type]
        params=arrays,
        k=options.k,
        encode=items["encode"],  # type: ignore[arg-type]
        decoder=items["decoder"],  # type: ignore[arg-type]
        input_scale=items["input_scale"],  # type: ignore[arg-type]
        stored_dtype=_one(dtypes, file),
        sources=sources,
    )
    return checked(ckpt)


def _one(dtypes: dict[str, str], file: Path) -> str:
    kinds = sorted(set(dtypes.values()))
    if len(kinds) > 1:
        raise CheckpointError(file, "", f"parameters stored in several dtypes: {kinds}")
    return kinds[0] if kinds else "float32"


FORMAT = Format(name="npz", marks=("params.npz",), read=read)
