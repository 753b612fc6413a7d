"""The AuxK auxiliary loss (Gao et al. 2024, *Scaling and evaluating sparse autoencoders*, A.2),
AUXK-1..AUXK-9: the dead latents model the residual that the live ones left.

Per instance, with `dead` the dead-latent mask, n = #dead and k = min(k_aux, n):

    S_b    = the k largest z_bj among dead j          (ties: the lower index first)
    a_bj   = v(z_bj) for j ∈ S_b, 0 elsewhere         v = max(·, 0) ("relu") or identity ("raw")
    e      = sg(x − x_hat)                            sg: stop-gradient ("detached")
    ê      = a Ŵ  [+ b_dec, "with_b_dec"]
                  [+ b_dec − sg(b_dec), "cancelled_b_dec": the value without, b_dec's gradient with]
    N      = Σ_{b,d} (ê − e)²
    L_aux  = s · N / D,   s = min(n / k_aux, 1) ("dead_fraction") or 1 ("unscaled"),
             D = Σ_{b,d} (e − mean_b e)²  ("residual_variance"),  Σ_{b,d} (x − mean_b x)²
                 ("input_variance"),  or B ("sum")
    L_aux  = 0 where no latent is dead;  the loss is Σ_inst L_aux.

The normaliser D is a constant to the gradient under every convention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from jaxtyping import Shaped

from refsae._typecheck import typechecked
from refsae.conventions import (
    DECODER,
    DEFAULT_EPS,
    OPERATION_AXES,
    DecoderConvention,
    check_choice,
    check_eps,
)
from refsae.oracle import _validate
from refsae.oracle._shapes import DecoderWeights, InputBatch, InputVector, LatentBatch, Scalar
from refsae.oracle.forward import decoder_directions
from refsae.oracle.gradients import normalisation_backward
from refsae.oracle.losses import total_variance

__all__ = ["auxk_latents", "auxk_loss", "auxk_loss_gradients"]

Values = Literal["relu", "raw"]
AuxDecode = Literal["without_b_dec", "with_b_dec", "cancelled_b_dec"]
Scale = Literal["unscaled", "dead_fraction"]
Normalisation = Literal["residual_variance", "input_variance", "sum"]
Residual = Literal["detached", "attached"]
VALUES: tuple[str, ...] = OPERATION_AXES["values"]
AUX_DECODE: tuple[str, ...] = OPERATION_AXES["aux_decode"]
SCALE: tuple[str, ...] = OPERATION_AXES["scale"]
NORMALISATION: tuple[str, ...] = OPERATION_AXES["normalisation"]
RESIDUAL: tuple[str, ...] = OPERATION_AXES["residual"]


def check_k_aux(k_aux: int) -> None:
    """`k_aux` is an integer >= 1 (AUXK-1)."""
    if isinstance(k_aux, bool) or not isinstance(k_aux, int) or k_aux < 1:
        raise ValueError(f"k_aux must be an integer >= 1, got {k_aux!r}")


def check_dead(dead: np.ndarray) -> np.ndarray:
    """The dead mask is 0/1 or boolean (AUXK-1); returned as bool."""
    if dead.dtype.kind not in "biu" or not np.isin(dead, (0, 1)).all():
        raise ValueError("dead must be a 0/1 or boolean mask of shape (*inst, d_sae)")
    return dead.astype(bool)


def dead_selection(z: np.ndarray, dead: np.ndarray, k_aux: int) -> np.ndarray:
    """The canonical selection among dead latents (AUXK-2): by z descending, lower index first, at
    most min(k_aux, n_dead) per example; per instance."""
    n_dead = dead.sum(axis=-1)  # (*inst)
    order = np.argsort(np.where(dead, -z, np.inf), axis=-1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(z.shape[-1]), axis=-1)
    selected: np.ndarray = (rank < np.minimum(k_aux, n_dead)[..., None]) & dead
    return selected


@typechecked
def auxk_latents(
    z: LatentBatch,
    dead: Shaped[np.ndarray, "*inst d_sae"],
    *,
    k_aux: int,
    values: Values = "relu",
) -> LatentBatch:
    """The auxiliary latents a (AUXK-2, AUXK-3): v(z) at the min(k_aux, n_dead) largest dead z of
    each example, 0 elsewhere.

    >>> import numpy as np
    >>> z, dead = np.array([[5.0, 1.0, -1.0, 2.0]]), np.array([0, 1, 1, 1])
    >>> auxk_latents(z, dead, k_aux=2).tolist()          # latent 0 is live: never selected
    [[0.0, 1.0, 0.0, 2.0]]
    >>> auxk_latents(z, dead, k_aux=3, values="raw").tolist()
    [[0.0, 1.0, -1.0, 2.0]]
    """
    check_k_aux(k_aux)
    check_choice("values", values, VALUES)
    _validate.nonempty_batch(z, "z")
    _validate.finite(z=z)
    mask = dead_selection(z, check_dead(dead), k_aux)
    return np.where(mask, np.maximum(z, 0.0) if values == "relu" else z, 0.0)


@dataclass(frozen=True)
class AuxKOptions:
    """The keyword options of `auxk_loss`, checked on construction (AUXK-1..AUXK-7)."""

    k_aux: int
    values: Values = "relu"
    aux_decode: AuxDecode = "without_b_dec"
    scale: Scale = "unscaled"
    normalisation: Normalisation = "residual_variance"
    residual: Residual = "detached"
    decoder: DecoderConvention = "constrained"
    eps: float = DEFAULT_EPS

    def __post_init__(self) -> None:
        check_k_aux(self.k_aux)
        check_choice("values", self.values, VALUES)
        check_choice("aux_decode", self.aux_decode, AUX_DECODE)
        check_choice("scale", self.scale, SCALE)
        check_choice("normalisation", self.normalisation, NORMALISATION)
        check_choice("residual", self.residual, RESIDUAL)
        check_choice("decoder", self.decoder, DECODER)
        check_eps(self.eps)


def _terms(
    x: np.ndarray,
    x_hat: np.ndarray,
    z: np.ndarray,
    W_dec: np.ndarray,
    b_dec: np.ndarray,
    dead: np.ndarray,
    o: AuxKOptions,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """a, Ŵ, ê − e, the scale s (*inst), the normaliser D (*inst) and the gradient mask of z."""
    _validate.nonempty_batch(x)
    _validate.finite(x=x, x_hat=x_hat, z=z, W_dec=W_dec, b_dec=b_dec)
    is_dead = check_dead(dead)
    a = auxk_latents(z, dead, k_aux=o.k_aux, values=o.values)
    W_hat = decoder_directions(W_dec, decoder=o.decoder, eps=o.eps)
    e = x - x_hat
    e_hat = np.einsum("b...j,...ji->b...i", a, W_hat)
    if o.aux_decode == "with_b_dec":
        e_hat = e_hat + b_dec
    n_dead = is_dead.sum(axis=-1)
    s = np.minimum(n_dead / o.k_aux, 1.0) if o.scale == "dead_fraction" else np.ones(n_dead.shape)
    s = np.where(n_dead > 0, s, 0.0)  # no dead latent: no loss (AUXK-6)
    if o.normalisation == "sum":
        D = np.full(n_dead.shape, float(x.shape[0]))
    else:
        D = np.asarray(total_variance(e if o.normalisation == "residual_variance" else x))
        if np.any((D == 0.0) & (n_dead > 0)):
            raise ValueError(
                f"the {o.normalisation} normaliser is zero (e.g. a batch of 1): AuxK is undefined"
            )
    D = np.where(D > 0, D, 1.0)
    mask = dead_selection(z, is_dead, o.k_aux) & ((z > 0) | (o.values == "raw"))
    return a, W_hat, e_hat - e, s, D, mask


@typechecked
def auxk_loss(
    x: InputBatch,
    x_hat: InputBatch,
    z: LatentBatch,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    dead: Shaped[np.ndarray, "*inst d_sae"],
    *,
    k_aux: int,
    values: Values = "relu",
    aux_decode: AuxDecode = "without_b_dec",
    scale: Scale = "unscaled",
    normalisation: Normalisation = "residual_variance",
    residual: Residual = "detached",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> Scalar:
    """Σ_inst s · Σ_{b,d} (ê − e)² / D (AUXK-1..AUXK-7); the defaults are Gao et al.'s as OpenAI's
    code computes it.

    >>> import numpy as np
    >>> x, x_hat = np.array([[1.0, 0.0], [0.0, 0.0]]), np.zeros((2, 2))   # e = x: D = 0.5
    >>> z, dead = np.array([[0.5, 3.0], [0.0, 0.0]]), np.array([1, 0])
    >>> float(auxk_loss(x, x_hat, z, np.eye(2), np.zeros(2), dead, k_aux=1))  # ê_0 = (0.5, 0): N = 0.25
    0.5
    """
    o = AuxKOptions(k_aux, values, aux_decode, scale, normalisation, residual, decoder, eps)
    _, _, diff, s, D, _ = _terms(x, x_hat, z, W_dec, b_dec, dead, o)
    return np.asarray((s * (diff**2).sum(axis=(0, -1)) / D).sum())


@typechecked
def auxk_loss_gradients(
    x: InputBatch,
    x_hat: InputBatch,
    z: LatentBatch,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    dead: Shaped[np.ndarray, "*inst d_sae"],
    *,
    k_aux: int,
    values: Values = "relu",
    aux_decode: AuxDecode = "without_b_dec",
    scale: Scale = "unscaled",
    normalisation: Normalisation = "residual_variance",
    residual: Residual = "detached",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> dict[str, np.ndarray]:
    """∂L_aux/∂(z, W_dec, b_dec, x_hat) (AUXK-8), derived by hand:

    g_ê    = 2 s (ê − e) / D
    ∂z     = (g_ê Ŵᵀ) ⊙ 1[j selected ∧ (z > 0 or "raw")]       (the selection passes nothing)
    ∂Ŵ     = aᵀ g_ê → ∂W_dec by GRAD-5
    ∂b_dec = Σ_b g_ê ("with_b_dec", "cancelled_b_dec"), else 0
    ∂x_hat = g_ê ("attached": e = x − x_hat), else 0 ("detached")
    """
    o = AuxKOptions(k_aux, values, aux_decode, scale, normalisation, residual, decoder, eps)
    a, W_hat, diff, s, D, mask = _terms(x, x_hat, z, W_dec, b_dec, dead, o)
    g = 2.0 * (s / D)[..., None] * diff
    G_hat = np.einsum("b...j,b...i->...ji", a, g)
    zero_bias = np.zeros_like(b_dec)
    return {
        "z": np.where(mask, np.einsum("b...i,...ji->b...j", g, W_hat), 0.0),
        "W_dec": G_hat if decoder == "constrained" else normalisation_backward(W_dec, G_hat, eps),
        "b_dec": zero_bias if aux_decode == "without_b_dec" else g.sum(axis=0),
        "x_hat": g if residual == "attached" else np.zeros_like(x_hat),
    }


@dataclass(frozen=True)
class AuxKTerm:
    """The AuxK term α · L_aux of a training step (AUXK-10): the dead mask (*inst, d_sae) and the
    loss's options; the residual is detached, as Gao et al. train it."""

    coefficient: float
    dead: np.ndarray
    k_aux: int
    values: Values = "relu"
    aux_decode: AuxDecode = "without_b_dec"
    scale: Scale = "unscaled"
    normalisation: Normalisation = "residual_variance"

    def __post_init__(self) -> None:
        if not (isinstance(self.coefficient, int | float) and np.isfinite(self.coefficient)):
            raise ValueError(f"the AuxK coefficient must be a finite number, got {self.coefficient!r}")
        AuxKOptions(self.k_aux, self.values, self.aux_decode, self.scale, self.normalisation)
        check_dead(self.dead)


