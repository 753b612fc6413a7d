"""Interleaved timing shared by the step benchmarks (bench_step.py, bench_matryoshka.py,
bench_transcoder.py), so that their figures do not depend on the order things run in (PERF-4):

- each implementation is first warmed up on its own until it is stable: at least `--warmup` untimed
  steps, and then more until its last three times lie within 5 % of their median (at most 20 steps
  or 60 s, whichever comes first; the count is reported);
- the timed repetitions are interleaved (rep 1 of each, then rep 2 of each, …), each round starting
  one implementation further on, so that a slow patch of the machine hits all of them and none is
  always timed straight after the same neighbour;
- each time is the median, with the spread (min–max) beside it.

A benchmark module gives its configurations (a frozen dataclass with a `name`), its builders (name →
(config, dtype, device) → a zero-argument step) and the name of its `baseline` (the formulation the
speed-up is taken against); `main` does the rest. A builder that raises ImportError is skipped with
the reason, one that raises `Unsupported` with its message.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

Builder = Callable[[Any, torch.dtype, str], Callable[[], Any]]


class Unsupported(Exception):
    """Raised by a builder whose implementation has no such configuration; the message says why."""


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(step: Callable[[], Any], device: str) -> float:
    """Seconds one call of `step` takes, the device synchronised before the clock stops."""
    start = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - start


STABLE_WINDOW, STABLE_SPREAD, MAX_WARMUP, MAX_WARMUP_S = 3, 0.05, 20, 60.0


def warm_up(step: Callable[[], Any], device: str, at_least: int) -> int:
    """Untimed steps until the last `STABLE_WINDOW` times lie within `STABLE_SPREAD` of their median
    (at least `at_least` steps; at most `MAX_WARMUP` or `MAX_WARMUP_S` seconds); returns the count."""
    times: list[float] = []
    while True:
        times.append(timed(step, device))
        last = times[-STABLE_WINDOW:]
        stable = len(last) == STABLE_WINDOW and max(last) - min(last) <= STABLE_SPREAD * statistics.median(
            last
        )
        if len(times) >= at_least and (stable or len(times) >= MAX_WARMUP or sum(times) >= MAX_WARMUP_S):
            return len(times)


def interleave(
    steps: Mapping[str, Callable[[], Any]], device: str, reps: int, warmup: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Each step warmed up on its own (`warm_up`), then `reps` interleaved rounds, round r starting at
    the r-th step; returns each step's times in round order and its warm-up count."""
    warmups = {name: warm_up(step, device, warmup) for name, step in steps.items()}
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            times[name].append(timed(steps[name], device))
    return times, warmups


def environment(device: str) -> dict[str, Any]:
    """The machine, torch, Python and (where importable) SAELens versions a report was measured with."""
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name()
    with contextlib.suppress(ImportError):
        import sae_lens

        env["sae_lens"] = sae_lens.__version__
    return env


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def run_config(
    cfg: Any,
    builders: Mapping[str, Builder],
    baseline: str,
    dtype: torch.dtype,
    device: str,
    reps: int,
    warmup: int,
) -> dict[str, Any]:
    """One configuration's interleaved timings, ratios to `floor` and speed-ups over `baseline`."""
    steps: dict[str, Callable[[], Any]] = {}
    skipped: dict[str, str] = {}
    for name, builder in builders.items():
        try:
            steps[name] = builder(cfg, dtype, device)
        except ImportError as e:
            skipped[name] = f"not importable: {e}"
        except Unsupported as e:
            skipped[name] = str(e)
    times, warmups = interleave(steps, device, reps, warmup)
    median = {name: statistics.median(t) for name, t in times.items()}
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
    return {
        "config": config,
        "dtype": str(dtype).removeprefix("torch."),
        "device": device,
        "seconds": median,
        "spread": {name: [min(t), max(t)] for name, t in times.items()},
        "times": times,
        "warmup_reps": warmups,
        "skipped": skipped,
        "vs_floor": {name: median[name] / median["floor"] for name in median},
        "baseline": baseline,
        "speedup_vs_baseline": {name: median[baseline] / median[name] for name in median if name != "floor"},
    }


def summary(report: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| config | dtype | implementation | median s | spread s | × floor | baseline ÷ this |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        for name, s in r["seconds"].items():
            lo, hi = r["spread"][name]
            speed = r["speedup_vs_baseline"].get(name)
            lines.append(
                f"| {r['config']['name']} | {r['dtype']} | {name} | {s:.4f} | {lo:.4f}–{hi:.4f} | "
                f"{r['vs_floor'][name]:.2f} | {'' if speed is None else f'{speed:.2f}'} |"
            )
        for name, why in r["skipped"].items():
            lines.append(f"| {r['config']['name']} | {r['dtype']} | {name} | skipped: {why} | | | |")
    return "\n".join(lines)


def main(
    description: str,
    configs: Mapping[str, Any],
    default_configs: tuple[str, ...],
    builders: Mapping[str, Builder],
    baseline: str,
    results_name: str,
    argv: list[str] | None = None,
) -> int:
    """The command line: run the configurations, print the table, write
    benchmarks/results/RESULTS_NAME-DEVICE.json on a full run (or `--out`)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", action="append", help="float32 (default on CPU), bfloat16 … (repeatable)")
    p.add_argument("--config", action="append", choices=sorted(configs), help="default: the large ones")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument(
        "--out", type=Path, help=f"default: benchmarks/results/{results_name}-DEVICE.json on a full run"
    )
    args = p.parse_args(argv)
    device = args.device
    dtypes = args.dtype or (["float32", "bfloat16"] if device.startswith("cuda") else ["float32"])
    results = []
    for name in args.config or default_configs:
        for dtype in dtypes:
            print(f"{name} {dtype} {device}", file=sys.stderr)
            results.append(
                run_config(
                    configs[name], builders, baseline, getattr(torch, dtype), device, args.reps, args.warmup
                )
            )
    report = {
        "environment": environment(device),
        "reps": args.reps,
        "warmup": args.warmup,
        "results": results,
    }
    print(summary(report))
    out = args.out
    if out is None and not args.config:
        out = Path(__file__).resolve().parent / "results" / f"{results_name}-{device.split(':')[0]}.json"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    return 0
