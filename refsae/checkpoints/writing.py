"""Writing a checkpoint directory atomically (CKPT-25): the files go to a fresh temporary directory
beside DST, which is renamed onto DST only once every file is complete; DST is never overwritten
unless asked, and a failure leaves no trace."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from refsae.checkpoints.errors import CheckpointError


@contextmanager
def atomic_directory(dst: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory to fill; on success it becomes `dst`."""
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise CheckpointError(dst, "", "exists; pass --overwrite to replace it")
    if dst.exists() and not dst.is_dir():
        raise CheckpointError(dst, "", "exists and is not a directory")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        yield tmp
        if dst.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old.", dir=dst.parent))
            os.replace(dst, old / dst.name)
            os.replace(tmp, dst)
            shutil.rmtree(old)
        else:
            os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_safetensors(
    path: Path, arrays: dict[str, np.ndarray], dtype: str, metadata: dict[str, str] | None = None
) -> None:
    """Tensors in `dtype` (the checkpoint's stored dtype: nothing is rounded that was not stored so)."""
    import torch
    from safetensors.torch import save_file

    torch_dtype: torch.dtype = getattr(torch, dtype)
    # np.array, not np.ascontiguousarray: a 0-d threshold stays 0-d
    tensors = {
        k: torch.from_numpy(np.array(v, dtype=np.float64, order="C")).to(torch_dtype)
        for k, v in arrays.items()
    }
    save_file(tensors, str(path), metadata=metadata)


Writer = Callable[[Path], None]


def exact_dtype(arrays: dict[str, np.ndarray], dtype: str) -> str:
    """`dtype` when every value is exactly representable in it, else float64 (CKPT-25): a value the
    reader computed in float64 (a fold) is never rounded on the way out."""
    import torch

    for value in arrays.values():
        t = torch.from_numpy(np.array(value, dtype=np.float64, order="C"))
        if not torch.equal(t.to(getattr(torch, dtype)).double(), t):
            return "float64"
    return dtype
