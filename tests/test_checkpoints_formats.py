"""Each format read into the function its files define (CKPT-1..CKPT-19), checked against invariants
of that function and against the files read independently (safetensors / torch directly)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from refsae import oracle
from refsae.checking.tolerances import allowed_error
from refsae.checkpoints import bounds, formats, function
from refsae.checkpoints.compare import inputs
from refsae.checkpoints.errors import CheckpointError
from refsae.checkpoints.formats import refsae_format, sae_lens
from refsae.checkpoints.model import Checkpoint
from refsae.checkpoints.options import Options
from refsae.checkpoints.validate import checked
from refsae.checkpoints.writing import atomic_directory

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "checkpoints"


def _read(name: str, options: Options | None = None) -> Checkpoint:
    return formats.read(FIXTURES / name, options)


def _copy(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name.replace("/", "_")))


def _same_function(a: Checkpoint, b: Checkpoint, x: np.ndarray) -> None:
    fa, fb = function.forward(a, x), function.forward(b, x)
    # the same values, summed in another order (a transposed layout): TOL-1 at float64, CKPT-21's bounds
    assert (np.abs(fb.f - fa.f) <= allowed_error(bounds.pre_activations(a, x), "float64")).all()
    assert (np.abs(fb.x_hat - fa.x_hat) <= allowed_error(bounds.forward(a, x), "float64")).all()


def test_a_checkpoint_written_in_refsaes_format_reads_back_as_the_same_function(tmp_path: Path) -> None:
    """CKPT-1, CKPT-18: the same function, whatever the files; every item kept."""
    for name in [
        "sae_lens/gated",
        "sae_lens/jumprelu_skip_transcoder",
        "dictionary_learning/batchtopk",
        "saev/relu",
    ]:
        ckpt = _read(name)
        with atomic_directory(tmp_path / name) as d:
            refsae_format.write(ckpt, d)
            back = formats.read(d)
        for item in ("architecture", "kind", "k", "encode", "decoder", "input_scale", "row_norm"):
            assert getattr(back, item) == getattr(ckpt, item), item
        assert all(np.array_equal(back.params[k], v) for k, v in ckpt.params.items())
        _same_function(ckpt, back, inputs(ckpt, 32))


def test_each_architecture_needs_its_parameters_and_no_other() -> None:
    """CKPT-2: a missing parameter, or one no architecture has, is named."""
    ckpt = _read("sae_lens/gated")
    with pytest.raises(CheckpointError, match="missing: a gated sae needs this parameter"):
        checked(ckpt.but(params={k: v for k, v in ckpt.params.items() if k != "r_mag"}))
    with pytest.raises(CheckpointError, match="not a parameter of any architecture"):
        checked(ckpt.but(params={**ckpt.params, "W_dec_norm": np.ones(32)}))


def test_a_skip_transcoders_output_is_its_decoder_plus_the_skip_term_on_the_raw_input() -> None:
    """CKPT-3, CKPT-14: x̂ − (f Ŵ_dec + b_dec) = x W_skipᵀ, for SAELens's and sparsify's layouts."""
    for name in ["sae_lens/skip_transcoder", "sparsify/skip_transcoder", "sparsify/skip"]:
        ckpt = _read(name)
        x = inputs(ckpt, 16)
        out = function.forward(ckpt, x)
        np.testing.assert_allclose(
            out.x_hat - function.decode(ckpt, out.f), x @ ckpt.params["W_skip"].T, atol=1e-12
        )


def test_a_transcoder_never_subtracts_b_dec_and_a_tied_sae_does() -> None:
    """CKPT-3: changing b_dec moves a tied SAE's latents and leaves an untied encoder's alone."""
    for name, tied in [
        ("sae_lens/transcoder", False),
        ("sae_lens/standard", True),
        ("sae_lens/standard_no_b_dec_in", False),
    ]:
        ckpt = _read(name)
        x = inputs(ckpt, 16)
        moved = ckpt.but(params={**ckpt.params, "b_dec": ckpt.params["b_dec"] + 1.0})
        assert np.array_equal(function.encode(moved, x), function.encode(ckpt, x)) == (not tied), name


def test_every_item_says_where_it_came_from() -> None:
    """CKPT-4: file and key, how (transposed, translated), or that no key exists."""
    gated = _read("dictionary_learning/gated")
    rows = {item: source for item, _, source in gated.describe()}
    assert rows["W_enc"] == "ae.pt:encoder.weight (transposed: nn.Linear layout)"
    assert rows["b_gate"] == "ae.pt:gate_bias"
    assert rows["encode"].startswith("config.json:trainer.dict_class")
    assert rows["decoder"].startswith("(no such key")
    assert rows["format"] == "config.json + ae.pt (detected from the files present)"


def test_a_file_of_a_checkpoint_means_its_directory_and_format_overrides_detection() -> None:
    """CKPT-6, CKPT-16."""
    assert _read("sae_lens/topk/cfg.json").format == "sae_lens"
    assert formats.read(FIXTURES / "saev/relu/sae.pt").format == "saev"
    with pytest.raises(
        CheckpointError, match=r"one per hookpoint; read one of: layers.0 \(sparsify\), layers.1"
    ):
        _read("sparsify/multi")
    with pytest.raises(CheckpointError, match="unknown format 'hdf5'"):
        formats.read(FIXTURES / "saev/relu", format="hdf5")


@pytest.mark.parametrize(
    ("name", "architecture", "kind", "encode"),
    [
        ("standard", "relu", "sae", "tied"),
        ("standard_no_b_dec_in", "relu", "sae", "untied"),
        ("topk", "topk", "sae", "tied"),
        ("jumprelu", "jumprelu", "sae", "tied"),
        ("gated", "gated", "sae", "tied"),
        ("transcoder", "relu", "transcoder", "untied"),
        ("skip_transcoder", "relu", "skip_transcoder", "untied"),
        ("jumprelu_transcoder", "jumprelu", "transcoder", "untied"),
        ("jumprelu_skip_transcoder", "jumprelu", "skip_transcoder", "untied"),
    ],
)
def test_saelens_architectures_map_to_refsaes(name: str, architecture: str, kind: str, encode: str) -> None:
    """CKPT-7: the config's architecture and apply_b_dec_to_input; the weights as stored."""
    ckpt = _read(f"sae_lens/{name}")
    assert (ckpt.architecture, ckpt.kind, ckpt.encode) == (architecture, kind, encode)
    stored = load_file(str(FIXTURES / "sae_lens" / name / "sae_weights.safetensors"))
    assert set(stored) == set(ckpt.params)
    assert all(np.array_equal(ckpt.params[k], v.astype(np.float64)) for k, v in stored.items())


