"""The matrix: tests (CPU), tests_cuda, typecheck, lint, docs, check (the main job).

Every session installs torch==2.13.0 first and passes constraints.txt (torch==2.13.0) to every
pip call: any other torch version drags several GB of CUDA packages onto a CPU machine.

    nox -s tests typecheck lint docs     # what CI runs (.ci/run)
    nox -s check                         # the main job: refsae.torch against the oracle, per operation
    nox -s tests_cuda                    # the same suite on CUDA; skips with a message without a GPU
    nox -s "conformance(library='sae_lens')"   # one peer library's conformance report (each its own venv)
    nox -s conformance_page selftest bench     # the published page, the suite's self-test, benchmarks
    nox -s bench_transcoder                    # the transcoder step beside sparsify's (bench runs it too)
    nox -s package                             # sdist and wheel in dist/, twine check
    nox -s oldest                              # the oldest supported dependencies (not in CI)

`REFSAE_PROFILE` (dev | ci | thorough) picks the hypothesis profile; sessions default to ci.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "typecheck", "lint", "docs"]

CONSTRAINTS = ("-c", "constraints.txt")
MATRIX = ["matrix"]
"""The sessions a CI matrix runs, one job each, on a CPU runner (`nox -t matrix -l --json`;
examples/ci/github-actions.yml): not tests_cuda (a GPU), oldest (several GB), selftest, bench and
bench_transcoder (long)."""


def _install(session: nox.Session, extras: str = "dev") -> None:
    session.install("torch==2.13.0")
    session.install(*CONSTRAINTS, "-e", f".[{extras}]")


def _env(**extra: str) -> dict[str, str]:
    return {"REFSAE_PROFILE": os.environ.get("REFSAE_PROFILE", "ci"), **extra}


def _suite(session: nox.Session) -> None:
    """The test suite on $REFSAE_WORKERS workers (2) with the spec pages' examples; the documentation
    site's browser test is the docs session's."""
    workers = os.environ.get("REFSAE_WORKERS", "2")
    tests = ("tests", "-m", "not docs_site", "--doctest-glob=*.md", "specs")
    durations = ("--durations=30",)  # the slowest tests, for keeping CI near its 20-minute target
    session.run("pytest", "-n", workers, "-q", *durations, *tests, *session.posargs, env=_env())


@nox.session(tags=MATRIX)
def tests(session: nox.Session) -> None:
    """The whole suite on CPU, two workers, with the spec pages' examples."""
    _install(session)
    _suite(session)


@nox.session
def tests_cuda(session: nox.Session) -> None:
    """The same suite on a CUDA device (REFSAE_DEVICE=cuda); skips with a message without one."""
    _install(session)
    probe = "import torch; print(torch.cuda.is_available())"
    available = session.run("python", "-c", probe, silent=True)
    if not available or available.strip() != "True":
        session.skip("no CUDA device: torch.cuda.is_available() is False on this machine")
    session.run(
        "pytest", "-q", "tests", "-m", "not docs_site", *session.posargs, env=_env(REFSAE_DEVICE="cuda")
    )
    session.run("refsae", "check", "--device", "cuda", env=_env())
    session.run("refsae", "check", "--device", "cuda", "--fast", env=_env())


@nox.session(tags=MATRIX)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over refsae/, tests/ and this file."""
    _install(session)
    session.run("mypy", "--strict")


@nox.session(tags=MATRIX)
def lint(session: nox.Session) -> None:
    """ruff."""
    session.install(*CONSTRAINTS, "ruff>=0.5")
    session.run("ruff", "check", ".")


KATEX = "katex@0.16.47"
"""KaTeX, from the npm registry: the site serves it itself (docs/hooks.py), so math renders offline."""


@nox.session(tags=MATRIX)
def docs(session: nox.Session) -> None:
    """The spec pages' examples run as doctests, every clause is cited by a test (coverage 100%), and
    the documentation site builds in strict mode (build/site) and reads right in headless Chromium
    (math rendered, clause links resolve; screenshots in build/screenshots; PKG-5)."""
    _install(session, extras="dev,docs")
    session.run("pytest", "-q", "--doctest-glob=*.md", "specs", "--doctest-modules", "refsae", env=_env())
    session.run("refsae", "clauses")
    katex = Path("build/katex").resolve()
    session.run(
        "npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(katex), KATEX, external=True
    )
    site_env = _env(REFSAE_KATEX=str(katex / "node_modules" / "katex" / "dist"), NO_MKDOCS_2_WARNING="1")
    session.run("mkdocs", "build", "--strict", env=site_env)
    session.run(
        "pytest", "-q", "-p", "no:cacheprovider", "-m", "docs_site", "tests/test_docs_site.py", env=_env()
    )


@nox.session
def oldest(session: nox.Session) -> None:
    """The oldest supported release of every runtime dependency (pyproject.toml's lower bounds, pinned
    in constraints-oldest.txt): the test suite, the spec examples and the main job. torch 2.4.1 comes
    from PyPI as a CUDA build of several GB, so this session is not part of CI; its last result is in
    README's support table."""
    oldest = ("-c", "constraints-oldest.txt")
    session.install(*oldest, "torch")
    session.install(*oldest, "-e", ".[dev]")
    names = ("torch", "numpy", "hypothesis", "hypothesis-torch", "jaxtyping", "beartype")
    probe = f"from importlib.metadata import version; print([(n, version(n)) for n in {names!r}])"
    session.run("python", "-c", probe)
    _suite(session)
    session.run("refsae", "check", env=_env())


