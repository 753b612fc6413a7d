"""Items the user states (`Options`) over a format's defaults, with their sources (CKPT-4)."""

from __future__ import annotations

from refsae.checkpoints.errors import CheckpointError
from refsae.checkpoints.model import ARCHITECTURES, KINDS, ROW_NORMS, Source
from refsae.checkpoints.options import Options
from refsae.conventions import DECODER, ENCODE

CHOICES: dict[str, tuple[str, ...]] = {
    "architecture": ARCHITECTURES,
    "kind": KINDS,
    "encode": ENCODE,
    "decoder": DECODER,
    "row_norm": ROW_NORMS,
}


def stated(
    options: Options, file: str, defaults: dict[str, object]
) -> tuple[dict[str, object], dict[str, Source]]:
    """(item → value, item → source): a stated option wins over `defaults`; k and input_scale too."""
    values: dict[str, object] = {"decoder": "constrained", "input_scale": 1.0, **defaults}
    sources: dict[str, Source] = {}
    for item in ("architecture", "kind", "encode", "decoder", "input_scale", "k"):
        given = getattr(options, item)
        if given is not None:
            if item in CHOICES and given not in CHOICES[item]:
                raise CheckpointError(
                    "command line", item, f"{given!r} is not one of {', '.join(CHOICES[item])}"
                )
            values[item] = given
            sources[item] = Source("command line", f"--{item.replace('_', '-')}", "stated")
        elif item in defaults:
            sources[item] = Source(file, "", "not stored; the format's documented default")
    if options.k is not None:
        sources["k"] = Source("command line", "--k", "stated")
    return values, sources
