"""The fast paths' contracts beyond their values (PERF-2, PERF-3, PERF-5); their values against the
oracle are checked by tests/test_torch_matches_oracle.py (PERF-1)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from refsae.torch import SAE, SAEConfig, train_step_
from refsae.torch.fast.gradients import Workspace, fused_loss_and_gradients
from refsae.torch.fast.topk import topk_fused_loss_and_gradients

BATCH, D_IN, D_SAE, K = 64, 8, 512, 4


class _Allocations(TorchDispatchMode):
    """Records the storage address of every tensor an operator returns with at least `threshold`
    elements."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold
        self.pointers: list[int] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor) and t.numel() >= self.threshold:
                self.pointers.append(t.untyped_storage().data_ptr())
        return out


def _params(dtype: torch.dtype = torch.float64, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "x": torch.randn(BATCH, D_IN, generator=g, dtype=dtype),
        "W_enc": torch.randn(D_IN, D_SAE, generator=g, dtype=dtype) / 3,
        "b_enc": torch.randn(D_SAE, generator=g, dtype=dtype) / 10,
        "W_dec": torch.randn(D_SAE, D_IN, generator=g, dtype=dtype) / 3,
        "b_dec": torch.randn(D_IN, generator=g, dtype=dtype),
    }


def _bench() -> Any:
    """benchmarks/bench_step.py as a module (benchmarks/ is not a package)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_step.py"
    spec = importlib.util.spec_from_file_location("bench_step", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_step"] = bench
    spec.loader.exec_module(bench)
    return bench


def _buffers(ws: Workspace) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in ws._buffers.values()}


@pytest.mark.parametrize("topk", [False, True], ids=["relu", "topk"])
def test_after_the_first_step_every_batch_by_d_sae_tensor_lives_in_the_workspace(topk: bool) -> None:
    """PERF-2, PERF-3: a second call with the same workspace creates no (batch, d_sae)-sized tensor of
    its own: every operator output that large is one of the workspace's buffers, and the workspace
    holds one such buffer (z, then f, then g_z; TopK: z), so a training loop allocates (and
    page-faults in) none per step."""
    p = _params()
    ws = Workspace()

    def call() -> None:
        if topk:
            topk_fused_loss_and_gradients(*p.values(), k=K, l1_coefficient=0.1, workspace=ws)
        else:
            fused_loss_and_gradients(*p.values(), l1_coefficient=0.1, workspace=ws)

    call()
    recorder = _Allocations(BATCH * D_SAE // 4)
    with recorder:
        call()
    assert recorder.pointers, "the recorder saw no large tensor: the test would pass vacuously"
    assert set(recorder.pointers) <= _buffers(ws)
    assert len(ws._buffers) > 0
    large = [t for t in ws._buffers.values() if t.numel() >= BATCH * D_SAE // 4]
    assert len(large) == 1, [tuple(t.shape) for t in ws._buffers.values()]


def test_the_fused_gradients_are_written_into_the_given_tensors_and_the_inputs_are_untouched() -> None:
    """PERF-2: `out` receives the gradients in place; the inputs are not written; no graph is built."""
    p = _params()
    before = {k: v.clone() for k, v in p.items()}
    out = {k: torch.full_like(p[k], float("nan")) for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
    leaves = {k: v.requires_grad_(True) if k != "x" else v for k, v in p.items()}
    loss, grads = fused_loss_and_gradients(*leaves.values(), l1_coefficient=0.1, out=out)
    for k, t in out.items():
        assert grads[k] is t
        assert bool(torch.isfinite(t).all())
    for k in p:
        assert torch.equal(p[k].detach(), before[k])
    assert loss.grad_fn is None and not loss.requires_grad
    assert all(g.grad_fn is None for g in grads.values())


def test_an_out_tensor_of_the_wrong_shape_is_refused_with_its_name() -> None:
    p = _params()
    with pytest.raises(ValueError, match=r"out\['W_dec'\] has shape \(8, 512\)"):
        wrong = torch.zeros(D_IN, D_SAE, dtype=torch.float64)
        fused_loss_and_gradients(*p.values(), l1_coefficient=0.1, out={"W_dec": wrong})


def test_a_workspace_reallocates_a_buffer_only_when_shape_or_dtype_changes() -> None:
    """PERF-2: the same request returns the same storage; a new shape or dtype replaces the buffer."""
    ws = Workspace()
    like = torch.zeros(1, dtype=torch.float32)
    a = ws.get("act", (4, 8), like)
    assert ws.get("act", (4, 8), like).data_ptr() == a.data_ptr()
    b = ws.get("act", (4, 9), like)
    assert b.shape == (4, 9) and ws.nbytes == 4 * 9 * 4
    c = ws.get("act", (4, 9), like, torch.float64)
    assert c.dtype == torch.float64 and ws.nbytes == 4 * 9 * 8


@pytest.mark.parametrize("k", [None, K], ids=["relu", "topk"])
def test_a_parallel_gradient_hook_and_the_fused_step_give_the_explicit_removal(k: int | None) -> None:
    """PERF-5, PAR-4: the fused backward runs no autograd, so a hook on W_dec would never fire; the
    fused step removes the parallel component itself, and the step is bitwise the same with or
    without the hook registered."""
    results = []
    x = _params(torch.float64)["x"]
    for hook in (False, True):
        config = SAEConfig(D_IN, D_SAE, k=k, parallel_grad_hook=hook, dtype=torch.float64)
        sae = SAE(config, generator=torch.Generator().manual_seed(1))
        opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
        for _ in range(3):
            train_step_(sae, opt, x)
        results.append({n: p.detach().clone() for n, p in sae.named_parameters()})
    for name in results[0]:
        assert torch.equal(results[0][name], results[1][name]), name


@pytest.mark.parametrize("k", [None, K], ids=["relu", "topk"])
def test_the_fused_step_is_its_gradients_then_removal_adam_and_constraint_bitwise(k: int | None) -> None:
    """PERF-5, STEP-1: three fused steps equal, bit for bit, the composition written out by hand from
    the fast path's gradients (checked against the oracle, PERF-1), `remove_parallel_component_`, the
    same Adam and `renormalise_rows_` (fast paths of their rows, PERF-6): the glue loses nothing. The
    loss goes down."""
    from refsae.torch.fast.constraints import remove_parallel_component_, renormalise_rows_

    x = _params(torch.float64)["x"]
    config = SAEConfig(D_IN, D_SAE, k=k, l1_coefficient=0.01, dtype=torch.float64)
    sae = SAE(config, generator=torch.Generator().manual_seed(2))
    manual = {n: p.detach().clone().requires_grad_(True) for n, p in sae.named_parameters()}
    opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
    opt_manual = torch.optim.Adam(manual.values(), lr=1e-2)
    losses = []
    for _ in range(3):
        losses.append(float(train_step_(sae, opt, x)))
        args = (x, *(manual[n].detach() for n in ("W_enc", "b_enc", "W_dec", "b_dec")))
        if k is None:
            loss, grads = fused_loss_and_gradients(*args, l1_coefficient=0.01)
        else:
            loss, grads = topk_fused_loss_and_gradients(*args, k=k, l1_coefficient=0.01)
        assert float(loss) == losses[-1]
        remove_parallel_component_(manual["W_dec"].detach(), grads["W_dec"])
        for n, t in manual.items():
            t.grad = grads[n]
        opt_manual.step()
        with torch.no_grad():
            renormalise_rows_(manual["W_dec"])
    assert losses[-1] < losses[0]
    for name, p in sae.named_parameters():
        assert torch.equal(p.detach(), manual[name].detach()), name


def test_an_unknown_backward_is_refused_with_the_choices() -> None:
    sae = SAE(SAEConfig(D_IN, D_SAE))
    opt = torch.optim.Adam(sae.parameters())
    with pytest.raises(ValueError, match="fused, autograd"):
        train_step_(sae, opt, torch.zeros(2, D_IN), backward="compiled")


def test_a_topk_sae_refuses_k_outside_one_to_d_sae() -> None:
    with pytest.raises(ValueError, match="k"):
        SAEConfig(D_IN, D_SAE, k=D_SAE + 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_in_place_constraint_and_removal_fall_back_to_the_scaled_versions_for_tiny_rows(
    dtype: torch.dtype,
) -> None:
    """PERF-6, CON-4: a row whose squares would underflow (1e-30 · unit in float32 and bfloat16,
    1e-300 in float64) makes the direct condition false, and the in-place functions then give the
    functional (scaled) results bit for bit; on ordinary rows the condition holds."""
    from refsae.torch.constraints import remove_parallel_component, renormalise_rows
    from refsae.torch.fast.constraints import remove_parallel_component_, renormalise_rows_, squares_are_safe

    g = torch.Generator().manual_seed(3)
    W = torch.randn(6, 32, generator=g, dtype=torch.float64).to(dtype)
    G = torch.randn(6, 32, generator=g, dtype=torch.float64).to(dtype)
    assert squares_are_safe(W)
    W[2] = W[2] * (1e-300 if dtype == torch.float64 else 1e-30)
    W[4] = 0
    assert bool(W[2].abs().max() > 0) and not squares_are_safe(W)
    assert torch.equal(renormalise_rows_(W.clone()), renormalise_rows(W))
    assert torch.equal(remove_parallel_component_(W, G.clone()), remove_parallel_component(W, G))


def test_float16_rows_always_take_the_scaled_path() -> None:
    """PERF-6: float16's range makes the direct condition fail for ordinary unit rows of d_in = 32."""
    from refsae.torch.fast.constraints import squares_are_safe

    W = torch.full((3, 32), 32**-0.5, dtype=torch.float16)
    assert not squares_are_safe(W)
    assert squares_are_safe(W.float())


