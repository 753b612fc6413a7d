"""The conformance engine: protocol, detection, claims, verdicts (specs/conformance-suite.md,
CONF-1..CONF-4, CONF-6, CONF-10). The libraries here are refsae.torch behind fixed conventions
(`refsae_adapter.fixed`), small adapters written for the test, and the mutants."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from torch import Tensor

from refsae import torch as rt
from refsae.cases import Case
from refsae.checking import table
from refsae.conform import Adapter, Report, conform, load
from refsae.conform.mutants import MUTANTS
from refsae.conform.refsae_adapter import FixedRefsae, fixed
from refsae.conform.verdicts import VERDICTS
from refsae.conventions import AXES, CORE_AXES, OPERATION_AXES, Conventions

FAST: dict[str, Any] = {"max_examples": 4, "shrink": False}

DETECTION_ROWS = [
    "encode",
    "decoder_directions",
    "reconstruction_loss",
    "sparsity_loss",
    "total_loss",
    "jumprelu_loss_gradients",
    "batchtopk_update_threshold",
    "gated_loss_gradients",
    "auxk_latents",
    "auxk_loss",
    "auxk_loss_gradients",
    "fold_input_scale",
    "activation_norm_factor",
    "matryoshka_reconstruction_loss",
]


def _nth(i: int) -> tuple[Conventions, dict[str, str]]:
    """The i-th name of every axis (wrapping): three values of i name every convention at least once."""
    core = {a: names[i % len(names)] for a, names in CORE_AXES.items()}
    others = {a: names[i % len(names)] for a, names in OPERATION_AXES.items()}
    bundle: dict[str, Any] = dict(core)
    return Conventions(**bundle), others


@pytest.mark.parametrize("i", [0, 1, 2])
def test_detection_finds_the_fixed_convention_on_every_axis(i: int) -> None:
    """CONF-3: a library with fixed conventions (which it never receives) is detected on every axis,
    core and operation-level, and passes every row under them; each name occurs in one of the runs."""
    c, others = _nth(i)
    report = conform(fixed(c, "lib", others), operations=DETECTION_ROWS, **FAST)
    expected = {**{a: getattr(c, a) for a in CORE_AXES}, **others}
    assert report.conventions == {a: expected[a] for a in AXES}
    assert report.summary["bug"] == report.summary["error"] == 0, [
        (r.clause, r.message) for r in report.clauses if r.status != "pass"
    ]


def test_an_axis_no_row_can_show_stays_open_with_its_candidates_and_the_row_passes() -> None:
    """CONF-3: `residual=` does not change the AuxK loss's value; with only that row, the report says
    which names the examples could not tell apart, and the row passes under either."""

    class LossOnly(FixedRefsae):
        def supports(self, operation: str) -> bool:
            return operation == "auxk_loss"

    report = conform(LossOnly(), operations=["auxk_loss"], **FAST)
    assert report.conventions["residual"] == "detached|attached"
    assert report.summary["bug"] == 0
    assert "residual=detached|attached" in report.clauses[0].convention


def test_a_row_that_matches_no_named_convention_fails_as_none_with_a_counterexample() -> None:
    """CONF-3: the encoder that forgets b_enc is neither tied nor untied."""
    report = conform(MUTANTS["encode_ignores_b_enc"].adapter(), operations=["encode"], **FAST)
    assert report.conventions == {"encode": "none"}
    assert {c.status for c in report.clauses} == {"bug"}
    assert "matches no named convention or equivalence on encode" in report.clauses[0].message
    assert report.clauses[0].reproduction


def test_a_claim_that_detection_contradicts_fails_and_names_both() -> None:
    """CONF-4: checked under the claim, so the counterexample shows it false."""

    class Claims(FixedRefsae):
        conventions: ClassVar[Conventions] = Conventions(reconstruction="mean")
        claims: ClassVar[Mapping[str, str]] = {"reconstruction": "sum"}

    report = conform(Claims(), operations=["reconstruction_loss"], **FAST)
    assert {c.status for c in report.clauses} == {"bug"}
    assert "a bug of the code or of its documentation" in report.findings[0].detail
    message = report.clauses[0].message
    assert "claims reconstruction=sum but behaves as reconstruction=mean" in message
    assert "options = {'reconstruction': 'sum'}" in report.clauses[0].reproduction


def test_a_claim_that_detection_confirms_passes() -> None:
    """CONF-4."""

    class Claims(FixedRefsae):
        conventions: ClassVar[Conventions] = Conventions(encode="untied")
        claims: ClassVar[Mapping[str, str]] = {"encode": "untied"}

    report = conform(Claims(), operations=["encode"], **FAST)
    assert report.summary["bug"] == 0 and report.claims == {"encode": "untied"}


def test_the_clause_of_a_convention_not_followed_is_unsupported_not_fail() -> None:
    """CONF-4: ENC-2 defines `tied`; an untied library passes ENC-3 and is unsupported on ENC-2."""
    report = conform(fixed(Conventions(encode="untied")), operations=["encode"], **FAST)
    status = {c.clause: c.status for c in report.clauses}
    assert status == {"ENC-1": "pass", "ENC-2": "unsupported", "ENC-3": "pass", "TOL-1": "pass"}
    assert "follows encode=untied" in next(c.message for c in report.clauses if c.clause == "ENC-2")


class EncodeOnly(Adapter):
    """A minimal library: an untied ReLU encoder, nothing else."""

    name: ClassVar[str] = "encode-only"
    calls: ClassVar[list[dict[str, Any]]] = []

    def encode(self, x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> Tensor:
        return torch.relu(x @ W_enc + b_enc)


def test_rows_an_adapter_does_not_define_are_unsupported_never_fail() -> None:
    """CONF-2."""
    report = conform(EncodeOnly(), operations=["encode", "decode", "adam_step", "auxk_loss"], **FAST)
    by_op = {c.operation: c.status for c in report.clauses if c.clause != "ENC-2"}
    assert by_op == {
        "encode": "pass",
        "decode": "unsupported",
        "adam_step": "unsupported",
        "auxk_loss": "unsupported",
    }
    assert EncodeOnly().operations() == ("encode",)
    assert report.summary["bug"] == report.summary["error"] == 0


class TakesEncode(Adapter):
    """An encoder whose method names `encode=`: it is given the option and checked under both names."""

    name: ClassVar[str] = "takes-encode"
    seen: ClassVar[set[str]] = set()

    def encode(self, x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, *, encode: str) -> Tensor:
        TakesEncode.seen.add(encode)
        return rt.encode(x, W_enc, b_enc, b_dec, encode=encode)  # type: ignore[arg-type]


def test_an_axis_the_method_names_is_given_and_checked_under_every_name() -> None:
    """CONF-3: `any` in the report, both names received, no detection."""
    TakesEncode.seen.clear()
    report = conform(TakesEncode(), operations=["encode"], max_examples=20, shrink=False)
    assert TakesEncode.seen == {"tied", "untied"}
    assert {c.convention for c in report.clauses} == {"encode=any"}
    assert report.summary["pass"] == 4


class Raises(Adapter):
    name: ClassVar[str] = "raises"

    def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        raise RuntimeError("library exploded")


def test_an_exception_in_the_library_is_an_error_carrying_the_exception() -> None:
    """CONF-6."""
    report = conform(Raises(), operations=["decode"], **FAST)
    assert {c.status for c in report.clauses} == {"error"}
    assert "RuntimeError: library exploded" in report.clauses[0].message
    assert not report.ok


def test_the_json_report_has_the_documented_keys_and_round_trips() -> None:
    """CONF-6."""
    report = conform(fixed(Conventions(encode="untied")), operations=["encode", "l0"], **FAST)
    data = json.loads(report.to_json())
    assert {"target", "library", "library_version", "refsae_version", "profile", "clauses", "summary"} <= set(
        data
    )
    for c in data["clauses"]:
        assert {"clause", "operation", "status", "examples", "convention", "message", "reproduction"} <= set(
            c
        )
        assert c["status"] in VERDICTS
    assert data["summary"] == {s: sum(c["status"] == s for c in data["clauses"]) for s in data["summary"]}
    assert Report.from_dict(data).as_dict() == data
    markdown = report.to_markdown()
    assert "| ENC-3 | encode | pass | encode=untied |" in markdown


def test_the_reproduction_snippet_reproduces_the_failure_when_run() -> None:
    """CONF-6: the snippet of a failing row, executed, gives the adapter's and the oracle's outputs,
    which differ by more than the row's allowed error (the same comparison the check made)."""
    report = conform(MUTANTS["decode_without_b_dec"].adapter(), operations=["decode"], max_examples=10)
    failing = next(c for c in report.clauses if c.status == "bug")
    namespace: dict[str, Any] = {}
    exec(
        compile(failing.reproduction.replace("print(", "(lambda *a: None)("), "<snippet>", "exec"), namespace
    )
    case = Case(namespace["arrays"], namespace["options"], next(iter(failing.dtypes)))
    actual, expected = namespace["actual"], namespace["expected"]
    from refsae.checking.check import Mismatch, compare

    with pytest.raises(Mismatch, match="decode"):
        compare(table.get("decode"), case, expected, actual)
    compare(table.get("decode"), case, expected, expected)  # the oracle's own outputs pass


