"""The one error a checkpoint reader, the forward pass or a writer raises on bad input (CKPT-30)."""

from __future__ import annotations

from pathlib import Path


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as what it claims: the message names the file and the key.

    `file` and `key` are kept as attributes for callers (the CLI prints them; tests assert them).
    """

    def __init__(self, file: Path | str, key: str, problem: str) -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        where = f"{self.file}, key {key!r}" if key else self.file
        super().__init__(f"{where}: {problem}")
