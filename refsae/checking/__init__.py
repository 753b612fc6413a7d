"""The checking engine: the operation table and its rows (one module per family), the case strategies,
the error bounds and the tolerance rule, the checker and the hypothesis profiles (specs/checking.md).

Importing this package imports nothing else: `refsae.torch` imports `refsae.checking.tolerances`
(the rounding-chain length of its geometric-median stopping rule) without the rest of the engine.
"""
