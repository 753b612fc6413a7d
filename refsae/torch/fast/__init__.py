"""Fast paths of refsae.torch (PERF-1): a hand-written backward in reused buffers, in-place constraints.

Each module mirrors the refsae.torch module of the same name; its functions are checked against the
oracle as the `fast` implementation of their rows (`refsae check --fast`).
"""
