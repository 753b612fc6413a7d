"""A library loader's answers, recorded in its venv and replayed anywhere (CKPT-28).

`Recorder` wraps a `LibraryModel` and keeps every call's input and output (or the exception's text);
`save` writes them to one `.npz`; `replay` returns a `LibraryModel` that answers those calls from the
file and raises on any other. `compare.judge` on the replay repeats, without the library, the verdicts
the library's own session reached: the core test suite checks the committed reports that way.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from refsae.checkpoints.library import Array, LibraryModel

Key = tuple[str, str]


def _key(op: str, a: Array) -> Key:
    a = np.ascontiguousarray(a, dtype=np.float64)
    return op, hashlib.sha256(repr(a.shape).encode() + a.tobytes()).hexdigest()[:24]


class Recorder:
    """Calls through to `model`, remembering each (operation, input) → output or error."""

    def __init__(self, model: LibraryModel) -> None:
        self.model = model
        self.calls: dict[Key, tuple[Array, Array | str]] = {}

    def _call(self, op: str, a: Array) -> Array:
        fn = {"encode": self.model.encode, "decode": self.model.decode, "forward": self.model.forward}[op]
        try:
            out = np.asarray(fn(a), dtype=np.float64)
        except Exception as e:  # the library's own error: recorded, then raised again
            self.calls[_key(op, a)] = (a, f"{type(e).__name__}\n{e}")
            raise
        self.calls[_key(op, a)] = (a, out)
        return out

    def wrapped(self) -> LibraryModel:
        m = self.model
        return LibraryModel(
            m.loader,
            lambda a: self._call("encode", a),
            lambda a: self._call("decode", a),
            lambda a: self._call("forward", a),
            m.dtype,
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Array] = {}
        index = []
        for n, ((op, _), (a, out)) in enumerate(sorted(self.calls.items())):
            arrays[f"in{n}"] = a
            if isinstance(out, str):
                index.append({"op": op, "error": out})
            else:
                arrays[f"out{n}"] = out
                index.append({"op": op})
        meta = {"loader": self.model.loader, "dtype": self.model.dtype, "calls": index}
        np.savez_compressed(path, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)  # type: ignore[arg-type]


class NotRecorded(LookupError):
    """The replay was asked a call its library never answered."""


def replay(path: Path) -> LibraryModel:
    """A `LibraryModel` answering the calls recorded in `path`."""
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        answers: dict[Key, Array | str] = {}
        for n, call in enumerate(meta["calls"]):
            answers[_key(call["op"], npz[f"in{n}"])] = call["error"] if "error" in call else npz[f"out{n}"]

    def answer(op: str) -> object:
        def run(a: Array) -> Array:
            key = _key(op, a)
            if key not in answers:
                raise NotRecorded(f"{meta['loader']}: {op} on an input the library was not asked")
            out = answers[key]
            if isinstance(out, str):  # raised again under the library's exception's name
                name, _, message = out.partition("\n")
                raise type(name, (RuntimeError,), {})(message)
            return out

        return run

    return LibraryModel(meta["loader"], answer("encode"), answer("decode"), answer("forward"), meta["dtype"])  # type: ignore[arg-type]
