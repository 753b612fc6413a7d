"""SAELens config keys: its architecture names and the pre-6 translation (CKPT-7, CKPT-11)."""

from __future__ import annotations

from typing import Any

ARCHITECTURES: dict[str, tuple[str, str]] = {
    "standard": ("relu", "sae"),
    "topk": ("topk", "sae"),
    "jumprelu": ("jumprelu", "sae"),
    "gated": ("gated", "sae"),
    "transcoder": ("relu", "transcoder"),
    "skip_transcoder": ("relu", "skip_transcoder"),
    "jumprelu_transcoder": ("jumprelu", "transcoder"),
    "jumprelu_skip_transcoder": ("jumprelu", "skip_transcoder"),
}
"""SAELens 6 inference architectures refsae defines → (architecture, kind). The others it has (abstopk,
matryoshka_batchtopk, temporal, matching_pursuit) are refused with their name (issue 16)."""


def _version(cfg: dict[str, Any]) -> str | None:
    version = cfg.get("sae_lens_version")
    meta = cfg.get("metadata")
    if not version and isinstance(meta, dict):
        version = meta.get("sae_lens_version")
    return version if isinstance(version, str) else None


def pre6(cfg: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the config as SAELens 6 reads it, whether it was translated): SAELens's `handle_config_defaulting`
    translates a config whose `sae_lens_version` is missing or below 6.0 (`handle_pre_6_0_config`)."""
    version = _version(cfg)
    if version is not None and int(version.split(".")[0]) >= 6:
        return cfg, False
    new = {
        {"activation_fn_str": "activation_fn", "hook_point": "hook_name"}.get(k, k): v for k, v in cfg.items()
    }
    new.setdefault("apply_b_dec_to_input", True)
    new.setdefault("architecture", "standard")
    new.setdefault("activation_fn", "relu")
    kwargs = new.get("activation_fn_kwargs")
    if new["activation_fn"] == "topk" and isinstance(kwargs, dict) and kwargs.get("k") is not None:
        new["architecture"], new["k"] = "topk", kwargs["k"]
    if isinstance(new.get("normalize_activations"), bool):
        new["normalize_activations"] = "expected_average_only_in" if new["normalize_activations"] else "none"
    if new.get("normalize_activations") is None:
        new["normalize_activations"] = "none"
    return new, True