def test_a_rows_verdict_marks_the_clauses_its_failing_checks_contradict_and_no_other() -> None:
    """CONF-10: the mutant breaks PAR-2's division by ‖w‖², which PAR-1 states too; PAR-3 (a zero row
    keeps its gradient), checked on its own cases and elements, holds."""
    report = conform(
        MUTANTS["remove_parallel_assumes_unit_rows"].adapter(),
        operations=["remove_parallel_component"],
        **FAST,
    )
    assert [(c.clause, c.status) for c in report.clauses] == [
        ("PAR-1", "bug"),
        ("PAR-2", "bug"),
        ("PAR-3", "pass"),
    ]
    assert report.findings[0].clauses == ["PAR-1", "PAR-2"] and report.findings[0].severity == "generic"


def test_the_adapter_receives_canonical_arrays_positionally_in_the_rows_order() -> None:
    """CONF-1: arrays in `Operation.arrays` order as tensors of the case's dtype, options by keyword,
    outputs named by `Operation.outputs` (a tuple in order)."""
    received: list[Any] = []

    class Forward(Adapter):
        name: ClassVar[str] = "forward"

        def forward(self, *arrays: Tensor) -> tuple[Tensor, Tensor]:
            received.append(arrays)
            x, W_enc, b_enc, W_dec, b_dec = arrays
            f = torch.relu((x - b_dec) @ W_enc + b_enc)
            return f, f @ W_dec + b_dec

    op = table.get("forward")
    rng = np.random.default_rng(0)
    arrays = {
        "x": rng.normal(size=(3, 2)),
        "W_enc": rng.normal(size=(2, 4)),
        "b_enc": rng.normal(size=4),
        "W_dec": rng.normal(size=(4, 2)),
        "b_dec": rng.normal(size=2),
    }
    out = Forward().run("forward", Case(arrays, {"encode": "tied", "decoder": "constrained"}, "float32"))
    assert [tuple(t.shape) for t in received[0]] == [a.shape for a in arrays.values()]
    assert all(t.dtype == torch.float32 for t in received[0])
    assert set(out) == set(op.outputs) and out["x_hat"].dtype == np.float64


