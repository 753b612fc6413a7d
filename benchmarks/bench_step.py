"""Training-step benchmark: refsae.torch's step against the GEMM floor, SAELens and a naive step (PERF-4).

For each configuration, in one process and one run (ratios are only meaningful within a run):

- `floor`: the step's matrix products alone, into preallocated outputs, in the layouts the canonical
  parameters fix (W_enc (d_in, d_sae), W_dec (d_sae, d_in)): z = u W_enc, x_hat = f W_dec,
  g_f = g W_decᵀ, ∂W_dec = fᵀ g, ∂W_enc = uᵀ g_z (ReLU); for TopK the encoder product alone;
- `refsae`: `refsae.torch.train_step_` (fused backward, the default) with `torch.optim.Adam(fused=True)`;
  forward, loss, backward, parallel-gradient removal, Adam, unit-norm constraint;
- `refsae_autograd`: the same step with `backward="autograd"`;
- `compiled`: that autograd step with `sae.loss` compiled by `torch.compile` (inductor; compilation
  happens in the warm-up);
- `naive`: the formulation of Adam Karvonen's tutorial "An Intuitive Explanation of Sparse Autoencoders
  for LLM Interpretability", https://adamkarvonen.github.io/machine_learning/2024/06/11/sae-intuitions.html
  (two nn.Linear, summed-over-d_in squared error, L1, autograd,
  `torch.optim.Adam()`); for TopK, `dense_decode`: the same TopK SAE decoding a dense (batch, d_sae) f;
- `sae_lens`: SAELens' own `SAETrainer._train_step` on its `StandardTrainingSAE` / `TopKTrainingSAE`
  (skipped with the reason when sae_lens is not importable).

The figures must not depend on the order things run in: all of a configuration's implementations are
built first, each is warmed up on its own until stable (at least `--warmup` untimed steps, then until
its last three times lie within 5 % of their median), and their `--reps` timed repetitions are
interleaved, each round starting one implementation further on (benchmarks/interleaved.py). Each
time is the median, reported with its spread (min–max); runtime type checks are off (REFSAE_CHECKS=0).
`--reverse` runs the configurations and the implementations in the opposite order, to check that.

Peak memory: on CPU, each implementation runs two steps in a fresh subprocess and
reports the growth of its peak resident set (VmHWM, reset after the first step) over the resident set
before the model existed;
on CUDA, `torch.cuda.max_memory_allocated` above the memory allocated before the model existed.

    python benchmarks/bench_step.py [--device cpu|cuda] [--dtype float32 ...] [--config NAME ...] [--reverse]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from interleaved import environment, interleave  # noqa: E402


@dataclass(frozen=True)
class Config:
    name: str
    batch: int
    d_in: int
    d_sae: int
    k: int | None = None


CONFIGS = {
    c.name: c
    for c in (
        Config("relu_4096x512x4096", 4096, 512, 4096),
        Config("relu_4096x768x24576", 4096, 768, 24576),
        Config("topk32_4096x768x16384", 4096, 768, 16384, k=32),
        Config("tiny", 64, 16, 128),  # for tests and warm-ups, not in the default run
        Config("tiny_topk", 64, 16, 128, k=4),
    )
}
DEFAULT_CONFIGS = ("relu_4096x512x4096", "relu_4096x768x24576", "topk32_4096x768x16384")
L1 = 1e-3
LR = 1e-4


# --- the implementations: each builder returns a zero-argument step -----------------------------------


def _x(cfg: Config, dtype: torch.dtype, device: str) -> Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(cfg.batch, cfg.d_in, generator=g).to(device=device, dtype=dtype)


def _adam(params: Any, device: str) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=LR, fused=True)


def build_floor(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, dtype=dtype, device=device)

    u, g = randn(cfg.batch, cfg.d_in), randn(cfg.batch, cfg.d_in)
    W_enc, W_dec, act = randn(cfg.d_in, cfg.d_sae), randn(cfg.d_sae, cfg.d_in), randn(cfg.batch, cfg.d_sae)
    out_bd, out_W_dec, out_W_enc = torch.empty_like(u), torch.empty_like(W_dec), torch.empty_like(W_enc)
    if cfg.k is not None:  # TopK: only the encoder product is dense
        return lambda: torch.mm(u, W_enc, out=act)

    def step() -> None:
        torch.mm(u, W_enc, out=act)
        torch.mm(act, W_dec, out=out_bd)
        torch.mm(g, W_dec.T, out=act)
        torch.mm(act.T, g, out=out_W_dec)
        torch.mm(u.T, act, out=out_W_enc)

    return step


def _refsae(cfg: Config, dtype: torch.dtype, device: str, backward: str) -> Callable[[], Any]:
    from refsae.torch import SAE, SAEConfig, train_step_

    sae = SAE(
        SAEConfig(cfg.d_in, cfg.d_sae, l1_coefficient=L1, k=cfg.k, dtype=dtype, device=device),
        generator=torch.Generator().manual_seed(0),
    )
    opt = _adam(sae.parameters(), device)
    x = _x(cfg, dtype, device)
    return lambda: train_step_(sae, opt, x, backward=backward)


def build_refsae(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    return _refsae(cfg, dtype, device, "fused")


def build_refsae_autograd(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    return _refsae(cfg, dtype, device, "autograd")


def build_compiled(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    """refsae's autograd step with its loss (forward and, through AOTAutograd, backward) compiled by
    `torch.compile` (inductor); removal, Adam and the constraint as in the step. The first calls
    compile: the warm-up absorbs them."""
    from refsae.torch import SAE, SAEConfig

    config = SAEConfig(cfg.d_in, cfg.d_sae, l1_coefficient=L1, k=cfg.k, dtype=dtype, device=device)
    sae = SAE(config, generator=torch.Generator().manual_seed(0))
    opt = _adam(sae.parameters(), device)
    x = _x(cfg, dtype, device)
    loss = torch.compile(sae.loss)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss(x).backward()  # type: ignore[no-untyped-call]
        sae.remove_parallel_grad_()
        opt.step()
        sae.constrain_()

    return step


class SeedSAE(nn.Module):
    """The SparseAutoEncoder of Adam Karvonen's SAE tutorial: nn.Linear encoder and decoder, ReLU."""

    def __init__(self, d_in: int, d_sae: int, dtype: torch.dtype, device: str) -> None:
        super().__init__()
        self.encoder_DF = nn.Linear(d_in, d_sae, bias=True, dtype=dtype, device=device)
        self.decoder_FD = nn.Linear(d_sae, d_in, bias=True, dtype=dtype, device=device)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = nn.ReLU()(self.encoder_DF(x))
        return self.decoder_FD(f), f


