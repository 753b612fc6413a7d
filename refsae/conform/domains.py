"""Domains that several libraries declare (CONF-15): ready-made `Domain` records for adapters."""

from __future__ import annotations

import dataclasses

import numpy as np

from refsae.cases import Case
from refsae.checking.strategies import round_to
from refsae.conform.adapter import Domain

__all__ = ["has_unit_rows", "unit_rows", "with_unit_rows"]


def has_unit_rows(case: Case) -> bool:
    """Every non-zero row of the case's `W_dec` has norm 1 within the dtype's rounding."""
    norms = np.linalg.norm(case.arrays["W_dec"], axis=-1)
    return bool(np.all((norms == 0) | (np.abs(norms - 1) <= 8 * np.finfo(np.float32).eps)))


def with_unit_rows(case: Case) -> Case:
    """The case with each non-zero row of `W_dec` divided by its norm (then rounded to the case's
    dtype, as a trainer's renormalisation stores it); zero rows stay zero."""
    w = case.arrays["W_dec"]
    norms = np.linalg.norm(w, axis=-1, keepdims=True)
    unit = round_to(np.where(norms > 0, w / np.where(norms > 0, norms, 1.0), 0.0), case.dtype)
    return dataclasses.replace(case, arrays={**case.arrays, "W_dec": unit})


def unit_rows(reason: str, ops: tuple[str, ...] = ("remove_parallel_component",)) -> Domain:
    """The precondition that the decoder's rows are unit vectors (PAR-2's shortcut is then PAR-1)."""
    return Domain(
        "unit_rows",
        reason,
        ops,
        has_unit_rows,
        kind="precondition",
        project=with_unit_rows,
        about=("PAR-1", "PAR-2"),
    )
