"""Judging a library's loader against the oracle (CKPT-20..CKPT-24) and the command (CKPT-26, CKPT-27,
CKPT-29). The "libraries" here are the oracle itself and mutants of it, each with the verdict a
maintainer should get: the checker's power and its freedom from false alarms, on the real fixtures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from refsae.checkpoints import formats, function
from refsae.checkpoints.cli import main
from refsae.checkpoints.compare import Finding, inputs, judge
from refsae.checkpoints.library import LibraryModel
from refsae.checkpoints.library_check import fixtures
from refsae.checkpoints.model import Checkpoint

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "checkpoints"
READABLE = [p for p in fixtures(FIXTURES) if p.name not in ("abstopk", "groupmax")]


def _model(ckpt: Checkpoint, name: str = "mutant", dtype: str = "float64") -> LibraryModel:
    """The oracle's function of `ckpt`, called as a library's model is (decode after encode)."""
    seen: list[np.ndarray] = []

    def encode(x: np.ndarray) -> np.ndarray:
        seen[:] = [x]
        return function.encode(ckpt, x)

    def decode(f: np.ndarray) -> np.ndarray:
        return function.decode(ckpt, f, seen[0] if seen and ckpt.row_norm != "none" else None, skip=False)

    return LibraryModel(name, encode, decode, lambda x: function.forward(ckpt, x).x_hat, dtype)


def _verdicts(findings: list[Finding]) -> dict[str, tuple[str, str]]:
    return {f.operation: (f.verdict, f.reading) for f in findings}


@pytest.mark.parametrize("path", READABLE, ids=[p.relative_to(FIXTURES).as_posix() for p in READABLE])
def test_the_oracle_as_a_library_passes_on_every_fixture(path: Path) -> None:
    """CKPT-20, CKPT-21: no false alarm; errors within the derived bound."""
    ckpt = formats.read(path)
    findings = list(judge(ckpt, _model(ckpt), inputs(ckpt, 64, seed=3)))
    assert [f.verdict for f in findings] == ["pass"] * 3, findings


def _judge(
    name: str, mutate: Callable[[Checkpoint], Checkpoint], dtype: str = "float64"
) -> dict[str, tuple[str, str]]:
    ckpt = formats.read(FIXTURES / name)
    return _verdicts(list(judge(ckpt, _model(mutate(ckpt), dtype=dtype), inputs(ckpt, 64))))


def test_a_loader_that_drops_a_stored_threshold_is_a_bug_naming_the_reading() -> None:
    """CKPT-23, CKPT-24: the threshold is in the files (SAELens #608's symptom)."""
    got = _judge(
        "sae_lens/jumprelu",
        lambda c: c.but(architecture="relu", params={k: v for k, v in c.params.items() if k != "threshold"}),
    )
    assert got["encode"] == ("bug", "architecture=relu") and got["forward"] == ("bug", "architecture=relu")


def test_a_loader_that_ignores_apply_b_dec_to_input_is_a_bug() -> None:
    """CKPT-23: the key states it; the reading names it."""
    got = _judge("sae_lens/standard_no_b_dec_in", lambda c: c.but(encode="tied"))
    assert got["encode"] == ("bug", "encode=tied")


def test_a_loader_that_drops_the_skip_term_is_a_bug() -> None:
    """CKPT-24 (SAELens #516 and sparsify #49 were about the same term's neighbour, b_dec)."""
    got = _judge(
        "sparsify/skip_transcoder",
        lambda c: c.but(kind="transcoder", params={k: v for k, v in c.params.items() if k != "W_skip"}),
    )
    assert got["forward"] == ("bug", "no skip") and got["encode"][0] == "pass"


def test_a_loader_that_folds_the_decoder_norms_is_a_named_convention() -> None:
    """CKPT-24: x̂ unchanged, latents × ‖W_dec_j‖."""

    def fold(c: Checkpoint) -> Checkpoint:
        n = np.linalg.norm(c.params["W_dec"], axis=-1)
        p = {
            **c.params,
            "W_enc": c.params["W_enc"] * n,
            "b_enc": c.params["b_enc"] * n,
            "W_dec": c.params["W_dec"] / n[:, None],
        }
        return c.but(params={**p, "threshold": c.params["threshold"] * n})

    got = _judge("dictionary_learning/jumprelu", fold)
    assert got["encode"] == ("convention", "decoder norms folded") and got["forward"][0] == "pass"


def test_a_loader_computing_in_float32_is_precision() -> None:
    """CKPT-23: float64 claimed, float32 computed."""
    ckpt = formats.read(FIXTURES / "sae_lens/standard")
    rounded = ckpt.but(
        params={
            k: torch.from_numpy(v).float().double().numpy() * (1 + 2.0**-23) for k, v in ckpt.params.items()
        }
    )
    got = _verdicts(list(judge(ckpt, _model(rounded), inputs(ckpt, 64))))
    assert got["forward"][0] == "precision"


def test_a_loader_that_raises_is_an_error_and_one_matching_no_reading_a_bug() -> None:
    """CKPT-23."""
    ckpt = formats.read(FIXTURES / "saev/relu")

    def boom(x: np.ndarray) -> np.ndarray:
        raise ValueError("no")

    broken = LibraryModel("broken", boom, boom, boom)
    assert {f.verdict for f in judge(ckpt, broken, inputs(ckpt, 8))} == {"error"}
    noise = LibraryModel(
        "noise", lambda x: np.ones((x.shape[0], 32)), lambda f: np.ones((f.shape[0], 8)), lambda x: x * 0
    )
    assert [(f.verdict, f.reading) for f in judge(ckpt, noise, inputs(ckpt, 8))] == [("bug", "")] * 3


def test_a_latent_at_its_threshold_may_fall_on_either_side() -> None:
    """CKPT-22: an input put exactly on a threshold; a library choosing `>=` passes, the tie counted."""
    ckpt = formats.read(FIXTURES / "sae_lens/jumprelu_transcoder")
    x = inputs(ckpt, 4)
    z = function.pre_activations(ckpt, x)
    theta = ckpt.params["threshold"].copy()
    j = int(np.argmax(z[0]))
    assert z[0, j] > 0
    theta[j] = z[0, j]  # latent j of row 0 sits exactly on its (positive) threshold
    at = ckpt.but(params={**ckpt.params, "threshold": theta})
    geq = LibraryModel(
        "geq",
        lambda x: np.where(function.pre_activations(at, x) >= theta, function.pre_activations(at, x), 0.0),
        lambda f: function.decode(at, f),
        lambda x: function.decode(
            at, np.where(function.pre_activations(at, x) >= theta, function.pre_activations(at, x), 0.0), x
        ),
    )
    findings = list(judge(at, geq, x))
    assert [f.verdict for f in findings] == ["pass"] * 3 and findings[0].ties >= 1


def test_the_command_reports_items_findings_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CKPT-26, CKPT-29: exit 0 with no library installed here; the JSON holds the items."""
    out = tmp_path / "r.json"
    assert main([str(FIXTURES / "sae_lens/topk"), "--inputs", "8", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "architecture  topk" in text and "oracle forward on 8 rows" in text
    data = json.loads(out.read_text())
    assert {row["item"]: row["source"] for row in data["items"]}["k"] == "cfg.json:k"
    assert main([str(tmp_path / "nothing-here")]) == 2


def test_convert_proves_the_written_files_compute_the_source_function(tmp_path: Path) -> None:
    """CKPT-27, CKPT-29: sparsify → SAELens (the route SAELens's own converter cannot take)."""
    assert main(["convert", str(FIXTURES / "sparsify/topk"), str(tmp_path / "out"), "--to", "sae_lens"]) == 0
    back = formats.read(tmp_path / "out")
    src = formats.read(FIXTURES / "sparsify/topk")
    x = inputs(src, 32)
    np.testing.assert_array_equal(function.forward(back, x).x_hat, function.forward(src, x).x_hat)
    assert (
        main(["convert", str(FIXTURES / "sparsify/transcoder"), str(tmp_path / "no"), "--to", "sae_lens"])
        == 2
    )
    assert not (tmp_path / "no").exists()


def _function(ckpt: Checkpoint, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = function.forward(ckpt, x)
    return out.f, out.x_hat


@pytest.mark.parametrize("path", READABLE, ids=[p.relative_to(FIXTURES).as_posix() for p in READABLE])
def test_every_misreading_of_every_fixture_is_flagged_and_named(path: Path) -> None:
    """CKPT-23, CKPT-24: the checker's power. A loader computing any reading of the files is flagged
    (unless that reading is the same function, or the same up to float32's rounding: `precision`), and
    the finding names the first reading in CKPT-24's order that computes what the loader computes."""
    from refsae.checkpoints.readings import readings

    ckpt = formats.read(path)
    x = inputs(ckpt, 64)
    same = _function(ckpt, x)
    options = list(readings(ckpt))
    for r in options:
        findings = list(judge(ckpt, _model(r.checkpoint), x))
        mine = _function(r.checkpoint, x)
        if all(np.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(mine, same, strict=True)):
            assert {f.verdict for f in findings} == {"pass"}, (r.name, findings)
            continue
        if all(np.allclose(a, b, rtol=1e-6, atol=1e-6) for a, b in zip(mine, same, strict=True)):
            # e.g. a normalised decoder on rows stored unit-norm in float32: float32's rounding apart
            assert {f.verdict for f in findings} <= {"pass", "precision"}, (r.name, findings)
            continue
        flagged = [f for f in findings if f.verdict != "pass"]
        assert flagged, f"{r.name} not flagged"
        first = next(
            o.name
            for o in options
            if all(
                np.allclose(a, b, rtol=1e-9, atol=1e-12)
                for a, b in zip(_function(o.checkpoint, x), mine, strict=True)
            )
        )
        assert any(f.reading == first for f in flagged), (r.name, first, flagged)
        expected = r.verdict or (
            "bug" if "default" not in str(ckpt.sources.get(r.item, "default")) else "convention"
        )
        if first == r.name:
            assert all(f.verdict in (expected, "precision") for f in flagged if f.reading == r.name), (
                r.name,
                flagged,
            )