def build_naive(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    torch.manual_seed(0)
    sae = SeedSAE(cfg.d_in, cfg.d_sae, dtype, device)
    opt = torch.optim.Adam(sae.parameters(), lr=LR)
    x = _x(cfg, dtype, device)

    def step() -> None:  # the tutorial's calculate_loss, then the usual backward and Adam step
        opt.zero_grad()
        x_hat, f = sae(x)
        loss = (x_hat - x).pow(2).sum(-1).mean() + L1 * f.sum()
        loss.backward()
        opt.step()

    return step


def build_dense_decode(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    """The TopK SAE of refsae's step (same conventions, constraint, Adam), decoding a dense f."""
    from refsae.torch import SAE, SAEConfig
    from refsae.torch.constraints import remove_parallel_component, renormalise_rows

    assert cfg.k is not None
    k = cfg.k
    config = SAEConfig(cfg.d_in, cfg.d_sae, dtype=dtype, device=device)
    sae = SAE(config, generator=torch.Generator().manual_seed(0))
    opt = _adam(sae.parameters(), device)
    x = _x(cfg, dtype, device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        z = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        values, idx = torch.topk(z, k, dim=-1)
        f = torch.zeros_like(z).scatter(-1, idx, torch.relu(values))
        x_hat = f @ sae.W_dec + sae.b_dec
        loss = (x_hat - x).pow(2).sum() / x.shape[0] + L1 * f.sum() / x.shape[0]
        loss.backward()  # type: ignore[no-untyped-call]
        with torch.no_grad():
            assert sae.W_dec.grad is not None
            sae.W_dec.grad.copy_(remove_parallel_component(sae.W_dec, sae.W_dec.grad))
        opt.step()
        with torch.no_grad():
            sae.W_dec.copy_(renormalise_rows(sae.W_dec))

    return step


def build_sae_lens(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    import sae_lens.saes as saes
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    dtype_name = str(dtype).removeprefix("torch.")
    common = {"d_in": cfg.d_in, "d_sae": cfg.d_sae, "dtype": dtype_name, "device": device}
    if cfg.k is None:
        sae = saes.StandardTrainingSAE(saes.StandardTrainingSAEConfig(l1_coefficient=L1, **common))
    else:
        sae = saes.TopKTrainingSAE(saes.TopKTrainingSAEConfig(k=cfg.k, **common))
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
    "compiled": build_compiled,
    "naive": build_naive,
    "dense_decode": build_dense_decode,
    "sae_lens": build_sae_lens,
}


def implementations(cfg: Config) -> list[str]:
    if cfg.k is None:
        return ["floor", "refsae", "refsae_autograd", "compiled", "naive", "sae_lens"]
    return ["floor", "refsae", "refsae_autograd", "compiled", "dense_decode", "sae_lens"]


# --- memory ---------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_bytes(impl: str, cfg: Config, dtype: torch.dtype, device: str) -> int:
    """Peak memory of two steps above the memory in use before the implementation was built."""
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step = BUILDERS[impl](cfg, dtype, device)
        step()
        step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
        del step
        return int(peak)
    args = [sys.executable, __file__, "--memory-child", impl, cfg.name, str(dtype).removeprefix("torch.")]
    # a fixed mmap threshold: glibc otherwise raises it as blocks are freed and keeps freed blocks of up
    # to 32 MiB in its heap, where they would count as resident; now every block of 128 KiB or more is
    # mapped on allocation and unmapped when freed, and the resident set follows the live tensors
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=env)
    return int(out.stdout.strip().splitlines()[-1])


def memory_child(impl: str, config: str, dtype: str) -> None:
    """Steady-state peak of one step: everything the implementation holds (parameters, gradients,
    optimizer state, buffers) plus the step's transients, above the resident set before it existed.
    The first step (which creates Adam's state) runs before the peak is reset, so initialisation
    transients do not count."""
    cfg = CONFIGS[config]
    torch.mm(torch.ones(64, 64), torch.ones(64, 64))  # BLAS and thread pools start before the baseline
    tiny = CONFIGS["tiny_topk" if cfg.k else "tiny"]
    BUILDERS[impl](tiny, getattr(torch, dtype), "cpu")()  # and so do the imports (tens of MiB)
    before = _status_kib("VmRSS")
    step = BUILDERS[impl](cfg, getattr(torch, dtype), "cpu")
    step()
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set
    step()
    print((_status_kib("VmHWM") - before) * 1024)


def model_bytes(cfg: Config, dtype: torch.dtype) -> dict[str, int]:
    size = torch.empty((), dtype=dtype).element_size()
    params = (2 * cfg.d_in * cfg.d_sae + cfg.d_sae + cfg.d_in) * size
    return {"params": params, "adam_state": 2 * params, "activation": cfg.batch * cfg.d_sae * size}


# --- the run ----------------------------------------------------------------------------------------------


def run_config(
    cfg: Config,
    dtype: torch.dtype,
    device: str,
    reps: int,
    warmup: int,
    memory: bool,
    skip: tuple[str, ...] = (),
    reverse: bool = False,
) -> dict[str, Any]:
    result: dict[str, Any] = {"config": cfg.name, "batch": cfg.batch, "d_in": cfg.d_in, "d_sae": cfg.d_sae}
    result.update({"k": cfg.k, "dtype": str(dtype).removeprefix("torch."), "device": device})
    steps: dict[str, Callable[[], Any]] = {}
    skipped: dict[str, str] = {}
    for impl in implementations(cfg)[:: -1 if reverse else 1]:
        if impl in skip:
            skipped[impl] = "--skip"
            continue
        try:
            steps[impl] = BUILDERS[impl](cfg, dtype, device)
        except Exception as e:  # a library that is not installed or refuses the configuration
            skipped[impl] = f"{type(e).__name__}: {e}"
            print(f"  {impl:16s} skipped: {skipped[impl]}", file=sys.stderr)
    all_times, warmups = interleave(steps, device, reps, warmup)
    del steps
    times: dict[str, Any] = {}
    for impl in implementations(cfg):
        if impl in all_times:
            t = all_times[impl]
            times[impl] = {"median_s": statistics.median(t), "times_s": t, "warmup_reps": warmups[impl]}
            print(
                f"  {impl:16s} {times[impl]['median_s'] * 1e3:9.1f} ms ({min(t) * 1e3:.1f}–"
                f"{max(t) * 1e3:.1f}, {warmups[impl]} warm-up)",
                file=sys.stderr,
            )
    result["seconds"] = times
    result["skipped"] = skipped
    med = {k: v["median_s"] for k, v in times.items()}
    ratios: dict[str, float] = {}
    for impl in med:
        if impl != "floor" and "floor" in med:
            ratios[f"{impl}/floor"] = med[impl] / med["floor"]
    for other in ("sae_lens", "naive", "dense_decode", "refsae_autograd", "compiled"):
        if other in med and "refsae" in med:
            ratios[f"{other}/refsae"] = med[other] / med["refsae"]
    result["ratios"] = ratios
    if memory:
        result["model_bytes"] = model_bytes(cfg, dtype)
        peaks = {}
        for impl in times:
            if impl != "floor":
                with contextlib.suppress(subprocess.CalledProcessError):
                    peaks[impl] = peak_bytes(impl, cfg, dtype, device)
        result["peak_bytes"] = peaks
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", action="append", help="float32 (default on CPU), bfloat16 … (repeatable)")
    p.add_argument("--config", action="append", choices=sorted(CONFIGS), help="default: all")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--skip", action="append", default=[], help="an implementation to leave out (repeatable)")
    p.add_argument(
        "--reverse", action="store_true", help="configurations and implementations in the opposite order"
    )
    p.add_argument(
        "--out",
        type=Path,
        help="default: benchmarks/results/step-DEVICE.json for the default configurations, none otherwise",
    )
    p.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    p.add_argument(
        "--readme", action="store_true", help="only rewrite README.md's table from the results files"
    )
    args = p.parse_args(argv)
    if args.memory_child:
        memory_child(*args.memory_child)
        return 0
    if args.readme:
        update_readme()
        return 0
    device = args.device
    dtypes = args.dtype or (["float32", "bfloat16"] if device.startswith("cuda") else ["float32"])
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
    results = []
    for name in list(args.config or DEFAULT_CONFIGS)[:: -1 if args.reverse else 1]:
        for dtype in dtypes:
            cfg = CONFIGS[name]
            print(f"{name} {dtype} {device}", file=sys.stderr)
            memory = not args.no_memory
            skip = tuple(args.skip)
            result = run_config(
                cfg, getattr(torch, dtype), device, args.reps, args.warmup, memory, skip, args.reverse
            )
            results.append(result)
    report = {
        "environment": environment(device),
        "reps": args.reps,
        "warmup": args.warmup,
        "order": "reversed" if args.reverse else "as listed",
        "results": results,
    }
    print(summary(report))
    out = args.out
    if out is None and not args.config and not args.reverse:  # only a full run replaces the committed results
        out = ROOT / "benchmarks" / "results" / f"step-{device.split(':')[0]}.json"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    return 0


README = ROOT / "README.md"
START, END = "<!-- bench_step results: start -->", "<!-- bench_step results: end -->"


def readme_block() -> str:
    """README's performance table: `summary` of each committed results file, CPU first."""
    tables = []
    for path in sorted((ROOT / "benchmarks" / "results").glob("step-*.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        env = report["environment"]
        where = env.get("gpu") or f"{env['processor']}, {env['threads']} threads"
        tables.append(
            f"`{path.relative_to(ROOT)}` ({where}, torch {env['torch']}, "
            f"SAELens {env.get('sae_lens', 'not installed')}):\n\n{summary(report)}"
        )
    return "\n\n".join(tables)


def update_readme() -> None:
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{readme_block()}\n{END}{tail}", encoding="utf-8")


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def summary(report: dict[str, Any]) -> str:
    """The ratios as a Markdown table (also what README's performance section quotes)."""
    lines = [
        "| configuration | dtype | device | step (ms): median (min–max) | step / floor | SAELens / refsae "
        "| naive or dense / refsae | torch.compile / refsae | peak / (params + Adam + activation) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        s, q = r["seconds"], r["ratios"]
        step = "–"
        if "refsae" in s:
            t = s["refsae"]["times_s"]
            step = f"{s['refsae']['median_s'] * 1e3:.0f} ({min(t) * 1e3:.0f}–{max(t) * 1e3:.0f})"
        base = q.get("naive/refsae", q.get("dense_decode/refsae"))
        mem = "–"
        if "peak_bytes" in r and "refsae" in r["peak_bytes"]:
            m = r["model_bytes"]
            mem = f"{r['peak_bytes']['refsae'] / (m['params'] + m['adam_state'] + m['activation']):.2f}"
        lines.append(
            f"| {r['config']} | {r['dtype']} | {r['device']} | {step} | {_fmt(q.get('refsae/floor'))} | "
            f"{_fmt(q.get('sae_lens/refsae'))} | {_fmt(base)} | {_fmt(q.get('compiled/refsae'))} | {mem} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ["REFSAE_CHECKS"] = "0"  # before refsae is imported (lazily, by the builders)
    raise SystemExit(main())