def test_a_batchtopk_saved_by_saelens_is_a_jumprelu_with_one_threshold() -> None:
    """CKPT-8, BTOPK-6: equal thresholds, and the same function as BatchTopK inference at that θ."""
    ckpt = _read("sae_lens/batchtopk")
    theta = ckpt.params["threshold"]
    assert ckpt.architecture == "jumprelu" and np.all(theta == theta[0])
    assert any("trained as 'batchtopk'" in n for n in ckpt.notes)
    as_batchtopk = ckpt.but(
        architecture="batchtopk", k=4, params={**ckpt.params, "threshold": np.array(theta[0])}
    )
    _same_function(ckpt, as_batchtopk, inputs(ckpt, 64))


def test_saelens_rescaled_topk_selects_on_z_times_the_decoder_norms() -> None:
    """CKPT-9: against SAELens's formula on the raw stored tensors."""
    ckpt = _read("sae_lens/topk_rescale")
    raw = {
        k: v.astype(np.float64)
        for k, v in load_file(str(FIXTURES / "sae_lens/topk_rescale/sae_weights.safetensors")).items()
    }
    x = inputs(ckpt, 32)
    n = np.linalg.norm(raw["W_dec"], axis=-1)
    z = ((x - raw["b_dec"]) @ raw["W_enc"] + raw["b_enc"]) * n
    f = oracle.topk(z, k=4)
    np.testing.assert_allclose(function.encode(ckpt, x), f, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        function.forward(ckpt, x).x_hat, (f / n) @ raw["W_dec"] + raw["b_dec"], atol=1e-12
    )


