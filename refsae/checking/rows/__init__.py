"""The rows of the operation table, one module per family of operations (OPS-1).

Each module is named as its twins `refsae.oracle.<family>` and `refsae.torch.<family>` and holds that
family's case strategies, error bounds and `ROWS`; `refsae.checking.table` gathers them.
"""
