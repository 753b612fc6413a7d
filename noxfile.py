"""The matrix: tests (CPU), tests_cuda, typecheck, lint, docs, check (the main job).

Every session installs torch==2.13.0 first and passes constraints.txt (torch==2.13.0) to every
pip call: any other torch version drags several GB of CUDA packages onto a CPU machine.

    nox -s tests typecheck lint docs     # what CI runs (.ci/run)
    nox -s check                         # the main job: refsae.torch against the oracle, per operation
    nox -s tests_cuda                    # the same suite on CUDA; skips with a message without a GPU

`REFSAE_PROFILE` (dev | ci | thorough) picks the hypothesis profile; sessions default to ci.
"""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "typecheck", "lint", "docs"]

CONSTRAINTS = ("-c", "constraints.txt")


def _install(session: nox.Session, extras: str = "dev") -> None:
    session.install("torch==2.13.0")
    session.install(*CONSTRAINTS, "-e", f".[{extras}]")


def _env(**extra: str) -> dict[str, str]:
    return {"REFSAE_PROFILE": os.environ.get("REFSAE_PROFILE", "ci"), **extra}


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite on CPU, two workers, with the spec pages' examples."""
    _install(session)
    session.run(
        "pytest",
        "-n",
        os.environ.get("REFSAE_WORKERS", "2"),
        "-q",
        "tests",
        "--doctest-glob=*.md",
        "specs",
        *session.posargs,
        env=_env(),
    )


@nox.session
def tests_cuda(session: nox.Session) -> None:
    """The same suite on a CUDA device (REFSAE_DEVICE=cuda); skips with a message without one."""
    _install(session)
    probe = "import torch; print(torch.cuda.is_available())"
    available = session.run("python", "-c", probe, silent=True)
    if not available or available.strip() != "True":
        session.skip("no CUDA device: torch.cuda.is_available() is False on this machine")
    session.run("pytest", "-q", "tests", *session.posargs, env=_env(REFSAE_DEVICE="cuda"))
    session.run("refsae", "check", "--device", "cuda", env=_env())


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over refsae/, tests/ and this file."""
    _install(session)
    session.run("mypy", "--strict")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff."""
    session.install(*CONSTRAINTS, "ruff>=0.5")
    session.run("ruff", "check", ".")


@nox.session
def docs(session: nox.Session) -> None:
    """The spec pages' examples run as doctests, and every clause is cited by a test (coverage 100%)."""
    _install(session)
    session.run("pytest", "-q", "--doctest-glob=*.md", "specs", "--doctest-modules", "refsae", env=_env())
    session.run("refsae", "clauses")


@nox.session
def check(session: nox.Session) -> None:
    """The main job: refsae.torch against the oracle, one table row per operation and dtype."""
    _install(session, extras="dev")
    session.run("refsae", "check", *session.posargs, env=_env())
