"""`Case`: one drawn input of an operation (STR-7, STR-8).

A case is canonical: named float64 NumPy arrays whose values are representable in `dtype`, plus
keyword options (conventions, coefficients). Any implementation, in any framework, receives the
same case; `Case.reproduction()` prints it as copy-pasteable Python. The strategies that draw cases
live with their operations' rows (`refsae.checking.rows`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Case:
    """Named canonical arrays, keyword options and the dtype the implementation computes in."""

    arrays: dict[str, np.ndarray]
    options: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float64"

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in self.arrays.items())
        return f"Case({shapes}; {self.options}; {self.dtype})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis prints falsifying examples with this: shapes only (the note carries the arrays)."""
        printer.text(repr(self))

    def reproduction(self) -> str:
        """Python source that rebuilds the case (NumPy literals at full float64 precision)."""
        with np.printoptions(precision=17, threshold=1_000_000, floatmode="unique"):
            lines = ["import numpy as np", "from refsae.conventions import Conventions"]
            if any("." in name for name in self.arrays):
                lines.append("arrays = {}")
            for name, a in self.arrays.items():
                dtype = "np.int64" if a.dtype.kind == "i" else "np.float64"
                target = f"arrays[{name!r}]" if "." in name else name
                lines.append(f"{target} = np.array({np.array2string(a, separator=', ')}, dtype={dtype})")
            lines.append(f"options = {self.options!r}")
            lines.append(f"dtype = {self.dtype!r}")
        return "\n".join(lines)