def auxk_parameter_gradients(
    x: np.ndarray,
    param: dict[str, np.ndarray],
    x_hat: np.ndarray,
    term: AuxKTerm,
    *,
    encode: str,
    decoder: DecoderConvention,
    eps: float = DEFAULT_EPS,
) -> tuple[float, dict[str, np.ndarray]]:
    """(α · L_aux, its gradients with respect to W_enc, b_enc, W_dec and b_dec) for the SAE whose main
    reconstruction is `x_hat` (AUXK-10): AUXK-8's ∂z pulled back through z = u W_enc + b_enc (GRAD-3,
    GRAD-4: under `tied`, b_dec also gets −W_enc Σ_b ∂z), ∂W_dec and ∂b_dec as AUXK-8 gives them."""
    W_enc, b_enc, W_dec, b_dec = (param[n] for n in ("W_enc", "b_enc", "W_dec", "b_dec"))
    u = x - b_dec if encode == "tied" else x
    z = np.einsum("b...i,...ij->b...j", u, W_enc) + b_enc
    options = {
        "k_aux": term.k_aux,
        "values": term.values,
        "aux_decode": term.aux_decode,
        "scale": term.scale,
        "normalisation": term.normalisation,
        "decoder": decoder,
        "eps": eps,
    }
    loss = float(auxk_loss(x, x_hat, z, W_dec, b_dec, term.dead, **options))  # type: ignore[arg-type]
    g = auxk_loss_gradients(x, x_hat, z, W_dec, b_dec, term.dead, **options)  # type: ignore[arg-type]
    g_z = g["z"]
    grads = {
        "W_enc": np.einsum("b...i,b...j->...ij", u, g_z),
        "b_enc": g_z.sum(axis=0),
        "W_dec": g["W_dec"],
        "b_dec": g["b_dec"],
    }
    if encode == "tied":
        grads["b_dec"] = grads["b_dec"] - np.einsum("...ij,...j->...i", W_enc, grads["b_enc"])
    a = term.coefficient
    return a * loss, {name: a * v for name, v in grads.items()}
