"""What each rank runs in tests/test_distributed.py (importable by the spawned processes): a
data-parallel trajectory on its slice, recording the state before and after every step; the dead-latent
reductions; the bad configurations."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from refsae.conventions import Conventions
from refsae.oracle.optimizer import PARAMETERS
from refsae.torch.dead import dead_by_fire_fraction
from refsae.torch.distributed import (
    data_parallel_fire_counts,
    data_parallel_resample_,
    data_parallel_steps_since_fired,
    data_parallel_train_step_,
)
from refsae.torch.model import SAE, SAEConfig

State = dict[str, dict[str, np.ndarray]]


def _state(sae: SAE, optimizer: torch.optim.Optimizer) -> State:
    out: State = {"param": {}, "exp_avg": {}, "exp_avg_sq": {}}
    for name in PARAMETERS:
        p = getattr(sae, name)
        out["param"][name] = p.detach().double().numpy().copy()
        for moment in ("exp_avg", "exp_avg_sq"):
            value = optimizer.state[p][moment] if p in optimizer.state else torch.zeros_like(p)
            out[moment][name] = value.detach().double().numpy().copy()
    return out


def build(spec: dict[str, Any]) -> tuple[SAE, torch.optim.Optimizer]:
    """The spec's SAE (sizes, k, λ, conventions, dtype) with its parameters, and Adam."""
    p = spec["param"]
    d_in, d_sae = p["W_enc"].shape[-2:]
    config = SAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        n_inst=p["W_enc"].shape[0] if p["W_enc"].ndim == 3 else None,
        l1_coefficient=spec["l1_coefficient"],
        conventions=Conventions(**spec["conventions"]),
        k=spec["k"],
        dtype=getattr(torch, spec["dtype"]),
    )
    sae = SAE(config)
    with torch.no_grad():
        for name in PARAMETERS:
            getattr(sae, name).copy_(torch.from_numpy(p[name]))
    return sae, torch.optim.Adam(sae.parameters(), lr=spec["lr"])