def test_builtin_targets_load_without_importing_their_library() -> None:
    """CONF-7: each library's adapter imports the library only when a method runs."""
    import sys

    from refsae.conform.targets import BUILTIN

    libraries = ("sae_lens", "sparse_autoencoder", "dictionary_learning", "sparsify", "saev", "overcomplete")
    for target in BUILTIN:
        adapter = load(target)
        assert isinstance(adapter, Adapter) and adapter.operations(), target
    assert not [name for name in libraries if name in sys.modules]


def test_no_convention_is_named_as_the_reports_markers() -> None:
    """CONF-3: `none`, `any` and `a|b` are the report's words for unmatched, taken and open axes."""
    for axis, names in AXES.items():
        assert not {"none", "any"} & set(names), axis
        assert not any("|" in n for n in names), axis


def test_a_failure_confined_to_an_edge_case_fails_only_that_clause() -> None:
    """CONF-10: NaN for a zero row breaks CON-2 alone; CON-1 is judged on the cases without one."""
    report = conform(
        MUTANTS["renormalise_zero_rows_to_nan"].adapter(), operations=["renormalise_rows"], **FAST
    )
    status = {c.clause: c.status for c in report.clauses}
    assert status == {"CON-1": "pass", "CON-2": "bug"}
    assert report.findings[0].severity == "degenerate"
    con1 = next(c for c in report.clauses if c.clause == "CON-1")
    assert "holds; the row's bug is about CON-2" in con1.message


