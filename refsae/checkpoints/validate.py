"""Checks every reader applies before a `Checkpoint` exists (CKPT-30): the architecture's parameters
are present, their shapes agree with each other and with the config, every value is finite, k and the
thresholds are in range. Each error names the file and key the offending value came from."""

from __future__ import annotations

import numpy as np

from refsae.checkpoints.errors import CheckpointError
from refsae.checkpoints.model import PARAMETERS, REQUIRED, Checkpoint, Source


def _where(ckpt: Checkpoint, name: str) -> Source:
    return ckpt.sources.get(name, Source(str(ckpt.path), name))


def _fail(ckpt: Checkpoint, name: str, problem: str) -> CheckpointError:
    source = _where(ckpt, name)
    return CheckpointError(source.file, source.key, problem)


def checked(ckpt: Checkpoint, *, dims: dict[str, int] | None = None) -> Checkpoint:
    """`ckpt` itself once every check passes; `dims` are sizes the config states (d_in, d_sae …),
    each named with its source in `ckpt.sources` under `dim.<name>`."""
    required = list(REQUIRED[ckpt.architecture]) + (["W_skip"] if ckpt.kind == "skip_transcoder" else [])
    for name in required:
        if name not in ckpt.params:
            what = "threshold" if name == "threshold" else "parameter"
            raise _fail(ckpt, name, f"missing: a {ckpt.architecture} {ckpt.kind} needs this {what}")
    for name in ckpt.params:
        if name not in PARAMETERS:
            raise _fail(ckpt, name, f"not a parameter of any architecture refsae reads: {sorted(PARAMETERS)}")
    sizes: dict[str, tuple[int, str]] = {}
    for dim, size in (dims or {}).items():
        sizes[dim] = (size, str(ckpt.sources.get(f"dim.{dim}", "the config")))
    if ckpt.kind == "sae" and "d_in" in sizes and "d_out" not in sizes:
        sizes["d_out"] = sizes["d_in"]
    for name, value in ckpt.params.items():
        axes = PARAMETERS[name]
        if name == "threshold" and ckpt.architecture == "batchtopk":
            axes = ()  # one threshold for every latent (BTOPK-6)
        if value.ndim != len(axes):
            raise _fail(ckpt, name, f"has shape {value.shape}; expected axes ({', '.join(axes)})")
        for axis, size in zip(axes, value.shape, strict=True):
            if axis in sizes and sizes[axis][0] != size:
                raise _fail(
                    ckpt,
                    name,
                    f"has {axis} = {size} (shape {value.shape}) "
                    f"but {axis} = {sizes[axis][0]} from {sizes[axis][1]}",
                )
            sizes.setdefault(axis, (size, f"{_where(ckpt, name)} (shape {value.shape})"))
        bad = ~np.isfinite(value)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise _fail(ckpt, name, f"{int(bad.sum())} non-finite values (first at {first}: {value[first]})")
    if ckpt.kind == "sae" and sizes["d_in"][0] != sizes["d_out"][0]:
        raise _fail(
            ckpt, "W_dec", f"d_out = {sizes['d_out'][0]} differs from d_in = {sizes['d_in'][0]}: not an SAE"
        )
    if ckpt.architecture in ("topk", "batchtopk") and (ckpt.k is None or not 1 <= ckpt.k <= ckpt.d_sae):
        raise _fail(ckpt, "k", f"k = {ckpt.k} is not in 1..d_sae = {ckpt.d_sae}")
    if ckpt.architecture == "jumprelu" and (ckpt.params["threshold"] < 0).any():
        raise _fail(ckpt, "threshold", "JumpReLU thresholds are >= 0 (JUMP-1)")
    if ckpt.input_scale <= 0 or not np.isfinite(ckpt.input_scale):
        raise _fail(ckpt, "input_scale", f"an input scale is finite and > 0, got {ckpt.input_scale}")
    if ckpt.encode == "tied" and ckpt.d_out != ckpt.d_in:
        raise _fail(
            ckpt, "encode", f"b_dec (d_out = {ckpt.d_out}) cannot be subtracted from x (d_in = {ckpt.d_in})"
        )
    return ckpt
