"""Copy-pasteable reproductions of a failure (CONF-5): the shrunk case as NumPy literals, the
adapter's call and the oracle's call, and the difference printed."""

from __future__ import annotations

from typing import Any

import numpy as np

from refsae.cases import Case
from refsae.checking import table


def oracle_outputs(
    operation: str, arrays: dict[str, np.ndarray], options: dict[str, Any]
) -> dict[str, np.ndarray]:
    """The oracle's outputs of `operation` (float64), called as the table calls it."""
    return table.get(operation).reference(Case(arrays, options))


def snippet(target: str, operation: str, case: Case) -> str:
    """Python source reproducing `case` on `target` and on the oracle."""
    with np.printoptions(precision=17, threshold=1_000_000, floatmode="unique"):
        lines = [
            "import numpy as np",
            "from refsae.cases import Case",
            "from refsae.conform import load, oracle_outputs",
            "from refsae.conventions import Conventions",
            "",
            "arrays = {",
        ]
        for name, a in case.arrays.items():
            dtype = "np.int64" if a.dtype.kind == "i" else "np.float64"
            lines.append(f"    {name!r}: np.array({np.array2string(a, separator=', ')}, dtype={dtype}),")
        lines += [
            "}",
            f"options = {case.options!r}",
            f"actual = load({target!r}).run({operation!r}, Case(arrays, options, {case.dtype!r}))",
            f"expected = oracle_outputs({operation!r}, arrays, options)",
            "for name in expected:",
            "    gap = np.max(np.abs(actual[name] - expected[name]), initial=0)",
            "    print(name, 'max |actual - expected| =', gap)",
        ]
    return "\n".join(lines)
