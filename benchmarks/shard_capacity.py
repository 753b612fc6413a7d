"""How often OpenAI's per-shard capacity factor changes TopK (DIST-13; specs/distributed.md).

`refsae.oracle.topk_shard_capacity` (each of S shards keeps its own k_in = min(k·cf // S, k) largest, then
the k-th largest candidate is the threshold) against the exact `refsae.oracle.topk`, on Gaussian
pre-activations (the k largest of each example fall on uniformly random latents) and on inputs whose k
largest are contiguous latents (one shard holds them all). Reported per configuration: the fraction of
examples whose latents differ, and the fraction of the exact selection's latents lost.

    python benchmarks/shard_capacity.py [--out benchmarks/results/shard-capacity.json]
"""

from __future__ import annotations

import argparse
import json
import platform

import numpy as np

from refsae import oracle


def rates(z: np.ndarray, k: int, n_shards: int, capacity_factor: float) -> dict[str, float]:
    exact = oracle.topk(z, k=k)
    approx = oracle.topk_shard_capacity(z, k=k, n_shards=n_shards, capacity_factor=capacity_factor)
    differs = np.any(exact != approx, axis=-1)
    lost = ((exact > 0) & (approx == 0)).sum() / max(int((exact > 0).sum()), 1)
    return {"examples_differing": float(differs.mean()), "selected_latents_lost": float(lost)}


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
    meta = {"batch": args.batch, "d_sae": d_sae, "numpy": np.__version__, "machine": platform.machine()}
    with open(args.out, "w") as fh:
        json.dump({"meta": meta, "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