@nox.session(tags=MATRIX)
def package(session: nox.Session) -> None:
    """The distribution (PKG-2): an sdist and a wheel in dist/, checked by `twine check --strict`."""
    session.install(*CONSTRAINTS, "build>=1.2", "twine>=5")
    session.run("python", "-m", "build", "--outdir", "dist", ".")
    session.run(
        "python", "-m", "twine", "check", "--strict", *sorted(str(p) for p in Path("dist").glob("refsae-*"))
    )


@nox.session(tags=MATRIX)
def check(session: nox.Session) -> None:
    """The main job: refsae.torch against the oracle, one table row per operation and dtype."""
    _install(session, extras="dev")
    session.run("refsae", "check", *session.posargs, env=_env())
    session.run("refsae", "check", "--fast", *session.posargs, env=_env())  # the fast paths (PERF-1)


LIBRARIES: dict[str, tuple[str, ...]] = {
    "refsae": ("refsae",),
    "sae_lens": (
        "sae_lens",
        "sae_lens.topk",
        "sae_lens.batchtopk",
        "sae_lens.jumprelu",
        "sae_lens.jumprelu_quadratic",
        "sae_lens.gated",
        "sae_lens.evals",
        "sae_lens.folding",
        "sae_lens.matryoshka",
        "sae_lens.transcoder",
        "sae_lens.jumprelu_transcoder",
    ),
    "sparse_autoencoder": ("sparse_autoencoder",),
    "dictionary_learning": (
        "dictionary_learning",
        "dictionary_learning.topk",
        "dictionary_learning.batchtopk",
        "dictionary_learning.jumprelu",
        "dictionary_learning.gated",
        "dictionary_learning.folding",
        "dictionary_learning.evals",
        "dictionary_learning.matryoshka",
    ),
    "sparsify": ("sparsify", "sparsify.transcoder"),
    "saev": ("saev",),
    "sae_bench": ("sae_bench",),
    "overcomplete": ("overcomplete", "overcomplete.topk", "overcomplete.batchtopk", "overcomplete.jumprelu"),
}
"""The peer libraries and their built-in targets (refsae.conform.targets.BUILTIN; a test keeps the two
in step; nox cannot import refsae, which needs torch). Each library has conformance/NAME/
with requirements.txt (what to pip install), constraints.txt (torch==2.13.0 and the library's own
pins) and optionally uninstall.txt (packages to remove after installing, e.g. a CUDA torchvision)."""


@nox.session(tags=MATRIX)
@nox.parametrize("library", list(LIBRARIES))
def conformance(session: nox.Session, library: str) -> None:
    """Install one peer library in its own venv, run the conformance suite (ci profile) on each of its
    targets against its known findings and write conformance/reports/TARGET.{json,md}; then run every
    bug's library-only reproduction and write conformance/LIBRARY/repro/results.json. Exit status 0
    even when a row has a bug: the findings are the product; posargs go to `refsae conform`."""
    folder = f"conformance/{library}"
    session.install("torch==2.13.0")
    if library == "refsae":  # refsae's own target: its own pins, nothing else to install
        _install(session, extras="dev")
    else:
        session.install("-c", f"{folder}/constraints.txt", "-r", f"{folder}/requirements.txt")
        session.install("-c", f"{folder}/constraints.txt", "-e", ".")
    if os.path.exists(f"{folder}/uninstall.txt"):
        with open(f"{folder}/uninstall.txt") as fh:
            names = [line.strip() for line in fh if line.strip() and not line.startswith("#")]
        if names:
            session.run_install("pip", "uninstall", "-y", *names)  # part of installing (--install-only too)
    known = ["--known", f"{folder}/findings.toml"] if os.path.exists(f"{folder}/findings.toml") else []
    for target in LIBRARIES[library]:
        session.run(
            "refsae",
            "conform",
            target,
            "--profile",
            os.environ.get("REFSAE_PROFILE", "ci"),
            "--json",
            f"conformance/reports/{target}.json",
            "--markdown",
            f"conformance/reports/{target}.md",
            *known,
            *session.posargs,
            success_codes=[0, 1],
        )
    if library != "refsae" and known:  # every bug's library-only reproduction, in this venv (CONF-19)
        session.run("python", "-m", "refsae.conform.known", folder)
    if os.path.exists(f"{folder}/make_checkpoints.py"):
        _checkpoints(session, library, folder)


