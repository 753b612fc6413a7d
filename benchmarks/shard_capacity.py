"""How often OpenAI's per-shard capacity factor changes TopK (DIST-13; specs/distributed.md).

`refsae.oracle.topk_shard_capacity` (each of S shards keeps its own k_in = min(k·cf // S, k) largest, then
the k-th largest candidate is the threshold) against the exact `refsae.oracle.topk`, on Gaussian
pre-activations (the k largest of each example fall on uniformly random latents) and on inputs whose k
largest are contiguous latents (one shard holds them all). Reported per configuration: the fraction of
examples whose latents differ, and the fraction of the exact selection's latents lost. Then the `>=`
rule alone (`refsae.oracle.topk_sharded_at_or_above`, EQ-18) on Gaussian pre-activations stored in
float32, bfloat16 and float16: the fraction of examples where a positive value ties at the k-th, so that
the rule keeps more than k latents, and the latents kept beyond k per example.

    python benchmarks/shard_capacity.py [--out benchmarks/results/shard-capacity.json]
"""

from __future__ import annotations

import argparse
import json
import platform

import numpy as np

from refsae import oracle
from refsae.checking.strategies import round_to


def rates(z: np.ndarray, k: int, n_shards: int, capacity_factor: float) -> dict[str, float]:
    exact = oracle.topk(z, k=k)
    approx = oracle.topk_shard_capacity(z, k=k, n_shards=n_shards, capacity_factor=capacity_factor)
    differs = np.any(exact != approx, axis=-1)
    lost = ((exact > 0) & (approx == 0)).sum() / max(int((exact > 0).sum()), 1)
    return {"examples_differing": float(differs.mean()), "selected_latents_lost": float(lost)}


def ties(z: np.ndarray, k: int, n_shards: int) -> dict[str, float]:
    kept = (oracle.topk_sharded_at_or_above(z, k=k, n_shards=n_shards) > 0).sum(axis=-1)
    exact = (oracle.topk_sharded(z, k=k, n_shards=n_shards) > 0).sum(axis=-1)
    return {
        "examples_keeping_more_than_k": float((kept > exact).mean()),
        "extra_latents": float((kept - exact).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/results/shard-capacity.json")
    parser.add_argument("--batch", type=int, default=2048)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    d_sae, results = 4096, []
    for k in (32, 64):
        for n_shards in (4, 8, 16, 32, 64):
            for capacity_factor in (4, 2):
                if k * capacity_factor // n_shards < 1:
                    continue
                z = rng.standard_normal((args.batch, d_sae))
                clustered = z.copy()
                clustered[:, :k] += 10.0  # the k largest are latents 0 … k − 1: one shard's
                results.append(
                    {
                        "k": k,
                        "n_shards": n_shards,
                        "capacity_factor": capacity_factor,
                        "k_in": min(int(k * capacity_factor // n_shards), k),
                        "gaussian": rates(z, k, n_shards, capacity_factor),
                        "contiguous_top_k": rates(clustered, k, n_shards, capacity_factor),
                    }
                )
                print(results[-1])
    tie_rates = []
    for d in (4096, 16384):
        z = rng.standard_normal((args.batch // 4, d))
        for dtype in ("float32", "bfloat16", "float16"):
            tie_rates.append(
                {"d_sae": d, "k": 32, "n_shards": 8, "dtype": dtype, **ties(round_to(z, dtype), 32, 8)}
            )
            print(tie_rates[-1])
    meta = {"batch": args.batch, "d_sae": d_sae, "numpy": np.__version__, "machine": platform.machine()}
    with open(args.out, "w") as fh:
        json.dump({"meta": meta, "results": results, "at_or_above": tie_rates}, fh, indent=1)


if __name__ == "__main__":
    main()