def test_the_benchmark_runs_every_implementation_and_derives_its_ratios_from_its_medians(
    tmp_path: Any,
) -> None:
    """PERF-4: `benchmarks/bench_step.py` on the tiny configurations writes, per configuration, the
    raw times of every implementation, ratios that are quotients of the medians, the model sizes and
    a peak per implementation; SAELens is either timed or skipped with the reason."""
    import json

    bench = _bench()
    out = tmp_path / "step.json"
    argv = ["--config", "tiny", "--config", "tiny_topk", "--reps", "3", "--warmup", "1", "--out", str(out)]
    argv += ["--skip", "compiled"]  # compiling takes tens of seconds; the builder is the eager step's
    assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["environment"]["torch"] == torch.__version__
    for result, baseline in zip(report["results"], ("naive", "dense_decode"), strict=True):
        seconds = result["seconds"]
        assert {"floor", "refsae", "refsae_autograd", baseline} <= set(seconds)
        assert "sae_lens" in seconds or "sae_lens" in result["skipped"]
        assert result["skipped"]["compiled"] == "--skip"
        for impl, timing in seconds.items():
            assert len(timing["times_s"]) == 3
            assert timing["warmup_reps"] >= 1
            assert timing["median_s"] == sorted(timing["times_s"])[1]
            if impl != "floor":
                assert result["ratios"][f"{impl}/floor"] == timing["median_s"] / seconds["floor"]["median_s"]
        quotient = seconds[baseline]["median_s"] / seconds["refsae"]["median_s"]
        assert result["ratios"][f"{baseline}/refsae"] == quotient
        assert set(result["peak_bytes"]) == set(seconds) - {"floor"}
        assert all(isinstance(v, int) for v in result["peak_bytes"].values())
        assert result["model_bytes"]["activation"] == result["batch"] * result["d_sae"] * 4