def trajectory(rank: int, world_size: int, spec: dict[str, Any]) -> dict[str, Any]:
    """`spec["x"]` (steps, B, …): at each step this rank trains on its slice (rows rank·B/W …)."""
    sae, optimizer = build(spec)
    dtype = getattr(torch, spec["dtype"])
    states, losses = [_state(sae, optimizer)], []
    for x in spec["x"]:
        rows = slice(rank * x.shape[0] // world_size, (rank + 1) * x.shape[0] // world_size)
        local = torch.from_numpy(x[rows]).to(dtype)
        loss = data_parallel_train_step_(sae, optimizer, local, backward=spec["backward"])
        losses.append(float(loss))
        states.append(_state(sae, optimizer))
    return {"states": states, "loss": losses}


def trajectories(rank: int, world_size: int, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [trajectory(rank, world_size, spec) for spec in specs]


def dead_statistics(
    rank: int, world_size: int, f: np.ndarray, steps_since: np.ndarray
) -> dict[str, np.ndarray]:
    rows = slice(rank * f.shape[0] // world_size, (rank + 1) * f.shape[0] // world_size)
    local = torch.from_numpy(f[rows])
    counts = data_parallel_fire_counts(local)
    steps = data_parallel_steps_since_fired(torch.from_numpy(steps_since), local)
    return {"counts": counts.numpy(), "steps": steps.numpy()}


def one_step(rank: int, world_size: int, spec: dict[str, Any], slices: list[np.ndarray]) -> str:
    """One step on this rank's slice (the bad-configuration tests pass mismatched slices or perturb one
    rank's parameters through `spec["perturb_rank"]`): the loss, or the error raised."""
    sae, optimizer = build(spec)
    if spec.get("perturb_rank") == rank:
        with torch.no_grad():
            sae.W_enc[0, 0] += 1e-12
    x = torch.from_numpy(slices[rank]).to(getattr(torch, spec["dtype"]))
    try:
        return f"loss {float(data_parallel_train_step_(sae, optimizer, x))}"
    except ValueError as e:
        return f"ValueError: {e}"


def steps(rank: int, world_size: int, cases: list[tuple[dict[str, Any], list[np.ndarray]]]) -> list[str]:
    """`one_step` on each case in turn, in one process group."""
    return [one_step(rank, world_size, spec, slices) for spec, slices in cases]


def communication(rank: int, world_size: int, specs: list[dict[str, Any]]) -> list[list[int]]:
    """The element counts of every all_reduce one step of each spec makes (`check_replicas=False`)."""
    import torch.distributed as dist

    counts: list[list[int]] = []
    original = dist.all_reduce

    def counting(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        counts[-1].append(tensor.numel())
        return original(tensor, *args, **kwargs)

    dist.all_reduce = counting
    try:
        for spec in specs:
            sae, optimizer = build(spec)
            x = spec["x"][0]
            rows = slice(rank * x.shape[0] // world_size, (rank + 1) * x.shape[0] // world_size)
            counts.append([])
            data_parallel_train_step_(sae, optimizer, torch.from_numpy(x[rows]), check_replicas=False)
    finally:
        dist.all_reduce = original
    return counts


def _gathered(tensor: torch.Tensor, axis: int | None, group: Any = None) -> np.ndarray:
    """The shards of a tensor concatenated along its latent axis (whole when `axis` is None)."""
    import torch.distributed as dist

    if axis is None:
        return tensor.detach().double().numpy().copy()
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, tensor.detach().contiguous(), group=group)
    return torch.cat(parts, dim=axis).double().numpy()


def _sharded_state(sae: SAE, optimizer: torch.optim.Optimizer, group: Any = None) -> State:
    from refsae.torch.distributed.latent_sharded import SHARDED

    out: State = {"param": {}, "exp_avg": {}, "exp_avg_sq": {}}
    for name in PARAMETERS:
        p, axis = getattr(sae, name), SHARDED.get(name)
        out["param"][name] = _gathered(p, axis, group)
        for moment in ("exp_avg", "exp_avg_sq"):
            value = optimizer.state[p][moment] if p in optimizer.state else torch.zeros_like(p)
            out[moment][name] = _gathered(value, axis, group)
    return out


def sharded_auxk(spec: dict[str, Any], shard: int, n_shards: int) -> Any:
    """The spec's AuxK term (`spec["auxk"]`: the whole dead mask and the options) for latent shard
    `shard`: its slice of the dead mask."""
    from refsae.torch.distributed import ShardedAuxK

    if spec.get("auxk") is None:
        return None
    options = dict(spec["auxk"])
    dead = options.pop("dead")
    m = dead.shape[-1] // n_shards
    return ShardedAuxK(dead=torch.from_numpy(dead[shard * m : (shard + 1) * m]), **options)


def sharded_trajectory(rank: int, world_size: int, spec: dict[str, Any]) -> dict[str, Any]:
    """The whole SAE of `spec` split into latent shards; STEPS sharded steps on the whole batches; the
    gathered state after each."""
    from refsae.torch.distributed import latent_shard, latent_sharded_train_step_

    whole = {n: torch.from_numpy(v) for n, v in spec["param"].items()}
    local = latent_shard(whole, rank, world_size)
    shard_spec = spec | {"param": {n: v.numpy() for n, v in local.items()}, "k": None}
    sae, optimizer = build(shard_spec)
    dtype = getattr(torch, spec["dtype"])
    states, losses = [_sharded_state(sae, optimizer)], []
    for x in spec["x"]:
        loss = latent_sharded_train_step_(
            sae,
            optimizer,
            torch.from_numpy(x).to(dtype),
            k=spec["k"],
            batch_k=spec.get("batch_k"),
            auxk=sharded_auxk(spec, rank, world_size),
        )
        losses.append(float(loss))
        states.append(_sharded_state(sae, optimizer))
    return {"states": states, "loss": losses}


def sharded_trajectories(rank: int, world_size: int, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [sharded_trajectory(rank, world_size, spec) for spec in specs]


def sharded_errors(rank: int, world_size: int, spec: dict[str, Any]) -> list[str]:
    """A d_sae not divisible by the world size; a batch that differs on one process; then a good step."""
    from refsae.torch.distributed import latent_shard, latent_sharded_train_step_

    out = []
    whole = {n: torch.from_numpy(v) for n, v in spec["param"].items()}
    try:
        latent_shard(
            {n: v[..., :-1] if n in ("W_enc", "b_enc") else v for n, v in whole.items()}, rank, world_size
        )
        out.append("no error")
    except ValueError as e:
        out.append(f"ValueError: {e}")
    local = latent_shard(whole, rank, world_size)
    sae, optimizer = build(spec | {"param": {n: v.numpy() for n, v in local.items()}, "k": None})
    x = torch.from_numpy(spec["x"][0])
    for batch in (x + rank, x):
        try:
            out.append(f"loss {float(latent_sharded_train_step_(sae, optimizer, batch, k=spec['k']))}")
        except ValueError as e:
            out.append(f"ValueError: {e}")
    return out


def sharded_communication(
    rank: int, world_size: int, specs: list[dict[str, Any]]
) -> list[list[tuple[str, int]]]:
    """The collectives (name, elements per process) of one sharded step of each spec, without checks."""
    import torch.distributed as dist

    from refsae.torch.distributed import latent_shard, latent_sharded_train_step_

    calls: list[list[tuple[str, int]]] = []
    originals: dict[str, Any] = {"all_reduce": dist.all_reduce, "all_gather": dist.all_gather}

    def counting(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            tensor = args[0] if name == "all_reduce" else args[1]
            calls[-1].append((name, tensor.numel()))
            return originals[name](*args, **kwargs)

        return call

    dist.all_reduce, dist.all_gather = counting("all_reduce"), counting("all_gather")
    try:
        for spec in specs:
            whole = {n: torch.from_numpy(v) for n, v in spec["param"].items()}
            local = latent_shard(whole, rank, world_size)
            sae, optimizer = build(spec | {"param": {n: v.numpy() for n, v in local.items()}, "k": None})
            calls.append([])
            x = torch.from_numpy(spec["x"][0])
            latent_sharded_train_step_(
                sae, optimizer, x, k=spec["k"], batch_k=spec.get("batch_k"), check_replicas=False
            )
    finally:
        dist.all_reduce = originals["all_reduce"]
        dist.all_gather = originals["all_gather"]
    return calls


def resampling_trajectory(rank: int, world_size: int, spec: dict[str, Any]) -> dict[str, Any]:
    """tests/test_trajectories.py's schedule on this rank's slices: fire counts of the whole batch, a
    data-parallel step, and after step `spec["event"]` the data-parallel resampling event (generator
    seeded with `spec["seeds"][rank]`) on this rank's slice of `spec["resample_x"]`."""
    sae, optimizer = build(spec)
    counts = torch.zeros(sae.b_enc.shape, dtype=torch.int64)
    out: dict[str, Any] = {"states": []}
    for k, x in enumerate(spec["x"]):
        rows = slice(rank * x.shape[0] // world_size, (rank + 1) * x.shape[0] // world_size)
        local = torch.from_numpy(x[rows])
        with torch.no_grad():
            counts += data_parallel_fire_counts(sae.encode(local))
        data_parallel_train_step_(sae, optimizer, local)
        if k == spec["event"]:
            dead = dead_by_fire_fraction(counts, x.shape[0] * (k + 1), spec["threshold"])
            generator = torch.Generator().manual_seed(spec["seeds"][rank])
            try:
                resampled = data_parallel_resample_(
                    sae, optimizer, torch.from_numpy(spec["resample_x"][rows]), dead, generator=generator
                )
            except ValueError as e:
                return {"error": str(e)}
            out |= {"dead": dead.numpy(), "resampled": resampled.numpy()}
            counts.zero_()
        out["states"].append(_state(sae, optimizer))
    return out


def grid_trajectories(rank: int, world_size: int, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each spec's SAE on the data × shard grid `spec["grid"]` = (slices, shards) (DIST-17): process
    slice·shards + shard trains latent shard `shard` on batch slice `slice`; the state gathered over the
    shard group after each step."""
    from refsae.torch.distributed import grid_groups, latent_shard, latent_sharded_train_step_

    out = []
    for spec in specs:
        n_slices, n_shards = spec["grid"]
        shard_group, data_group = grid_groups(n_slices, n_shards)
        part, shard = divmod(rank, n_shards)
        whole = {n: torch.from_numpy(v) for n, v in spec["param"].items()}
        local = latent_shard(whole, shard, n_shards)
        sae, optimizer = build(spec | {"param": {n: v.numpy() for n, v in local.items()}, "k": None})
        states, losses = [_sharded_state(sae, optimizer, shard_group)], []
        for x in spec["x"]:
            rows = slice(part * x.shape[0] // n_slices, (part + 1) * x.shape[0] // n_slices)
            loss = latent_sharded_train_step_(
                sae,
                optimizer,
                torch.from_numpy(x[rows]).to(getattr(torch, spec["dtype"])),
                k=spec["k"],
                batch_k=spec.get("batch_k"),
                auxk=sharded_auxk(spec, shard, n_shards),
                group=shard_group,
                data_group=data_group,
            )
            losses.append(float(loss))
            states.append(_sharded_state(sae, optimizer, shard_group))
        out.append({"states": states, "loss": losses})
    return out


def bad_grid(rank: int, world_size: int, grid: tuple[int, int]) -> str:
    from refsae.torch.distributed import grid_groups

    try:
        grid_groups(*grid)
    except ValueError as e:
        return f"ValueError: {e}"
    return "no error"


def sharded_auxk_errors(rank: int, world_size: int, spec: dict[str, Any]) -> str:
    """One sharded AuxK step in which process 1 passes the whole dead mask instead of its part."""
    from refsae.torch.distributed import ShardedAuxK, latent_shard, latent_sharded_train_step_

    whole = {n: torch.from_numpy(v) for n, v in spec["param"].items()}
    local = latent_shard(whole, rank, world_size)
    sae, optimizer = build(spec | {"param": {n: v.numpy() for n, v in local.items()}, "k": None})
    auxk = sharded_auxk(spec, rank, world_size)
    if rank == 1:
        auxk = ShardedAuxK(
            coefficient=auxk.coefficient, dead=torch.from_numpy(spec["auxk"]["dead"]), k_aux=auxk.k_aux
        )
    try:
        loss = latent_sharded_train_step_(
            sae, optimizer, torch.from_numpy(spec["x"][0]), k=spec["k"], auxk=auxk
        )
    except ValueError as e:
        return f"ValueError: {e}"
    return f"loss {float(loss)}"