def test_the_row_normalisations_make_the_output_equivariant() -> None:
    """CKPT-10: constant_norm_rescale commutes with positive scaling, layer_norm with constant shifts."""
    scaled = _read("sae_lens/standard_constant_norm_rescale")
    x = inputs(scaled, 16)
    np.testing.assert_allclose(
        function.forward(scaled, 3.0 * x).x_hat, 3.0 * function.forward(scaled, x).x_hat, rtol=1e-10
    )
    shifted = _read("sae_lens/standard_layer_norm")
    np.testing.assert_allclose(
        function.forward(shifted, x + 2.5).x_hat, function.forward(shifted, x).x_hat + 2.5, atol=1e-10
    )
    assert any(
        "expected_average_only_in" in n for n in _read("sae_lens/standard_expected_average_only_in").notes
    )


def test_covariance_whitening_is_refused_by_name(tmp_path: Path) -> None:
    """CKPT-10."""
    path = _copy("sae_lens/standard", tmp_path)
    cfg = json.loads((path / "cfg.json").read_text())
    (path / "cfg.json").write_text(json.dumps({**cfg, "normalize_activations": "covariance_whitening"}))
    with pytest.raises(CheckpointError, match="'covariance_whitening'") as info:
        formats.read(path)
    assert info.value.key == "normalize_activations"


def test_a_pre6_topk_config_without_k_kwargs_stays_a_relu_sae_as_in_saelens(tmp_path: Path) -> None:
    """CKPT-11: translated as handle_pre_6_0_config does; the SAELens #308 symptom, named."""
    assert (_read("sae_lens/pre6_topk").architecture, _read("sae_lens/pre6_topk").k) == ("topk", 4)
    path = _copy("sae_lens/pre6_topk", tmp_path)
    cfg = json.loads((path / "cfg.json").read_text())
    cfg.pop("activation_fn_kwargs")
    (path / "cfg.json").write_text(json.dumps(cfg))
    ckpt = formats.read(path)
    assert ckpt.architecture == "relu"
    assert str(ckpt.sources["architecture"]) == "cfg.json:architecture (translated from a pre-6 key)"


@pytest.mark.parametrize("name", ["standard", "topk", "batchtopk", "jumprelu", "gated", "matryoshka"])
def test_dictionary_learnings_keys_map_to_the_canonical_parameters(name: str) -> None:
    """CKPT-12: against the state dict loaded by torch directly (nn.Linear weights transposed)."""
    ckpt = _read(f"dictionary_learning/{name}")
    state = torch.load(FIXTURES / "dictionary_learning" / name / "ae.pt", weights_only=True)
    for param, source in ckpt.sources.items():
        if param in ckpt.params:
            stored = state[source.key].double().numpy()
            assert np.array_equal(ckpt.params[param], stored.T if "transposed" in source.how else stored), (
                param
            )


def test_a_norm_factor_folded_into_biases_and_thresholds_rescales_the_function() -> None:
    """CKPT-13: the saved files compute s·F(x/s) where F has the biases and thresholds divided by s."""
    s = json.loads((FIXTURES / "dictionary_learning/norm_factors.json").read_text())["jumprelu_normalized"]
    ckpt = _read("dictionary_learning/jumprelu_normalized")
    p = ckpt.params
    trained = ckpt.but(
        params={**p, "b_enc": p["b_enc"] / s, "b_dec": p["b_dec"] / s, "threshold": p["threshold"] / s}
    )
    x = inputs(ckpt, 32)
    np.testing.assert_allclose(
        function.forward(ckpt, x).x_hat, s * function.forward(trained, x / s).x_hat, rtol=1e-10
    )


