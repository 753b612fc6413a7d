"""refsae: executable definitions of sparse-autoencoder operations and a conformance suite.

- `refsae.oracle`: the definitions, pure NumPy in float64 (never imports torch).
- `refsae.torch`: a fast PyTorch implementation proven against the oracle.
- `refsae.checking.table`: the operation table that drives the property tests and the `refsae check` job.
- `refsae.checking.strategies`: hypothesis strategies for SAE shapes, parameters and inputs.

See `specs/` for the numbered clauses every function cites.
"""

__version__ = "0.1.0"
