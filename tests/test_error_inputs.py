"""Bad input gets a clear error, in the oracle and in refsae.torch alike (NOT-3, NOT-5..NOT-7,
DEC-5, LOSS-7, LOSS-8, MET-2). Every row of the operation table is covered, fast paths included."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import jaxtyping
import numpy as np
import pytest
import torch

from refsae import torch as rt
from refsae.cases import Case
from refsae.checking import table
from refsae.checking.examples import canonical_case
from refsae.checking.operation import Operation
from refsae.conventions import Conventions

SIDES = ("oracle", "torch")


def _run(op: Operation, side: str, case: Case) -> Any:
    if side == "oracle":
        return op.call(op.oracle, case.arrays, case.options)
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in case.arrays.items()}
    fn = op.fast if side == "fast" else op.torch
    assert fn is not None
    return op.call(fn, tensors, case.options)


def _with(case: Case, **arrays: np.ndarray) -> Case:
    return dataclasses.replace(case, arrays={**case.arrays, **arrays})


def _rows(predicate: Callable[[Operation], bool]) -> list[tuple[Operation, str]]:
    """Each row on each side, and on its fast path where it has one (PERF-1)."""
    fast = [(op, "fast") for op in table.TABLE if op.fast is not None and predicate(op)]
    return [(op, side) for op in table.TABLE if predicate(op) for side in SIDES] + fast


def _ids(rows: list[tuple[Operation, str]]) -> list[str]:
    return [f"{op.name}-{side}" for op, side in rows]


ALL = _rows(lambda op: True)
FLOAT_INPUT = _rows(lambda op: any(a.dtype.kind == "f" for a in canonical_case(op).arrays.values()))
BATCHED = _rows(lambda op: bool({"x", "f"} & set(op.arrays)))
WITH_EPS = _rows(
    lambda op: "eps" in canonical_case(op).options or "conventions" in canonical_case(op).options
)
WITH_COEFFICIENT = _rows(lambda op: "l1_coefficient" in canonical_case(op).options)


@pytest.mark.parametrize(("op", "side"), ALL, ids=_ids(ALL))
def test_the_canonical_case_is_valid_input(op: Operation, side: str) -> None:
    """The reference point of every error test below runs cleanly."""
    _run(op, side, canonical_case(op))


@pytest.mark.parametrize(("op", "side"), FLOAT_INPUT, ids=_ids(FLOAT_INPUT))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_raises_value_error_naming_the_array(op: Operation, side: str, bad: float) -> None:
    """NOT-5."""
    case = canonical_case(op)
    for name, a in case.arrays.items():
        if a.dtype.kind != "f":
            continue  # integer inputs (counts, steps) cannot hold NaN or Inf
        poisoned = a.copy()
        poisoned.flat[0] = bad
        with pytest.raises(ValueError, match=f"{name} contains NaN or Inf"):
            _run(op, side, _with(case, **{name: poisoned}))


@pytest.mark.parametrize(("op", "side"), BATCHED, ids=_ids(BATCHED))
def test_an_empty_batch_raises_value_error(op: Operation, side: str) -> None:
    """NOT-6."""
    case = canonical_case(op)
    batched = {"x", "x_hat", "f", "z", *(("y",) if "x" in case.arrays else ())}  # a transcoder's target
    emptied = {k: v[:0] for k, v in case.arrays.items() if k in batched}
    with pytest.raises(ValueError, match="empty batch"):
        _run(op, side, _with(case, **emptied))


@pytest.mark.parametrize(("op", "side"), ALL, ids=_ids(ALL))
def test_a_wrong_dimension_raises_a_type_check_error_naming_it(op: Operation, side: str) -> None:
    """NOT-3: with two or more arrays, each one's feature axis grown by one is rejected and the error
    names the parameter and the dimensions; a lone array of too few axes is rejected too."""
    case = canonical_case(op)
    if len(case.arrays) == 1:
        (name,) = case.arrays
        with pytest.raises(jaxtyping.TypeCheckError, match=name):
            _run(
                op,
                side,
                _with(
                    case,
                    **{
                        name: case.arrays[name][0, ...]
                        if case.arrays[name].ndim > 1
                        else np.asarray(case.arrays[name][0])
                    },
                ),
            )
        return
    tested = 0
    for name, a in case.arrays.items():
        # an axis whose size another array shares (growing it alone must break a binding): W_dec's
        # latent axis first, else the feature axis, else the batch (f beside x); an array that
        # shares none (z beside a per-instance threshold) can grow freely and is not tested
        candidates = (-2, -1) if name == "W_dec" else (-1, 0)
        others = [b.shape for k, b in case.arrays.items() if k != name]
        axis = next((ax for ax in candidates if any(a.shape[ax] in shape for shape in others)), None)
        if axis is None:
            continue
        tested += 1
        grown = np.concatenate([a, np.take(a, [0], axis=axis)], axis=axis)
        with pytest.raises(jaxtyping.TypeCheckError) as info:
            _run(op, side, _with(case, **{name: grown}))
        message = str(info.value)
        group, _, member = name.rpartition(".")  # `param.W_enc`: the mapping 'param', the array 'W_enc'
        assert f"'{member}'" in message and re.search(r"\b(d_in|d_sae|k|inst)=", message), message
        assert not group or f"'{group}'" in message, message
    assert tested, "no array of the canonical case binds an axis with another"


@pytest.mark.parametrize(("op", "side"), WITH_EPS, ids=_ids(WITH_EPS))
@pytest.mark.parametrize("eps", [0.0, -1e-8, float("nan"), float("inf")])
def test_eps_must_be_a_finite_positive_number(op: Operation, side: str, eps: float) -> None:
    """DEC-5."""
    case = canonical_case(op)
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        if "conventions" in case.options:
            Conventions(decoder="normalised", eps=eps)
        else:
            _run(op, side, dataclasses.replace(case, options={**case.options, "eps": eps}))


@pytest.mark.parametrize(("op", "side"), WITH_COEFFICIENT, ids=_ids(WITH_COEFFICIENT))
@pytest.mark.parametrize("lam", [-0.5, float("nan"), float("inf")])
def test_the_l1_coefficient_must_be_finite_and_non_negative(op: Operation, side: str, lam: float) -> None:
    """LOSS-7."""
    case = canonical_case(op)
    with pytest.raises(ValueError, match="l1_coefficient must be a finite number >= 0"):
        _run(op, side, dataclasses.replace(case, options={**case.options, "l1_coefficient": lam}))


@pytest.mark.parametrize("side", SIDES)
def test_fvu_of_a_batch_without_variance_raises(side: str) -> None:
    """LOSS-8, MET-3: a batch of one example, or of identical examples, has no variance to explain."""
    for op_name, options in (("reconstruction_loss", {"reconstruction": "fvu"}), ("explained_variance", {})):
        op = table.get(op_name)
        x = np.ones((3, 4))
        case = Case({"x": x, "x_hat": x * 0.5}, options)
        with pytest.raises(ValueError, match="total variance is zero"):
            _run(op, side, case)


@pytest.mark.parametrize("side", SIDES)
def test_negative_fire_counts_raise(side: str) -> None:
    """MET-2."""
    op = table.get("dead_fraction")
    with pytest.raises(ValueError, match="fire_counts must be >= 0"):
        _run(op, side, Case({"fire_counts": np.array([0, -1, 2])}))


@pytest.mark.parametrize("side", SIDES)
def test_an_unknown_convention_name_raises_listing_the_known_ones(side: str) -> None:
    """ENC-2, DEC-2, LOSS-1, LOSS-4, FOLD-4, NORM-1: conventions are a closed set of names. With checks
    on, beartype rejects the `Literal` first (TypeCheckError); the function's own check raises ValueError."""
    for op_name, key, known in (
        ("encode", "encode", "untied"),
        ("decode", "decoder", "normalised"),
        ("reconstruction_loss", "reconstruction", "fvu"),
        ("sparsity_loss", "sparsity", "l1_decoder_norm"),
        ("fold_input_scale", "fold_into", "biases"),
        ("activation_norm_factor", "norm_target", "mean_squared_norm_one"),
    ):
        op = table.get(op_name)
        case = canonical_case(op)
        with pytest.raises((ValueError, jaxtyping.TypeCheckError), match=known):
            _run(op, side, dataclasses.replace(case, options={**case.options, key: "bogus"}))


