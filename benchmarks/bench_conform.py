"""Benchmark: wall time of a full conformance run of one adapter (specs/conformance-suite.md, CONF-5).

    python benchmarks/bench_conform.py [--profile ci] [--targets refsae,refsae.conform.mutants:correct]

The goal: a full `ci`-profile run of one adapter in under 120 s on 2 cores. Each target is run once,
in this process, after a warm-up run of one row (imports, first torch calls); the result (seconds,
rows, clauses, examples, CPU count, torch threads) goes to benchmarks/results/conform.json and is
printed as a table. Timings are noisy on shared machines: compare targets measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from refsae.checking import profiles
from refsae.conform import conform, load

RESULTS = Path(__file__).resolve().parent / "results" / "conform.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default=None)
    parser.add_argument("--targets", default="refsae,refsae.conform.mutants:correct")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    profile = profiles.resolve(args.profile)
    conform(load("refsae"), profile=profile, operations=["encode"], max_examples=2)  # warm-up
    rows = []
    for target in [t for t in args.targets.split(",") if t]:
        adapter = load(target)
        start = time.perf_counter()
        cpu = time.process_time()
        report = conform(adapter, profile=profile)
        rows.append(
            {
                "target": target,
                "profile": profile,
                "seconds": round(time.perf_counter() - start, 1),
                "cpu_seconds": round(time.process_time() - cpu, 1),
                "rows": len(adapter.operations()),
                "dtypes": list(adapter.dtypes),
                "clauses": len(report.clauses),
                "examples": sum(c.examples for c in report.clauses),
                "summary": report.summary,
            }
        )
        print(f"{target}: {rows[-1]['seconds']} s wall, {rows[-1]['cpu_seconds']} s CPU, {report.summary}")
    result = {
        "benchmark": "conform: full run of one adapter",
        "goal_seconds": 120,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "runs": rows,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print("| target | profile | rows | dtypes | clauses | seconds | CPU seconds |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| `{r['target']}` | {r['profile']} | {r['rows']} | {len(r['dtypes'])} | {r['clauses']} | "
            f"{r['seconds']} | {r['cpu_seconds']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
