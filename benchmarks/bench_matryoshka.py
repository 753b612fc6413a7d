"""Matryoshka BatchTopK training-step benchmark (PERF-7): refsae's fused step beside its autograd
formulation, the encoder's matrix product (the floor) and SAELens's own step.

For each configuration, in one process, the implementations' repetitions interleaved (rep 1 of each,
then rep 2 of each, …) after warming each up, so that a slow patch of the machine hits all of them:

- `floor`: z = u W_enc into a preallocated output: the one dense product the step needs (the batch
  selection reads every pre-activation);
- `refsae`: `refsae.torch.matryoshka_train_step_` (the grouped sparse backward of
  `refsae.torch.fast.matryoshka`) with `torch.optim.Adam(fused=True)`: loss, gradients, parallel-gradient
  removal, Adam, unit-norm constraint;
- `refsae_autograd`: the same step with `backward="autograd"`: `matryoshka_batchtopk_total_loss`
  decodes each level from its prefix (f[:, :m_i] W_dec[:m_i]) and autograd differentiates the n decodes,
  the formulation of SAELens's `MatryoshkaBatchTopKTrainingSAE` and dictionary_learning's trainer;
- `sae_lens`: SAELens's `SAETrainer._train_step` on its `MatryoshkaBatchTopKTrainingSAE`
  (`rescale_acts_by_decoder_norm=False`; skipped with the reason when sae_lens is not importable).

Each time is the median of `--reps` interleaved repetitions (the spread, min–max, beside it), runtime
type checks off (REFSAE_CHECKS=0 is set here).

    python benchmarks/bench_matryoshka.py [--device cpu|cuda] [--config NAME ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("REFSAE_CHECKS", "0")

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_step import environment  # noqa: E402

LR = 1e-4


@dataclass(frozen=True)
class Config:
    name: str
    batch: int
    d_in: int
    d_sae: int
    k: int
    widths: tuple[int, ...]


CONFIGS = {
    c.name: c
    for c in (
        Config("mat_bk32_1024x512x8192", 1024, 512, 8192, 32, (128, 512, 2048, 8192)),
        Config("mat_bk32_4096x768x16384", 4096, 768, 16384, 32, (128, 512, 2048, 8192, 16384)),
        Config("tiny", 64, 16, 128, 4, (8, 32, 128)),
    )
}
DEFAULT_CONFIGS = ("mat_bk32_1024x512x8192", "mat_bk32_4096x768x16384")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _x(cfg: Config, dtype: torch.dtype, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(cfg.batch, cfg.d_in, generator=g).to(device=device, dtype=dtype)


def build_floor(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    u = _x(cfg, dtype, device)
    W_enc = torch.randn(cfg.d_in, cfg.d_sae, dtype=dtype, device=device)
    out = torch.empty(cfg.batch, cfg.d_sae, dtype=dtype, device=device)
    return lambda: torch.mm(u, W_enc, out=out)


def _refsae(cfg: Config, dtype: torch.dtype, device: str, backward: str) -> Callable[[], Any]:
    from refsae.torch import SAE, SAEConfig, matryoshka_train_step_

    sae = SAE(
        SAEConfig(cfg.d_in, cfg.d_sae, dtype=dtype, device=device), generator=torch.Generator().manual_seed(0)
    )
    opt = torch.optim.Adam(sae.parameters(), lr=LR, fused=True)
    x = _x(cfg, dtype, device)
    return lambda: matryoshka_train_step_(sae, opt, x, k=cfg.k, widths=cfg.widths, backward=backward)


def build_refsae(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    return _refsae(cfg, dtype, device, "fused")


def build_refsae_autograd(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    return _refsae(cfg, dtype, device, "autograd")


def build_sae_lens(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    import sae_lens.saes as saes
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    sae = saes.MatryoshkaBatchTopKTrainingSAE(
        saes.MatryoshkaBatchTopKTrainingSAEConfig(
            d_in=cfg.d_in,
            d_sae=cfg.d_sae,
            k=cfg.k,
            matryoshka_widths=list(cfg.widths),
            rescale_acts_by_decoder_norm=False,
            dtype=str(dtype).removeprefix("torch."),
            device=device,
        )
    )
    trainer_cfg = SAETrainerConfig(
        total_training_samples=10**9, train_batch_size_samples=cfg.batch, lr=LR, lr_end=LR, device=device
    )
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=iter(()))
    x = _x(cfg, dtype, device)
    return lambda: trainer._train_step(sae, x)


BUILDERS: dict[str, Callable[[Config, torch.dtype, str], Callable[[], Any]]] = {
    "floor": build_floor,
    "refsae": build_refsae,
    "refsae_autograd": build_refsae_autograd,
    "sae_lens": build_sae_lens,
}


def run_config(cfg: Config, dtype: torch.dtype, device: str, reps: int, warmup: int) -> dict[str, Any]:
    steps: dict[str, Callable[[], Any]] = {}
    skipped: dict[str, str] = {}
    for name, builder in BUILDERS.items():
        try:
            steps[name] = builder(cfg, dtype, device)
        except ImportError as e:
            skipped[name] = f"not importable: {e}"
    for step in steps.values():  # warm-up, each on its own
        for _ in range(warmup):
            step()
        _sync(device)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(reps):  # interleaved repetitions
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    return {
        "config": cfg.__dict__ | {"widths": list(cfg.widths)},
        "dtype": str(dtype).removeprefix("torch."),
        "device": device,
        "seconds": median,
        "spread": {name: [min(t), max(t)] for name, t in times.items()},
        "times": times,
        "skipped": skipped,
        "vs_floor": {name: median[name] / median["floor"] for name in median},
        "speedup_vs_autograd": {
            name: median["refsae_autograd"] / median[name] for name in median if name != "floor"
        },
    }


def summary(report: dict[str, Any]) -> str:
    lines = [
        "| config | dtype | implementation | median s | spread s | × floor | autograd ÷ this |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        for name, s in r["seconds"].items():
            lo, hi = r["spread"][name]
            speed = r["speedup_vs_autograd"].get(name)
            lines.append(
                f"| {r['config']['name']} | {r['dtype']} | {name} | {s:.4f} | {lo:.4f}–{hi:.4f} | "
                f"{r['vs_floor'][name]:.2f} | {'' if speed is None else f'{speed:.2f}'} |"
            )
        for name, why in r["skipped"].items():
            lines.append(f"| {r['config']['name']} | {r['dtype']} | {name} | skipped: {why} | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", action="append", help="float32 (default on CPU), bfloat16 … (repeatable)")
    p.add_argument("--config", action="append", choices=sorted(CONFIGS), help="default: the two large ones")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument(
        "--out", type=Path, help="default: benchmarks/results/matryoshka-DEVICE.json on a full run"
    )
    args = p.parse_args(argv)
    device = args.device
    dtypes = args.dtype or (["float32", "bfloat16"] if device.startswith("cuda") else ["float32"])
    results = []
    for name in args.config or DEFAULT_CONFIGS:
        for dtype in dtypes:
            print(f"{name} {dtype} {device}", file=sys.stderr)
            results.append(run_config(CONFIGS[name], getattr(torch, dtype), device, args.reps, args.warmup))
    report = {
        "environment": environment(device),
        "reps": args.reps,
        "warmup": args.warmup,
        "results": results,
    }
    print(summary(report))
    out = args.out
    if out is None and not args.config:
        out = ROOT / "benchmarks" / "results" / f"matryoshka-{device.split(':')[0]}.json"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
