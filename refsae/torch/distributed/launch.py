"""Process groups on one machine, for the tests and the benchmark (DIST-7): `run_ranks(world_size,
target, *args)` spawns `world_size` processes, joins them in one gloo group on loopback (a file store in
a scratch folder, the group's timeout set), runs `target(rank, world_size, *args)` in each (a function
importable by its module path) and returns each rank's outcome, `("ok", result)` or `("error", "Type:
message")`. A process that dies or outlives `timeout` is killed and a `TimeoutError` raised: a caller can
fail, never hang. For real jobs use `torchrun` (README.md)."""

from __future__ import annotations

import pickle
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch.distributed as dist
import torch.multiprocessing as mp

Outcome = tuple[str, Any]


def _worker(
    rank: int,
    world_size: int,
    folder: str,
    target: Callable[..., Any],
    args: tuple[Any, ...],
    timeout: float,
    threads: int,
) -> None:
    import torch

    torch.set_num_threads(threads)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{folder}/store",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=timeout),
    )
    try:
        outcome: Outcome = ("ok", target(rank, world_size, *args))
    except Exception as e:  # reported to the parent, which asserts on it
        outcome = ("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
    finally:
        dist.destroy_process_group()
    with open(f"{folder}/outcome_{rank}.pkl", "wb") as fh:
        pickle.dump(outcome, fh)


def run_ranks(
    world_size: int, target: Callable[..., Any], *args: Any, timeout: float = 120.0, threads: int = 1
) -> list[Outcome]:
    """Each rank's outcome, in rank order; the collectives inside wait at most `timeout` / 4 seconds;
    each process computes on `threads` threads."""
    with tempfile.TemporaryDirectory() as folder:
        context = mp.start_processes(  # type: ignore[attr-defined,no-untyped-call]
            _worker,
            args=(world_size, folder, target, args, timeout / 4, threads),
            nprocs=world_size,
            join=False,
            start_method="spawn",
        )
        deadline = time.monotonic() + timeout
        while not context.join(timeout=0.5):
            if time.monotonic() > deadline:
                for p in context.processes:
                    p.kill()
                raise TimeoutError(f"{world_size} ranks of {target.__name__} ran past {timeout} s")
        outcomes = []
        for rank in range(world_size):
            with open(f"{folder}/outcome_{rank}.pkl", "rb") as fh:
                outcomes.append(pickle.load(fh))
    return outcomes
