"""Bad checkpoints get a clear error naming the file and the key, and nothing is written (CKPT-30,
CKPT-25). Each case starts from a valid checkpoint in refsae's own format or a `params.npz` and
breaks one thing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from refsae.checkpoints import formats
from refsae.checkpoints.cli import main
from refsae.checkpoints.errors import CheckpointError
from refsae.checkpoints.formats import refsae_format
from refsae.checkpoints.options import Options
from refsae.checkpoints.writing import atomic_directory


def _params(rng: np.random.Generator, d_in: int = 8, d_sae: int = 32) -> dict[str, np.ndarray]:
    return {
        "W_enc": rng.standard_normal((d_in, d_sae)).astype(np.float32),
        "W_dec": rng.standard_normal((d_sae, d_in)).astype(np.float32),
        "b_enc": rng.standard_normal(d_sae).astype(np.float32),
        "b_dec": rng.standard_normal(d_in).astype(np.float32),
        "threshold": np.abs(rng.standard_normal(d_sae)).astype(np.float32),
    }


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    np.savez(tmp_path / "params.npz", **_params(np.random.default_rng(0)))  # type: ignore[arg-type]
    return tmp_path


@pytest.fixture
def canonical(npz: Path, tmp_path: Path) -> Path:
    ckpt = formats.read(npz)
    with atomic_directory(tmp_path / "canonical") as out:
        refsae_format.write(ckpt, out)
    return tmp_path / "canonical"


def _raises(path: Path, file: str, key: str, words: str, options: Options | None = None) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        formats.read(path, options)
    assert Path(info.value.file).name == file, info.value
    assert info.value.key == key, info.value
    assert words in str(info.value), info.value
    return info.value


def _edit_json(path: Path, change: Callable[[dict[str, object]], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_truncated_weights_file_names_the_file(canonical: Path) -> None:
    weights = canonical / "params.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    _raises(canonical, "params.safetensors", "", "not a readable safetensors file")


def test_a_corrupt_config_names_the_file(canonical: Path) -> None:
    (canonical / "refsae.json").write_text("{not json")
    _raises(canonical, "refsae.json", "", "not valid JSON")


def test_a_missing_config_key_is_named(canonical: Path) -> None:
    _edit_json(canonical / "refsae.json", lambda d: d.pop("encode"))
    _raises(canonical, "refsae.json", "encode", "missing")


def test_an_unknown_config_key_is_named(canonical: Path) -> None:
    _edit_json(canonical / "refsae.json", lambda d: d.update(apply_b_dec_to_input=True))
    _raises(canonical, "refsae.json", "apply_b_dec_to_input", "unknown key")


def test_an_unknown_convention_name_is_named(canonical: Path) -> None:
    _edit_json(canonical / "refsae.json", lambda d: d.update(encode="centred"))
    _raises(canonical, "refsae.json", "encode", "is not one of tied, untied")


def test_a_shape_that_contradicts_the_config_names_both(canonical: Path) -> None:
    _edit_json(canonical / "refsae.json", lambda d: d.update(d_sae=16))
    with pytest.raises(CheckpointError) as info:
        formats.read(canonical)
    assert Path(info.value.file).name == "params.safetensors" and info.value.key in (
        "W_enc",
        "W_dec",
        "b_enc",
        "threshold",
    )  # the first read with a d_sae axis
    assert "d_sae = 32" in str(info.value) and "d_sae = 16 from refsae.json:d_sae" in str(info.value)


def test_shapes_that_contradict_each_other_are_named(npz: Path) -> None:
    params = _params(np.random.default_rng(1))
    params["b_enc"] = params["b_enc"][:16]
    np.savez(npz / "params.npz", **params)  # type: ignore[arg-type]
    _raises(npz, "params.npz", "b_enc", "d_sae = 16")


def test_a_jumprelu_without_a_threshold_is_refused(npz: Path) -> None:
    params = _params(np.random.default_rng(2))
    del params["threshold"]
    np.savez(npz / "params.npz", **params)  # type: ignore[arg-type]
    _raises(npz, "params.npz", "threshold", "needs this threshold", Options(architecture="jumprelu"))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_are_refused_with_their_position(npz: Path, bad: float) -> None:
    params = _params(np.random.default_rng(3))
    params["W_dec"][5, 2] = bad
    np.savez(npz / "params.npz", **params)  # type: ignore[arg-type]
    _raises(npz, "params.npz", "W_dec", "1 non-finite values (first at (5, 2)")


def test_a_dtype_the_format_does_not_store_weights_in_is_refused(npz: Path) -> None:
    params = _params(np.random.default_rng(4))
    np.savez(npz / "params.npz", **{**params, "b_dec": params["b_dec"].astype(np.int32)})  # type: ignore[arg-type]
    _raises(npz, "params.npz", "b_dec", "dtype int32")


def test_a_k_outside_the_latents_is_refused(npz: Path) -> None:
    _raises(npz, "command line", "--k", "k = 40 is not in 1..d_sae = 32", Options(architecture="topk", k=40))


def test_a_directory_of_no_known_format_says_what_it_looked_for(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(CheckpointError, match=r"no known checkpoint format's files.*sae_lens"):
        formats.read(tmp_path)


def test_convert_never_overwrites_dst_unless_asked(
    npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    assert main(["convert", str(npz), str(dst), "--to", "refsae"]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in dst.iterdir()) == ["keep.txt"]
    assert main(["convert", str(npz), str(dst), "--to", "refsae", "--overwrite"]) == 0
    assert sorted(p.name for p in dst.iterdir()) == ["params.safetensors", "refsae.json"]


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="disk full"), atomic_directory(tmp_path / "dst") as out:
        (out / "refsae.json").write_text("{}")
        raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_on_the_command_line_exit_2_with_the_reason(
    npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "x.npy", np.zeros((4, 5)))
    assert main([str(npz), "--inputs", str(tmp_path / "x.npy")]) == 2
    assert "inputs of shape (batch, d_in = 8) expected, got (4, 5)" in capsys.readouterr().err
