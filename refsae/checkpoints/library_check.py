"""A library's loaders on every checkpoint fixture (CKPT-28), run in that library's venv:

    python -m refsae.checkpoints.library_check LIBRARY [FIXTURES] [REPORTS]

For each fixture directory under FIXTURES (default `tests/fixtures/checkpoints`) in a format one of
LIBRARY's loaders reads, the loader's encode, decode and forward are judged against the oracle
(`compare.judge`) on 16 rows (seed 0); every call is recorded to
`FIXTURES/recorded/LOADER/FORMAT/NAME.npz` and the findings go to `REPORTS/LIBRARY.json` (default
`conformance/checkpoints`). A loader that cannot load the files gets one `error` finding on `load`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from refsae.checkpoints import formats
from refsae.checkpoints.compare import inputs, judge
from refsae.checkpoints.errors import CheckpointError
from refsae.checkpoints.record import Recorder

ROWS = 16


def fixtures(root: Path) -> list[Path]:
    """Every directory under `root` holding a checkpoint (recordings excluded), sorted."""
    found = []
    for path in sorted(
        p for p in root.rglob("*") if p.is_dir() and "recorded" not in p.relative_to(root).parts
    ):
        try:
            _fmt, _ = formats.detect(path)
        except CheckpointError:
            continue
        found.append(path)
    return found


def recording(root: Path, loader: str, fixture: Path) -> Path:
    """Where the calls of `loader` on `fixture` are recorded."""
    rel = fixture.relative_to(root)
    return root / "recorded" / loader.replace("<", "").replace(">", "") / f"{rel.as_posix()}.npz"


def check(library: str, root: Path) -> dict[str, Any]:
    module = __import__(f"refsae.checkpoints.loaders.{library}", fromlist=["LOADERS"])
    rows: list[dict[str, Any]] = []
    for fixture in fixtures(root):
        fmt, _ = formats.detect(fixture)
        names = [n for n in module.LOADERS if module.READS[n] == fmt.name]
        if not names:
            continue
        try:
            ckpt = formats.read(fixture)
        except CheckpointError as e:
            rows.append({"fixture": str(fixture.relative_to(root)), "refused": e.problem, "key": e.key})
            continue
        x = inputs(ckpt, ROWS, seed=0)
        for name in names:
            row: dict[str, Any] = {
                "fixture": str(fixture.relative_to(root)),
                "format": fmt.name,
                "loader": name,
            }
            try:
                model = module.LOADERS[name](fixture)
            except Exception as e:  # the library's own failure to load its files: the finding
                row["findings"] = [
                    {"operation": "load", "verdict": "error", "message": f"{type(e).__name__}: {e}"}
                ]
                rows.append(row)
                continue
            recorder = Recorder(model)
            row["findings"] = [vars(f) for f in judge(ckpt, recorder.wrapped(), x)]
            recorder.save(recording(root, name, fixture))
            rows.append(row)
    report = {"library": library, "rows": ROWS, "checks": rows, "conversions": conversions(module, root)}
    report["repro"] = reproductions(library, Path("conformance/checkpoints"))
    return report


def conversions(module: Any, root: Path) -> list[dict[str, Any]]:
    """Every fixture converted into each writable format the library's loaders read (CKPT-27), the
    written files loaded by those loaders: the verdicts on each, or why the conversion was refused."""
    import tempfile

    from refsae.checkpoints.options import Options
    from refsae.checkpoints.report import convert

    writable = {n for n, f in formats.formats().items() if f.write is not None}
    rows: list[dict[str, Any]] = []
    for to in sorted({module.READS[n] for n in module.LOADERS} & writable):
        for fixture in fixtures(root):
            if formats.detect(fixture)[0].name == to:
                continue
            row: dict[str, Any] = {"fixture": str(fixture.relative_to(root)), "to": to}
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    done = convert(
                        fixture, Path(tmp) / "out", to, Options(), None, inputs=ROWS, seed=0, overwrite=False
                    )
                except CheckpointError as e:
                    row["refused"] = f"{e.key}: {e.problem}".split("\n")[0]
                else:
                    row["findings"] = [
                        {"loader": f.loader, "operation": f.operation, "verdict": f.verdict}
                        for f in done.findings
                    ]
            rows.append(row)
    return rows


def reproductions(library: str, folder: Path) -> dict[str, dict[str, object]]:
    """Run the library-only reproduction of each of LIBRARY's checkpoint bugs (explanations.toml) in
    this interpreter: exit 1 and `BUG REPRODUCED` while the bug is there (CONF-19)."""
    import subprocess

    from refsae.checkpoints.page import load

    results: dict[str, dict[str, object]] = {}
    for e in load(folder)[1]:
        if e.repro and e.loader.split(".")[0] == library:
            done = subprocess.run(
                [sys.executable, e.repro], capture_output=True, text=True, timeout=600, check=False
            )
            lines = done.stdout.strip().splitlines()
            results[e.repro] = {"exit": done.returncode, "last_line": lines[-1] if lines else ""}
    return results


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 3:
        print(__doc__, file=sys.stderr)
        return 2
    library = args[0]
    root = Path(args[1] if len(args) > 1 else "tests/fixtures/checkpoints")
    out = Path(args[2] if len(args) > 2 else "conformance/checkpoints")
    report = check(library, root)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{library}.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    counts: dict[str, int] = {}
    for row in report["checks"]:
        for f in row.get("findings", []):
            counts[f["verdict"]] = counts.get(f["verdict"], 0) + 1
    print(f"{library}: {len(report['checks'])} checks; verdicts {counts}; wrote {out / f'{library}.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