def test_benchmark_timing_warms_each_step_until_stable_then_rotates_the_interleaved_rounds() -> None:
    """PERF-4: `interleave` warms each step on its own until its last three times agree within 5 %,
    then times `reps` rounds, round r starting at the r-th step, so no step always follows the same one
    and a slow patch of the machine is shared."""
    _bench()  # puts benchmarks/ on sys.path
    import interleaved

    calls: list[str] = []
    delays = {"a": [0.02, 0.0, 0.0, 0.0], "b": [0.0] * 4, "c": [0.0] * 4}

    def step(name: str) -> Any:
        def run() -> None:
            calls.append(name)
            pending = delays[name]
            if pending:
                import time

                time.sleep(pending.pop(0))

        return run

    steps = {name: step(name) for name in "abc"}
    times, warmups = interleaved.interleave(steps, "cpu", reps=3, warmup=1)
    # a's first step is slow: its warm-up goes on until three fast steps in a row
    assert warmups["a"] >= 4 and warmups["b"] >= 3 and warmups["c"] >= 3
    timed_calls = calls[sum(warmups.values()) :]
    assert timed_calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(t) == 3 and max(t) < 0.02 for t in times.values())


def test_the_readme_performance_table_is_the_committed_results() -> None:
    """PERF-4: README.md's table is `bench_step.py --readme` of benchmarks/results/step-*.json (which
    `nox -s bench` rewrites together), so the quoted ratios are the committed measurements."""
    bench = _bench()
    readme = bench.README.read_text(encoding="utf-8")
    block = readme.split(bench.START, 1)[1].split(bench.END, 1)[0]
    assert block.strip() == bench.readme_block().strip()
    assert "step-cpu.json" in block


def test_the_sparse_backward_accumulates_half_precision_sums_in_float32() -> None:
    """PERF-3, TOL-3: the scatter sums of the sparse backward (the bags' weight gradient and the b_enc
    index sum) accumulate float16 and bfloat16 in float32, as the bounds assume: 4096 terms of fl16(1e-3)
    sum to their float32 sum rounded once, where a float16 accumulation stalls at 4.0."""
    from refsae.torch.fast.topk import Bags, scatter_sum

    n = 4096
    for dtype in (torch.float16, torch.bfloat16):
        term = torch.tensor(1e-3, dtype=dtype)
        exact = (n * term.double()).to(dtype)  # n · term is exact in float64, rounded once
        bags = Bags(torch.zeros(n, dtype=torch.long), torch.arange(n), n, 1)
        ones = torch.ones(n, 1, dtype=dtype)
        assert bags.weight_gradient(ones, term.expand(n)).item() == exact.item()
        index = torch.zeros(n, dtype=torch.long)
        assert scatter_sum(torch.zeros(1, dtype=dtype), index, term.expand(n)).item() == exact.item()
