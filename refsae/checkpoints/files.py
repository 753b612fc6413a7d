"""Reading the files a checkpoint is made of, each through its format's own library (CKPT-5):
JSON with `json`, safetensors with `safetensors`, `.pt` with `torch.load(weights_only=True)`, `.npz`
with NumPy (`allow_pickle=False`). Every failure becomes a `CheckpointError` naming the file."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from refsae.checkpoints.errors import CheckpointError

FLOATS: frozenset[str] = frozenset({"float64", "float32", "bfloat16", "float16"})
"""The dtypes a stored weight may have (CKPT-30): anything else (integers, bool, float8) is refused."""


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`."""
    if not path.is_file():
        raise CheckpointError(path, "", "file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(path, "", f"not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(path, "", f"a JSON object is expected, got {type(data).__name__}")
    return data


def _from_torch(
    path: Path, key: str, value: Any, integers: frozenset[str] = frozenset()
) -> tuple[np.ndarray, str]:
    import torch

    if not isinstance(value, torch.Tensor):
        raise CheckpointError(path, key, f"a tensor is expected, got {type(value).__name__}")
    dtype = str(value.dtype).removeprefix("torch.")
    if key in integers and not value.dtype.is_floating_point and dtype != "bool":
        return np.asarray(value.detach().cpu().numpy()), dtype
    if dtype not in FLOATS:
        raise CheckpointError(
            path, key, f"dtype {dtype} is not a floating dtype this format stores weights in"
        )
    return np.asarray(value.detach().to(torch.float64).cpu().numpy()), dtype


def read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(tensors as float64 arrays, their stored dtypes) from a safetensors file."""
    if not path.is_file():
        raise CheckpointError(path, "", "file not found")
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError, OSError) as e:
        raise CheckpointError(path, "", f"not a readable safetensors file ({e})") from None
    return _arrays(path, tensors)


def read_torch(
    path: Path, data: bytes | None = None, integers: frozenset[str] = frozenset()
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(tensors, dtypes) from a torch-saved state dict, loaded with `weights_only=True`; the keys in
    `integers` (k, group sizes) may hold integers, every other key a float (CKPT-30)."""
    import torch

    if data is None:
        if not path.is_file():
            raise CheckpointError(path, "", "file not found")
        data = path.read_bytes()
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError, zipfile errors …
        raise CheckpointError(path, "", f"not a readable torch file ({type(e).__name__}: {e})") from None
    if not isinstance(state, Mapping):
        raise CheckpointError(path, "", f"a state dict is expected, got {type(state).__name__}")
    return _arrays(path, state, integers)


def read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays, dtypes) from an `.npz` file, without pickles."""
    if not path.is_file():
        raise CheckpointError(path, "", "file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            raw = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError) as e:
        raise CheckpointError(path, "", f"not a readable .npz file ({e})") from None
    arrays, dtypes = {}, {}
    for key, value in raw.items():
        if value.dtype.kind != "f" or str(value.dtype) not in FLOATS:
            raise CheckpointError(
                path, key, f"dtype {value.dtype} is not a floating dtype this format stores"
            )
        arrays[key], dtypes[key] = value.astype(np.float64), str(value.dtype)
    return arrays, dtypes


def _arrays(
    path: Path, tensors: Mapping[str, Any], integers: frozenset[str] = frozenset()
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    arrays, dtypes = {}, {}
    for key, value in tensors.items():
        arrays[str(key)], dtypes[str(key)] = _from_torch(path, str(key), value, integers)
    return arrays, dtypes


def need(config: Mapping[str, Any], key: str, path: Path, kind: type | tuple[type, ...]) -> Any:
    """config[key], which must exist and be of `kind` (bool is not an int here)."""
    if key not in config:
        raise CheckpointError(path, key, "missing")
    return check_type(config[key], key, path, kind)


def check_type(value: Any, key: str, path: Path, kind: type | tuple[type, ...]) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise CheckpointError(path, key, f"expected {_names(kinds)}, got {value!r}")
    if not isinstance(value, kinds):
        raise CheckpointError(path, key, f"expected {_names(kinds)}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise CheckpointError(path, key, f"must be finite, got {value!r}")
    return value


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kinds)


def stored_dtype(dtypes: Mapping[str, str], file: Path) -> str:
    """The one floating dtype the weights are stored in (CKPT-30)."""
    kinds = sorted({d for d in dtypes.values() if d in FLOATS})
    if len(kinds) > 1:
        raise CheckpointError(file, "", f"weights stored in several dtypes: {kinds}")
    return kinds[0] if kinds else "float32"


def rename(
    arrays: Mapping[str, np.ndarray], file: str, names: Mapping[str, tuple[str, bool]]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(canonical parameters, their sources) from a state dict: `names` maps a stored key to (canonical
    name, transposed?); keys it does not name are refused by the caller's validation as unknown."""
    from refsae.checkpoints.model import Source

    params: dict[str, np.ndarray] = {}
    sources: dict[str, Any] = {}
    for key, value in arrays.items():
        name, transposed = names.get(key, (key, False))
        params[name] = np.ascontiguousarray(value.T) if transposed else value
        sources[name] = Source(file, key, "transposed: nn.Linear layout" if transposed else "")
    return params, sources
