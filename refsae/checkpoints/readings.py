"""The other readings of a checkpoint's files (CKPT-24): what a loader computes when it gets one item
wrong. `compare` tries each when a library disagrees with the oracle, to name the item."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from refsae.checkpoints.model import Checkpoint


@dataclass(frozen=True)
class Reading:
    name: str
    item: str
    """The item of `Checkpoint` this reading gets otherwise (its source decides bug or convention)."""
    describe: str
    checkpoint: Checkpoint
    verdict: str = ""
    """`convention` for a named equivalence or variant (CKPT-24); empty: decided by the item's source."""


def readings(ckpt: Checkpoint) -> Iterator[Reading]:
    """The named equivalences and variants first (a decoder-norm fold, Multi-TopK's 4k), then every
    single-item misreading that yields a valid checkpoint, in a fixed order."""
    p = ckpt.params
    if ckpt.architecture in ("relu", "topk", "batchtopk", "jumprelu") and ckpt.decoder == "constrained":
        n = np.linalg.norm(p["W_dec"], axis=-1)
        if (n > 0).all():
            folded = {**p, "W_enc": p["W_enc"] * n, "b_enc": p["b_enc"] * n, "W_dec": p["W_dec"] / n[:, None]}
            if "threshold" in p and ckpt.architecture == "jumprelu":
                folded["threshold"] = p["threshold"] * n
            yield Reading(
                "decoder norms folded",
                "W_dec",
                "the decoder norms folded into the encoder (latents × ‖W_dec_j‖, x̂ unchanged: CKPT-24)",
                ckpt.but(params=folded),
                verdict="convention",
            )
    if ckpt.architecture == "topk" and ckpt.k is not None and "multi_topk" in ckpt.sources:
        k = min(4 * ckpt.k, ckpt.d_sae)
        yield Reading(
            "multi_topk: 4k",
            "multi_topk",
            f"a TopK with 4k = {k} (Multi-TopK's second reconstruction, Gao et al. 2024)",
            ckpt.but(k=k),
            verdict="convention",
        )
    if ckpt.d_in == ckpt.d_out:
        other = "untied" if ckpt.encode == "tied" else "tied"
        yield Reading(
            f"encode={other}",
            "encode",
            f"the {other} encoder (b_dec {'not ' if other == 'untied' else ''}subtracted)",
            ckpt.but(encode=other),
        )
    if ckpt.architecture in ("topk", "batchtopk", "jumprelu"):
        keep = {k: v for k, v in p.items() if k != "threshold"}
        yield Reading(
            "architecture=relu",
            "architecture",
            f"a plain ReLU (the {ckpt.architecture} {_what(ckpt.architecture)} dropped)",
            ckpt.but(architecture="relu", params=keep, k=None),
        )
    if ckpt.architecture == "batchtopk" and ckpt.k is not None:
        keep = {k: v for k, v in p.items() if k != "threshold"}
        yield Reading(
            "architecture=topk",
            "architecture",
            f"a per-row TopK with k = {ckpt.k} (the inference threshold ignored)",
            ckpt.but(architecture="topk", params=keep),
        )
    if ckpt.architecture == "jumprelu" and ckpt.input_scale != 1.0:
        for name, theta in (
            ("threshold×c", p["threshold"] * ckpt.input_scale),
            ("threshold/c", p["threshold"] / ckpt.input_scale),
        ):
            yield Reading(
                name,
                "threshold",
                f"the threshold rescaled by the input scale ({name})",
                ckpt.but(params={**p, "threshold": theta}),
            )
    other_decoder = "normalised" if ckpt.decoder == "constrained" else "constrained"
    yield Reading(
        f"decoder={other_decoder}", "decoder", f"the {other_decoder} decoder", ckpt.but(decoder=other_decoder)
    )
    if ckpt.input_scale != 1.0:
        yield Reading(
            "input_scale=1",
            "input_scale",
            "no input scaling (the stored scale ignored)",
            ckpt.but(input_scale=1.0),
        )
    if ckpt.kind == "skip_transcoder":
        keep = {k: v for k, v in p.items() if k != "W_skip"}
        yield Reading(
            "no skip", "kind", "no skip term (W_skip ignored)", ckpt.but(kind="transcoder", params=keep)
        )
        if ckpt.d_in == ckpt.d_out:  # a square W_skip can be read the other way round
            yield Reading(
                "W_skip transposed",
                "W_skip",
                "the skip term with W_skip transposed",
                ckpt.but(params={**p, "W_skip": np.ascontiguousarray(p["W_skip"].T)}),
            )
    yield Reading(
        "b_dec=0", "b_dec", "without b_dec", ckpt.but(params={**p, "b_dec": np.zeros_like(p["b_dec"])})
    )


def _what(architecture: str) -> str:
    return "k" if architecture == "topk" else "threshold"