def _checkpoints(session: nox.Session, library: str, folder: str) -> None:
    """The library's checkpoint fixtures regenerated by its own save code into a scratch folder and
    compared byte for byte with the committed ones (REFSAE_REGENERATE=1 writes them instead); then its
    loaders judged on every fixture (CKPT-28) and the checkpoint bugs' reproductions run."""
    fixtures = f"tests/fixtures/checkpoints/{library}"
    if os.environ.get("REFSAE_REGENERATE") == "1":
        session.run("python", f"{folder}/make_checkpoints.py", fixtures)
    else:
        scratch = session.create_tmp()
        fresh = os.path.join(scratch, "checkpoints", library)
        session.run("rm", "-rf", fresh, external=True)
        session.run("python", f"{folder}/make_checkpoints.py", fresh)
        session.run("diff", "-r", fresh, fixtures, external=True)  # the committed fixtures are its output
    session.run("python", "-m", "refsae.checkpoints.library_check", library)


@nox.session
def conformance_page(session: nox.Session) -> None:
    """Regenerate specs/conformance.md from conformance/reports/*.json and conformance/*/findings.toml
    (no library needed; run the conformance sessions first)."""
    _install(session)
    session.run("python", "-m", "refsae.conform.page", "conformance/reports", "specs/conformance.md")


@nox.session
def selftest(session: nox.Session) -> None:
    """The suite's power (CONF-8): every mutant flagged, no false alarm of the correct adapter under
    the ci profile and 20 other seeds; writes conformance/selftest.md."""
    _install(session)
    seeds = session.posargs[0] if session.posargs else "20"
    session.run(
        "python",
        "-m",
        "refsae.conform.selftest",
        "--seeds",
        seeds,
        "--markdown",
        "conformance/selftest.md",
        env=_env(),
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (PERF-4): the training step against its GEMM floor, SAELens' step (installed here,
    with conformance/sae_lens/'s pins) and a naive step, on CPU and, where one is visible, CUDA; the
    Matryoshka BatchTopK step beside its autograd formulation and SAELens's (PERF-7), the transcoder
    step beside its autograd formulation and sparsify's (PERF-8, session `bench_transcoder`), the
    latent-sharded step on 1, 2 and 4 processes and the capacity factor's rate (DIST-12..DIST-14); then
    the wall time of a full ci-profile conformance run (CONF-5). Writes benchmarks/results/step-*.json,
    README.md's performance table and conform.json, and prints the ratios. Timings are noisy: compare
    ratios of one run. `nox -s bench -- --config relu_4096x512x4096` passes arguments to bench_step.py
    (then only that is run, and nothing is written)."""
    session.install("torch==2.13.0")
    folder = "conformance/sae_lens"
    session.install("-c", f"{folder}/constraints.txt", "-r", f"{folder}/requirements.txt")
    session.install("-c", f"{folder}/constraints.txt", "-e", ".")
    session.run("python", "benchmarks/bench_step.py", *session.posargs, env=_env())
    probe = "import torch; print(torch.cuda.is_available())"
    if (session.run("python", "-c", probe, silent=True) or "").strip() == "True":
        session.run("python", "benchmarks/bench_step.py", "--device", "cuda", *session.posargs, env=_env())
    if not session.posargs:  # a full run: README's table follows the new results
        session.run("python", "benchmarks/bench_matryoshka.py", env=_env())  # PERF-7
        session.run("python", "benchmarks/bench_distributed.py", env=_env())  # DIST-12, DIST-14
        session.run("python", "benchmarks/shard_capacity.py", env=_env())  # DIST-13
        session.notify("bench_transcoder")  # PERF-8, in sparsify's environment
        session.run("python", "benchmarks/bench_step.py", "--readme", env=_env())
        session.run("python", "benchmarks/bench_conform.py", env=_env())


@nox.session
def bench_transcoder(session: nox.Session) -> None:
    """The transcoder step benchmark (PERF-8) in sparsify's environment (conformance/sparsify/'s pins),
    so that sparsify's own transcoder step is timed beside refsae's; writes
    benchmarks/results/transcoder-cpu.json (and -cuda where a GPU is visible). `nox -s bench` runs it
    after itself on a full run; arguments go to benchmarks/bench_transcoder.py."""
    session.install("torch==2.13.0")
    folder = "conformance/sparsify"
    session.install("-c", f"{folder}/constraints.txt", "-r", f"{folder}/requirements.txt")
    session.install("-c", f"{folder}/constraints.txt", "-e", ".")
    session.run("python", "benchmarks/bench_transcoder.py", *session.posargs, env=_env())
    probe = "import torch; print(torch.cuda.is_available())"
    if (session.run("python", "-c", probe, silent=True) or "").strip() == "True":
        session.run(
            "python", "benchmarks/bench_transcoder.py", "--device", "cuda", *session.posargs, env=_env()
        )
