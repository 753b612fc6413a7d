"""mkdocs hooks of the documentation site (specs/packaging.md, PKG-5): the site is made of the
repository's own Markdown, where it lives, not of copies.

- `on_files`: README.md (the home page), specs/*.md, the conformance reports, the self-test and the
  library notes, any repository file those pages link to (served as is), and one API page per
  public module (mkdocstrings).
- `on_page_markdown`: every clause definition (`- **ENC-1** …`) gets the anchor `#ENC-1`, and every
  mention of a clause outside code is a link to it; a link to a folder goes to its README.md.
- `on_post_build`: the KaTeX files (installed from the npm registry by `nox -s docs`, path in
  $REFSAE_KATEX) are served from the site itself, so math renders with no network.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[1]
REPORTS = "conformance/reports"
PAGES = ("README.md", "specs/*.md", "conformance/*.md", "conformance/*/README.md", f"{REPORTS}/*.md")
API = {
    "refsae.oracle": "The definitions: every operation in NumPy, float64.",
    "refsae.torch": "The PyTorch implementation, checked against the oracle.",
    "refsae.conventions": "The named conventions.",
    "refsae.conform": "The conformance suite's entry points: `conform`, `load`, adapters.",
    "refsae.checking.clauses": "The clause index.",
}
"""Module -> one line: the API reference pages (api/MODULE.md)."""
KATEX_FILES = ("katex.min.js", "katex.min.css", "contrib/auto-render.min.js", "fonts")

_LINK = re.compile(r"\]\(([^)\s#]+)(#[^)\s]*)?\)")
_DEFINITION = re.compile(r"^(\s*- )\*\*([A-Z]+-\d+)\*\*")
_MENTION = re.compile(r"(?<![\w\[#/.-])([A-Z]{2,5}-\d+)(?![\w\]-])")
_FENCE = re.compile(r"^\s*(```|~~~|\$\$)")
"""A code fence or a display-math block's delimiter: nothing between two is linked."""

_clauses: dict[str, str] = {}
"""Clause ID -> the site path of its page (specs/encode.md)."""
_site: set[str] = set()
"""The site paths of every page and file."""


def _reports() -> list[str]:
    return sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / REPORTS).glob("*.md"))


def _libraries() -> list[str]:
    return sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("conformance/*/README.md"))


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """The clause index; the nav's Conformance section gets each library's notes and each report."""
    from refsae.checking.clauses import texts

    _clauses.clear()
    _clauses.update({c: f"specs/{v['page']}" for c, v in texts(ROOT).items()})
    for section in config["nav"]:
        if isinstance(section, dict) and "Conformance" in section:
            section["Conformance"] += [
                {"Libraries": [{p.split("/")[1]: p} for p in _libraries()]},
                {"Reports": [f"{REPORTS}/README.md"] + [{Path(p).stem: p} for p in _reports()]},
            ]
    return config


def _file(path: str, config: MkDocsConfig) -> File:
    return File(path, str(ROOT), config["site_dir"], config["use_directory_urls"])


def on_files(files: Files, config: MkDocsConfig) -> Files:
    pages = sorted({p.relative_to(ROOT).as_posix() for g in PAGES for p in ROOT.glob(g)})
    for path in pages:
        files.append(_file(path, config))
    linked: set[str] = set()
    for path in pages:
        for target, _ in _LINK.findall((ROOT / path).read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
            if (ROOT / resolved).is_file() and not resolved.endswith(".md") and not resolved.startswith(".."):
                linked.add(resolved)
    for path in sorted(linked):
        files.append(_file(path, config))
    listing = "\n".join(f"- [`{Path(p).stem}`]({Path(p).name})" for p in _reports())
    content = (
        f"# Conformance reports\n\nOne per target, as `refsae conform --markdown` writes them:\n\n{listing}\n"
    )
    files.append(File.generated(config, f"{REPORTS}/README.md", content=content))
    for module, summary in API.items():
        content = f"# `{module}`\n\n{summary}\n\n::: {module}\n"
        files.append(File.generated(config, f"api/{module}.md", content=content))
    _site.clear()
    _site.update(f.src_uri for f in files)
    return files


def _relative(target: str, page: Page) -> str:
    return os.path.relpath(target, os.path.dirname(page.file.src_uri) or ".")


def _link_mentions(text: str, page: Page) -> str:
    def link(m: re.Match[str]) -> str:
        clause = m.group(1)
        if clause not in _clauses:
            return clause
        target = "" if _clauses[clause] == page.file.src_uri else _relative(_clauses[clause], page)
        return f"[{clause}]({target}#{clause})"

    parts = text.split("`")
    return "`".join(_MENTION.sub(link, p) if i % 2 == 0 else p for i, p in enumerate(parts))


def _folder_links(line: str, page: Page) -> str:
    """`](../reports/)` -> its README.md when it has one."""

    def fix(m: re.Match[str]) -> str:
        target, anchor = m.group(1), m.group(2) or ""
        if "://" in target or not target.endswith("/"):
            return m.group(0)
        folder = os.path.normpath(os.path.join(os.path.dirname(page.file.src_uri), target))
        if f"{folder}/README.md" in _site:
            return f"]({target}README.md{anchor})"
        raise PluginError(f"{page.file.src_uri}: link to the folder {target} (no README.md to show)")

    return _LINK.sub(fix, line)


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    out, fenced = [], False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        if fenced or _FENCE.match(line) or line.lstrip().startswith("#"):
            out.append(line)
            continue
        m = _DEFINITION.match(line)
        rest = line
        head = ""
        if m and m.group(2) in _clauses:
            clause = m.group(2)
            head = f'{m.group(1)}<a id="{clause}" class="clause"></a>**[{clause}](#{clause})**'
            rest = line[m.end() :]
        out.append(head + _link_mentions(_folder_links(rest, page), page))
    return "\n".join(out) + "\n"


def on_post_build(config: MkDocsConfig, **_: Any) -> None:
    katex = os.environ.get("REFSAE_KATEX", "")
    if not katex or not (Path(katex) / "katex.min.js").is_file():
        raise PluginError(
            "REFSAE_KATEX must name KaTeX's dist/ folder (nox -s docs installs katex from the npm "
            f"registry and sets it); got {katex!r}"
        )
    target = Path(config["site_dir"]) / "assets" / "katex"
    for name in KATEX_FILES:
        source, dest = Path(katex) / name, target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(source, dest)