def test_saevs_header_and_state_dict_are_read_and_a_broken_header_is_named(tmp_path: Path) -> None:
    """CKPT-15, CKPT-30."""
    ckpt = _read("saev/relu")
    assert (ckpt.architecture, ckpt.encode, ckpt.d_in, ckpt.d_sae) == ("relu", "tied", 8, 32)
    path = _copy("saev/relu", tmp_path)
    data = (path / "sae.pt").read_bytes()
    (path / "sae.pt").write_bytes(b"{not json" + data[data.index(b"\n") :])
    with pytest.raises(CheckpointError, match="the first line is not JSON") as info:
        formats.read(path)
    assert info.value.key == "header"


def test_a_bare_npz_takes_stated_conventions_and_marks_unstated_ones_as_defaults(tmp_path: Path) -> None:
    """CKPT-17."""
    ckpt = _read("sae_lens/jumprelu")
    np.savez(tmp_path / "params.npz", **{k: v.astype(np.float32) for k, v in ckpt.params.items()})  # type: ignore[arg-type]
    default = formats.read(tmp_path)
    assert (default.architecture, default.encode) == ("jumprelu", "untied")
    assert "documented default" in default.sources["encode"].how
    stated = formats.read(tmp_path, Options(encode="tied"))
    assert str(stated.sources["encode"]) == "command line:--encode (stated)"
    _same_function(ckpt, stated, inputs(ckpt, 32))


def test_the_saelens_writer_writes_what_saelens_computes_and_refuses_the_rest(tmp_path: Path) -> None:
    """CKPT-19, CKPT-25: BatchTopK as a one-threshold JumpReLU; refusals leave nothing behind."""
    ckpt = _read("dictionary_learning/batchtopk")
    with atomic_directory(tmp_path / "out") as d:
        sae_lens.write(ckpt, d)
        back = formats.read(d)
    assert (
        back.architecture == "jumprelu"
        and json.loads((tmp_path / "out/cfg.json").read_text())["apply_b_dec_to_input"]
    )
    _same_function(ckpt, back, inputs(ckpt, 64))
    for name, key in [("sparsify/transcoder", "architecture")]:
        with pytest.raises(CheckpointError) as info, atomic_directory(tmp_path / "refused") as d:
            sae_lens.write(_read(name), d)
        assert info.value.key == key
    normalised = _read("saev/relu").but(decoder="normalised")
    with (
        pytest.raises(CheckpointError, match="normalised decoder") as info,
        atomic_directory(tmp_path / "refused") as d,
    ):
        sae_lens.write(normalised, d)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_fold_computed_in_float64_is_written_in_float64_never_rounded(tmp_path: Path) -> None:
    """CKPT-25, CKPT-9."""
    ckpt = _read("sae_lens/topk_rescale")
    with atomic_directory(tmp_path / "out") as d:
        sae_lens.write(ckpt, d)
    back = formats.read(tmp_path / "out")
    assert back.stored_dtype == "float64"
    assert all(np.array_equal(back.params[k], v) for k, v in ckpt.params.items())


REFUSED_TO_SAE_LENS = {"topk transcoder", "topk skip_transcoder"}


@pytest.mark.parametrize("to", ["refsae", "sae_lens"])
def test_every_fixture_converts_or_is_refused_with_the_item_named(to: str, tmp_path: Path) -> None:
    """CKPT-27, CKPT-19: the written files, read back, compute the source's function (every loader
    installed here judged too); what the target cannot compute is refused and nothing is written."""
    from refsae.checkpoints.library_check import fixtures
    from refsae.checkpoints.report import convert

    for n, path in enumerate(fixtures(FIXTURES)):
        try:
            src = formats.read(path)
        except CheckpointError:
            continue  # architectures refsae does not define yet: test_checkpoints_fixtures
        dst = tmp_path / str(n)
        try:
            done = convert(path, dst, to, Options(), None, inputs=16, seed=0, overwrite=False)
        except CheckpointError as e:
            assert to == "sae_lens" and f"{src.architecture} {src.kind}" in REFUSED_TO_SAE_LENS, (path, e)
            assert not dst.exists()
            continue
        assert {f.verdict for f in done.findings} == {"pass"}, (path, done.findings)
        _same_function(src, formats.read(dst), inputs(src, 32))
