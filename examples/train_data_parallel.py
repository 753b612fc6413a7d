"""Data-parallel SAE training with refsae.torch (specs/distributed.md, DIST-1..DIST-6).

    torchrun --standalone --nproc-per-node 4 examples/train_data_parallel.py [--steps 100]

Every process builds the same SAE (same seed), takes its slice of each batch (the rows rank·B/W …
(rank+1)·B/W of a batch every process draws alike, here from a shared seed; in practice each process
reads its own slice), and calls `data_parallel_train_step_`: the gradients are summed across processes,
so every replica takes the step on the whole batch. gloo on CPU, nccl when CUDA is visible.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

import torch
import torch.distributed as dist

from refsae.torch import SAE, SAEConfig
from refsae.torch.distributed import data_parallel_train_step_


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=256, help="the whole batch, split over the processes")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    device = f"cuda:{rank % torch.cuda.device_count()}" if cuda else "cpu"
    torch.manual_seed(0)  # the same initial SAE on every process (checked by the first step)
    sae = SAE(SAEConfig(d_in=64, d_sae=512, k=16, device=device))
    optimizer = torch.optim.Adam(sae.parameters(), lr=1e-3)
    data = torch.Generator().manual_seed(1)
    for step in range(args.steps):
        x = torch.randn(args.batch, 64, generator=data)  # the whole batch, drawn alike everywhere
        local = x[rank * args.batch // world : (rank + 1) * args.batch // world].to(device)
        loss = data_parallel_train_step_(sae, optimizer, local, check_replicas=step == 0)
        if rank == 0 and (step % 20 == 0 or step == args.steps - 1):
            print(f"step {step}: loss {float(loss):.4f} on the whole batch of {args.batch}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
