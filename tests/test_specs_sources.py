"""Specs and docstrings cite sources by name and link, never by the number of a background document
that readers of the repository do not have (the list of sources is in specs/README.md)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A numbered background document: the word, then a three-digit number starting with 0 (across a line
# break too). Random seeds ("seed 1", "manual_seed(0)") do not match.
NUMBERED_CITATION = re.compile(r"\bseeds?\s+0\d\d", re.IGNORECASE)

SUFFIXES = (".md", ".py", ".toml")
EXCLUDED_FILES = {"specs/conformance.md"}  # generated from conformance/reports and findings.toml
EXCLUDED_DIRS = (
    "conformance/reports/",  # generated
)


def _tracked_files() -> list[str]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
        ).stdout
        return [name for name in out.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):  # no git: every file under the root
        skip = {".git", ".nox", ".venv", "__pycache__"}
        return [
            p.relative_to(ROOT).as_posix()
            for p in ROOT.rglob("*")
            if p.is_file() and not skip.intersection(p.relative_to(ROOT).parts)
        ]


def _checked_files() -> list[str]:
    return sorted(
        name
        for name in _tracked_files()
        if name.endswith(SUFFIXES)
        and name not in EXCLUDED_FILES
        and not name.startswith(EXCLUDED_DIRS)
        and (ROOT / name).is_file()
    )


def test_no_tracked_text_file_cites_a_source_by_a_seed_number() -> None:
    hits = []
    for name in _checked_files():
        text = (ROOT / name).read_text(encoding="utf-8")
        for match in NUMBERED_CITATION.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            hits.append(f"{name}:{line}: {match.group(0)!r}")
    assert hits == [], "cite the source by name and link (specs/README.md, Sources):\n" + "\n".join(hits)


def test_the_check_covers_the_specs_and_the_readme_but_not_the_generated_page() -> None:
    names = _checked_files()
    assert "specs/README.md" in names and "README.md" in names and "specs/constraints.md" in names
    assert "specs/conformance.md" not in names


def test_the_pattern_finds_a_numbered_document_and_not_a_random_seed() -> None:
    number = "0" + "04"  # spelt in two pieces so that this file passes the check above
    assert NUMBERED_CITATION.search(f"as seed {number} shows")
    assert NUMBERED_CITATION.search(f"(seeds {number})")
    assert NUMBERED_CITATION.search(f"the naive step of Seed\n{number}")
    assert not NUMBERED_CITATION.search("torch.manual_seed(0); seed 1; 20 seeds; seed=0")


def test_the_sources_section_of_the_specs_links_each_of_the_five_sources() -> None:
    text = (ROOT / "specs" / "README.md").read_text(encoding="utf-8")
    section = text.split("## Sources", 1)[1].split("\n## ", 1)[0]
    links = re.findall(r"\]\((https://[^)\s]+)\)", section)
    assert len(links) == 5
    for host in (
        "ai-safety-foundation.github.io/sparse_autoencoder/reference/autoencoder/components/unit_norm_decoder",
        "ai-safety-foundation.github.io/sparse_autoencoder/reference/autoencoder/lightning",
        "github.com/OSU-NLP-Group/saev",
        "adamkarvonen.github.io",
        "github.com/callummcdougall/ARENA_3.0",
    ):
        assert any(host in link for link in links), host