def test_a_library_without_b_dec_is_checked_with_b_dec_zero_and_the_report_says_so() -> None:
    """CONF-11: no decoder bias: decode passes on b_dec = 0, its gradient is not compared, encode
    cannot be told apart, and the report names the absent parameter."""
    seen: list[float] = []

    class NoBias(Adapter):
        name: ClassVar[str] = "no-b_dec"
        absent: ClassVar[tuple[str, ...]] = ("b_dec",)

        def encode(self, x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> Tensor:
            seen.append(float(b_dec.abs().max()))
            return torch.relu(x @ W_enc + b_enc)

        def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
            return f @ W_dec

        def loss_gradients(self, *arrays: Tensor, l1_coefficient: float) -> dict[str, Tensor]:
            x, W_enc, b_enc, W_dec, _ = (a.detach().requires_grad_(True) for a in arrays)
            f = torch.relu(x @ W_enc + b_enc)
            loss = ((f @ W_dec - x) ** 2).sum(-1).mean() + l1_coefficient * f.abs().sum(-1).mean()
            grads = torch.autograd.grad(loss, [W_enc, b_enc, W_dec])
            return dict(zip(("W_enc", "b_enc", "W_dec"), grads, strict=True))  # no b_dec gradient to give

    report = conform(NoBias(), operations=["encode", "decode", "loss_gradients"], **FAST)
    assert report.summary["bug"] == report.summary["error"] == 0
    assert report.conventions["encode"] == "tied|untied" and max(seen) == 0.0
    assert report.absent == ["b_dec"] and "has no `b_dec`" in report.to_markdown()


def test_every_builtin_target_is_run_by_its_librarys_nox_session() -> None:
    """CONF-7: noxfile.LIBRARIES and targets.BUILTIN name the same targets; every peer library has its
    requirements and constraints (torch pinned to the CPU build) in conformance/LIBRARY/."""
    import importlib.util
    from pathlib import Path

    from refsae.conform.targets import BUILTIN

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("noxfile_under_test", root / "noxfile.py")
    assert spec is not None and spec.loader is not None
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)
    assert {t for targets in noxfile.LIBRARIES.values() for t in targets} == set(BUILTIN)
    for library in noxfile.LIBRARIES:
        if library == "refsae":
            continue
        folder = root / "conformance" / library
        assert (folder / "requirements.txt").is_file(), library
        assert "torch==2.13.0" in (folder / "constraints.txt").read_text(), library


@pytest.mark.parametrize("name", [op.name for op in table.TABLE if op.edge_clauses])
def test_every_edge_predicate_answers_on_its_rows_own_cases_and_tells_them_apart(name: str) -> None:
    """CONF-10: an edge clause's predicate is asked of every counterexample of its row, so it must
    answer (a bool, no KeyError on any drawn option: RES-13's centred case once read `b_dec` where the
    case holds `param.b_dec`) and be true on some drawn cases and false on others."""
    from hypothesis import given, settings

    op = table.get(name)
    answers: dict[str, set[bool]] = {clause: set() for clause, _ in op.edge_clauses}

    @settings(max_examples=100)  # the loaded profile's otherwise (derandomized under ci)
    @given(op.cases("float64"))
    def ask(case: Case) -> None:
        for clause, predicate in op.edge_clauses:
            answer = predicate(case)
            assert isinstance(answer, bool), (clause, answer)
            answers[clause].add(answer)

    ask()
    assert all(seen == {True, False} for seen in answers.values()), answers
