"""`refsae.checkpoints`: what a saved SAE's files compute (specs/checkpoints.md, CKPT-1..CKPT-30).

- `formats.read(path)` → a `model.Checkpoint` (parameters, conventions, provenance), from SAELens,
  dictionary_learning, sparsify, saev, a bare `params.npz` or refsae's own format;
- `function.forward(ckpt, x)` → the oracle's forward pass of it (CKPT-3);
- `compare.judge(ckpt, model, x)` → the verdicts on a library's loaded model (CKPT-20..CKPT-24);
- `report.inspect` / `report.convert` → what `refsae checkpoint` prints and writes.
"""
