"""TopK over latent shards (distributed.md DIST-10, DIST-13, DIST-20): the case strategy, the comparison
and the row `topk_sharded`, with the field's two approximations as named equivalences.

Case strategy (DIST-20). `n_shards` from 1, 2, 3, 4, 6 and 8 (above OpenAI's capacity factor 4 its
capacity binds), 1 to 8 latents per shard, 1 to 16 examples, pre-activations drawn directly (the grid
distribution gives exact ties and zeros). Half the time some examples are crowded: their largest values
are moved into one shard (a permutation of the example's values, so no value changes), where a
per-shard capacity loses them. Half the time some examples get a tie at their k-th value: a smaller
value is replaced by the k-th (a copy: representable). No tie is rejected.

Comparison (DIST-20, TOPK-2). A positive value tied at an example's k-th value makes several selections
valid, each with other latents; so does, in a per-shard approximation, a value tied at a shard's cut.
The row compares, on both sides, each example's sums of f over groups of latents: the latents of one
shard with equal z, and all the latents whose z is the positive k-th value, across shards
(`sums_over_tied_groups`). Every valid selection takes as many latents of each group, each with the group's
value, so the sums are exact and equal for every valid selection; a group entirely selected by the spec
is its latents' f summed, so a latent missed or added is seen, and a selection of more than k latents
(`>=` at the k-th value) changes the tied group's sum.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from refsae.cases import Case
from refsae.checking import strategies as rs
from refsae.checking.equivalence import Equivalence, calling
from refsae.checking.operation import Operation, exact
from refsae.checking.rows.topk import draw_k
from refsae.oracle.sharded import capacity_is_defined, topk_shard_capacity, topk_sharded_at_or_above

SHARDS = (1, 2, 3, 4, 6, 8)


@st.composite
def topk_sharded_cases(draw: st.DrawFn, dtype: str) -> Case:
    n_shards = draw(st.sampled_from(SHARDS))
    m, batch = draw(st.integers(1, 8)), draw(st.integers(1, 16))
    d_sae = n_shards * m
    z = draw(rs.arrays((batch, d_sae), dtype, draw(rs.scales(dtype))))
    k = draw_k(draw, d_sae)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if n_shards > 1 and draw(st.booleans()):
        shard = int(rng.integers(n_shards))
        inside = np.zeros(d_sae, dtype=bool)
        inside[shard * m : (shard + 1) * m] = True
        for b in np.flatnonzero(rng.uniform(size=batch) < 0.5):
            ordered = -np.sort(-z[b])
            z[b, inside] = rng.permutation(ordered[:m])
            z[b, ~inside] = rng.permutation(ordered[m:])
    if k < d_sae and draw(st.booleans()):
        for b in np.flatnonzero(rng.uniform(size=batch) < 0.5):  # a tie at the k-th value (TOPK-2)
            kth = -np.sort(-z[b])[k - 1]
            below = np.flatnonzero(z[b] < kth)
            if below.size:
                z[b, rng.choice(below)] = kth
    return Case({"z": z}, {"k": k, "n_shards": n_shards}, dtype)


def sums_over_tied_groups(case: Case, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The module's comparison: per example, the latents are grouped by equal z within a shard, and a
    positive z equal to the example's k-th largest forms one group across the shards; each group's sum
    of f stands at its first latent, 0 at the others."""
    f, z = out["f"], case.arrays["z"]
    k, d_sae = case.options["k"], z.shape[-1]
    shard = np.arange(d_sae) // (d_sae // case.options["n_shards"])
    kth = -np.sort(-z, axis=-1)[:, k - 1 : k]
    group_shard = np.where((z == kth) & (kth > 0), -1, shard)
    projected = np.zeros_like(f)
    for b in range(z.shape[0]):
        _, first, group = np.unique(
            np.stack([z[b], group_shard[b]]), axis=1, return_index=True, return_inverse=True
        )
        projected[b, first] = np.bincount(group.ravel(), weights=f[b], minlength=first.size)
    return {"f": projected}


def _capacity(op: Any, case: Case, parameters: Any) -> dict[str, np.ndarray]:
    """EQ-17's outputs; NaN where the approximation has no k-th candidate (the library cannot compute
    there: its adapter declares that scope)."""
    z, o, cf = case.arrays["z"], case.options, parameters["capacity_factor"]
    if not capacity_is_defined(o["k"], z.shape[-1], o["n_shards"], cf):
        return {"f": np.full_like(z, np.nan)}
    return {"f": topk_shard_capacity(z, k=o["k"], n_shards=o["n_shards"], capacity_factor=cf)}


ROWS = (
    Operation(
        name="topk_sharded",
        summary="TopK of z split in n_shards contiguous latent shards: the TopK of the whole z",
        clauses=("DIST-10", "DIST-20"),
        arrays=("z",),
        outputs=("f",),
        cases=topk_sharded_cases,
        bounds=exact("f"),
        example={"k": 2, "n_shards": 5},
        compare_via=sums_over_tied_groups,
    ),
)

EQUIVALENCES = (
    Equivalence(
        name="shard_capacity_factor",
        formula="each of the n_shards shards keeps only its k_in = min(k · capacity_factor // n_shards, k) "
        "largest z, and every gathered candidate >= the k-th largest candidate is kept (OpenAI's "
        "sparse_autoencoder/train.py, sharded_topk); capacity_factor declared by the adapter",
        clause="EQ-17",
        rows=("topk_sharded",),
        reference=_capacity,
        requires=("capacity_factor",),
        about=("DIST-10",),
    ),
    Equivalence(
        name="kth_at_or_above",
        formula="every latent >= the k-th largest z is kept: more than k where a positive value ties at "
        "the k-th (OpenAI's `vals >= kth` without a capacity limit)",
        clause="EQ-18",
        rows=("topk_sharded",),
        reference=calling({"topk_sharded": topk_sharded_at_or_above}),
        kind="tie",
        about=("DIST-10",),
    ),
)
