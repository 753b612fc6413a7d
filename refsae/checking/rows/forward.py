"""The forward pass (encode.md, decode.md): case strategies, error bounds and rows of `encode`,
`decoder_directions`, `decode` and `forward`.
"""

from __future__ import annotations

from hypothesis import strategies as st

from refsae.cases import Case
from refsae.checking import bounds
from refsae.checking import strategies as rs
from refsae.checking.cases import finish, sae_arrays, sae_case
from refsae.checking.operation import Bounds, Operation, Outputs
from refsae.checking.tolerances import leaf
from refsae.conventions import DECODER, ENCODE, Conventions


@st.composite
def encode_cases(draw: st.DrawFn, dtype: str) -> Case:
    _, a = draw(sae_case(dtype, with_params=("W_enc", "b_enc", "b_dec")))
    encode = draw(rs.convention("encode", ENCODE))
    z = bounds.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], encode)
    return finish(Case(a, {"encode": encode}, dtype), [z.magnitude])


EPSILONS = (1e-8, 1e-3, 0.5)


@st.composite
def decoder_cases(draw: st.DrawFn, dtype: str) -> Case:
    _, a = draw(sae_case(dtype, with_x=False, with_params=("W_dec",)))
    options = {
        "decoder": draw(rs.convention("decoder", DECODER)),
        "eps": draw(rs.epsilons(EPSILONS)),
    }
    return Case(a, options, dtype)


@st.composite
def decode_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape, a = draw(sae_case(dtype, with_x=False, with_params=("W_dec", "b_dec")))
    f = draw(rs.latents(shape, dtype))
    decoder, eps = draw(rs.convention("decoder", DECODER)), draw(rs.epsilons(EPSILONS))
    x_hat = bounds.decode(leaf(f), a["W_dec"], a["b_dec"], decoder, eps)
    return finish(Case({"f": f, **a}, {"decoder": decoder, "eps": eps}, dtype), [x_hat.magnitude])


@st.composite
def forward_cases(draw: st.DrawFn, dtype: str) -> Case:
    _, a = draw(sae_case(dtype))
    c = draw(rs.conventions(reconstruction=("sum",), sparsity=("l1",)))
    options = {"encode": c.encode, "decoder": c.decoder, "eps": c.eps}
    _, x_hat = bounds.forward(a["x"], a["W_enc"], a["b_enc"], a["W_dec"], a["b_dec"], c)
    return finish(Case(a, options, dtype), [x_hat.magnitude])


def encode_bounds(case: Case, out: Outputs) -> Bounds:
    a = case.arrays
    return {"f": bounds.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], case.options["encode"])}


def decoder_directions_bounds(case: Case, out: Outputs) -> Bounds:
    o = case.options
    return {"W_hat": bounds.decoder_directions(case.arrays["W_dec"], o["decoder"], o["eps"])}


def decode_bounds(case: Case, out: Outputs) -> Bounds:
    a, o = case.arrays, case.options
    return {"x_hat": bounds.decode(leaf(a["f"]), a["W_dec"], a["b_dec"], o["decoder"], o["eps"])}


def forward_bounds(case: Case, out: Outputs) -> Bounds:
    o = case.options
    c = Conventions(encode=o["encode"], decoder=o["decoder"], eps=o["eps"])
    return dict(zip(("f", "x_hat"), bounds.forward(*sae_arrays(case), c), strict=True))


ROWS = (
    Operation(
        name="encode",
        summary="f = ReLU((x − b_dec) W_enc + b_enc), tied or untied",
        clauses=("ENC-1", "ENC-2", "ENC-3", "TOL-1"),
        arrays=("x", "W_enc", "b_enc", "b_dec"),
        outputs=("f",),
        cases=encode_cases,
        bounds=encode_bounds,
        example={"encode": "tied"},
    ),
    Operation(
        name="decoder_directions",
        summary="Ŵ = W_dec or W_dec_j / (‖W_dec_j‖ + eps)",
        clauses=("DEC-2", "DEC-3", "DEC-4"),
        arrays=("W_dec",),
        outputs=("W_hat",),
        cases=decoder_cases,
        bounds=decoder_directions_bounds,
        example={"decoder": "normalised", "eps": 1e-3},
    ),
    Operation(
        name="decode",
        summary="x_hat = f Ŵ + b_dec",
        clauses=("DEC-1", "DEC-2", "DEC-3"),
        arrays=("f", "W_dec", "b_dec"),
        outputs=("x_hat",),
        cases=decode_cases,
        bounds=decode_bounds,
        example={"decoder": "normalised", "eps": 1e-3},
    ),
    Operation(
        name="forward",
        summary="(f, x_hat) = decode(encode(x))",
        clauses=("FWD-1",),
        arrays=("x", "W_enc", "b_enc", "W_dec", "b_dec"),
        outputs=("f", "x_hat"),
        cases=forward_cases,
        bounds=forward_bounds,
        example={"encode": "tied", "decoder": "normalised", "eps": 1e-3},
    ),
)
