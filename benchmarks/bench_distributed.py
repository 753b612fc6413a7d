"""The latent-sharded step on 1, 2 and 4 processes of this machine (DIST-12, DIST-14;
specs/distributed.md): the time per step (median and spread of repetitions after a warm-up, each step
between barriers) and the bytes each process hands to the collectives, measured by
wrapping `all_reduce` and `all_gather`, beside the model of DIST-12; then the model's estimate of a step
at a realistic scale.

    python benchmarks/bench_distributed.py [--out benchmarks/results/distributed-cpu.json]

On this 2-core machine the processes share the cores (each gets 2 // W threads): the time shows the
cost of the collectives and of splitting the products, not a speed-up. Beside them, the fused
one-process TopK step (`train_step_`, PERF-3) of the same SAE; the sharded step decodes and
back-propagates sparsely too (DIST-18) but computes the canonical selection (DIST-10).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import torch
import torch.distributed as dist

from refsae.conventions import Conventions
from refsae.oracle.optimizer import PARAMETERS
from refsae.torch import SAE, SAEConfig, train_step_
from refsae.torch.distributed import latent_shard, latent_sharded_train_step_
from refsae.torch.distributed.launch import run_ranks

CONFIG = {"batch": 1024, "d_in": 512, "d_sae": 8192, "k": 32}


def _bytes_model(batch: int, d_in: int, m: int, k: int, tied: bool, element: int = 4) -> int:
    """DIST-12: the bytes one process hands to the collectives in one TopK step (float32 values, int64
    indices)."""
    total = (batch * d_in + 1) * element + batch * min(k, m) * (element + 8)
    return total + (d_in * element if tied else 0)


def worker(rank: int, world_size: int, config: dict[str, int], reps: int, warmup: int) -> dict[str, Any]:
    torch.manual_seed(0)
    whole = SAE(SAEConfig(d_in=config["d_in"], d_sae=config["d_sae"]))
    params = {n: getattr(whole, n).detach() for n in PARAMETERS}
    local = latent_shard(params, rank, world_size)
    m = config["d_sae"] // world_size
    shard = SAE(SAEConfig(d_in=config["d_in"], d_sae=m, conventions=Conventions(), l1_coefficient=0.0))
    with torch.no_grad():
        for name in PARAMETERS:
            getattr(shard, name).copy_(local[name])
    optimizer = torch.optim.Adam(shard.parameters(), lr=1e-4)
    x = torch.randn(config["batch"], config["d_in"], generator=torch.Generator().manual_seed(1))

    handed: list[int] = []
    originals: dict[str, Any] = {"all_reduce": dist.all_reduce, "all_gather": dist.all_gather}

    def counting(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            tensor = args[0] if name == "all_reduce" else args[1]
            handed.append(tensor.numel() * tensor.element_size())
            return originals[name](*args, **kwargs)

        return call

    dist.all_reduce, dist.all_gather = counting("all_reduce"), counting("all_gather")
    try:
        latent_sharded_train_step_(shard, optimizer, x, k=config["k"], check_replicas=False)
    finally:
        dist.all_reduce = originals["all_reduce"]
        dist.all_gather = originals["all_gather"]
    times = []
    for i in range(warmup + reps):
        dist.barrier()
        start = time.perf_counter()
        latent_sharded_train_step_(shard, optimizer, x, k=config["k"], check_replicas=False)
        dist.barrier()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    tied = Conventions().encode == "tied"
    return {
        "seconds": times,
        "bytes_measured": sum(handed),
        "bytes_model": _bytes_model(config["batch"], config["d_in"], m, config["k"], tied),
    }


def estimate(
    *,
    batch: int = 4096,
    d_in: int = 4096,
    d_sae: int = 2**24,
    shards: int = 64,
    k: int = 32,
    element: int = 2,
    flops_per_second: float = 4.0e14,
    link_bytes_per_second: float = 5.0e10,
) -> dict[str, float]:
    """DIST-14's model of one latent-sharded TopK step per GPU: the dense products (the encoder's, and
    refsae's dense decode and backward: 5 of 2·B·d_in·m flops; a sparse decode and backward, PERF-3,
    leaves the encoder's and W_enc's gradient), the ring all_reduce of the decode (2 (S−1)/S · B·d_in
    elements) and the TopK all_gathers ((S−1) · B·k values and indices received), at the given
    sustained rates."""
    m = d_sae // shards
    product = 2.0 * batch * d_in * m
    ring = 2 * (shards - 1) / shards * batch * d_in * element
    gathers = (shards - 1) * batch * k * (element + 8)
    return {
        "latents_per_gpu": m,
        "dense_step_seconds": 5 * product / flops_per_second,
        "sparse_step_seconds": 2 * product / flops_per_second,
        "communication_bytes_per_gpu": ring + gathers,
        "communication_seconds": (ring + gathers) / link_bytes_per_second,
        "parameters_and_adam_bytes_per_gpu": 3 * 2 * d_in * m * 4 + 3 * (m + d_in) * 4,
    }


def single_process(config: dict[str, int], reps: int, warmup: int) -> list[float]:
    """The fused one-process TopK step (`train_step_`, PERF-3) of the same SAE and batch, on 2 threads."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    sae = SAE(SAEConfig(d_in=config["d_in"], d_sae=config["d_sae"], k=config["k"], l1_coefficient=0.0))
    optimizer = torch.optim.Adam(sae.parameters(), lr=1e-4)
    x = torch.randn(config["batch"], config["d_in"], generator=torch.Generator().manual_seed(1))
    times = []
    for i in range(warmup + reps):
        start = time.perf_counter()
        train_step_(sae, optimizer, x)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/results/distributed-cpu.json")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    results = []
    for world_size in (1, 2, 4):
        threads = max(1, 2 // world_size)
        outcomes = run_ranks(world_size, worker, CONFIG, args.reps, args.warmup, timeout=900, threads=threads)
        failed = [r for s, r in outcomes if s != "ok"]
        if failed:
            raise RuntimeError(failed[0])
        first = outcomes[0][1]
        times = [max(r["seconds"][i] for _, r in outcomes) for i in range(args.reps)]
        row = {
            "world_size": world_size,
            "threads_per_process": threads,
            "median_seconds": statistics.median(times),
            "spread_seconds": [min(times), max(times)],
            "bytes_per_process_measured": first["bytes_measured"],
            "bytes_per_process_model": first["bytes_model"],
        }
        results.append(row)
        print(row)
    fused = single_process(CONFIG, args.reps, args.warmup)
    print({"single_process_fused_median_seconds": statistics.median(fused)})
    report = {
        "config": CONFIG | {"dtype": "float32", "encode": "tied"},
        "single_process_fused": {
            "median_seconds": statistics.median(fused),
            "spread_seconds": [min(fused), max(fused)],
        },
        "environment": {"machine": platform.machine(), "torch": torch.__version__},
        "results": results,
        "estimate_at_scale": estimate(),
    }
    print(report["estimate_at_scale"])
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