def test_the_oracle_rejects_float32_arrays_with_a_type_check_error() -> None:
    """NOT-3: the oracle is float64 only."""
    case = canonical_case(table.get("encode"))
    with pytest.raises(jaxtyping.TypeCheckError, match="Float64"):
        _run(table.get("encode"), "oracle", _with(case, x=case.arrays["x"].astype(np.float32)))


def test_torch_rejects_integer_tensors_with_a_type_check_error() -> None:
    """NOT-3: refsae.torch takes floating tensors."""
    with pytest.raises(jaxtyping.TypeCheckError, match="x"):
        rt.encode(torch.ones(3, 4, dtype=torch.int64), torch.ones(4, 5), torch.ones(5), torch.ones(4))


def test_torch_rejects_mixed_dtypes_in_one_call() -> None:
    """NOT-7."""
    with pytest.raises(TypeError, match="one dtype per call"):
        rt.encode(torch.ones(3, 4), torch.ones(4, 5, dtype=torch.float64), torch.ones(5), torch.ones(4))


def test_torch_rejects_sparse_tensors() -> None:
    """NOT-7: hypothesis-torch would happily draw sparse layouts; refsae.torch refuses them clearly."""
    with pytest.raises((TypeError, jaxtyping.TypeCheckError)):
        rt.renormalise_rows(torch.eye(3).to_sparse())


def test_no_typechecked_function_has_another_decorator_under_the_check() -> None:
    """NOT-3: `@typechecked` directly above another decorator (e.g. `@torch.no_grad()`) decorates a
    `functools.wraps` wrapper, and in a module with `from __future__ import annotations` beartype then
    checked nothing (measured on refsae.torch.inplace: wrong shapes reached the kernels). Such
    functions put the context manager inside their body instead."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "refsae"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines[:-1]):
            if line.strip() == "@typechecked" and lines[i + 1].lstrip().startswith("@"):
                offenders.append(f"{path.relative_to(root.parent)}:{i + 1}")
    assert not offenders, offenders
