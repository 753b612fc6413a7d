"""The built documentation site (specs/packaging.md, PKG-5), opened in headless Chromium as a reader
would: the math is rendered by the site's own KaTeX (no raw TeX left, no request leaves the machine),
clause IDs are links that land on their clause, and a screenshot of each page is saved.

Needs the site built (`nox -s docs` builds it, then runs this module with `-m docs_site`) and Debian's
Chromium (`/usr/bin/chromium`; `.ci/run` installs it): the `tests` session deselects the module."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("REFSAE_SITE", ROOT / "build" / "site"))
SHOTS = Path(os.environ.get("REFSAE_SCREENSHOTS", ROOT / "build" / "screenshots"))
CHROMIUM = os.environ.get("REFSAE_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
"""The flags under which Chromium runs on a machine with no network (and as root)."""

pytestmark = pytest.mark.docs_site


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    assert (SITE / "index.html").is_file(), f"no built site in {SITE}: run `nox -s docs`"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def _open(browser: Any, url: str, outside: list[str]) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    host = url.split("/")[2]
    page.on(
        "request",
        lambda r: outside.append(r.url) if host not in r.url and not r.url.startswith("data:") else None,
    )
    page.goto(url, wait_until="networkidle")
    return page


@pytest.mark.parametrize("path", ["specs/encode.html", "specs/jumprelu.html", "specs/losses.html"])
def test_the_math_is_rendered_by_the_sites_own_katex(browser: Any, server: str, path: str) -> None:
    """PKG-5: every display formula became KaTeX markup; no `\\[`, `\\(` or `\\begin` is left in the
    text a reader sees; no request went anywhere but the local server."""
    outside: list[str] = []
    page = _open(browser, f"{server}/{path}", outside)
    formulas = page.locator(".arithmatex")
    assert formulas.count() >= 1
    assert page.locator(".arithmatex .katex").count() == formulas.count()
    text = page.locator("article").inner_text()
    assert "\\begin" not in text and "\\[" not in text and "\\(" not in text and "\\frac" not in text
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{path.replace('/', '_')}.png"), full_page=False)
    assert outside == [], outside


def test_clause_links_on_the_conformance_page_land_on_their_clause(browser: Any, server: str) -> None:
    """PKG-5: a clause ID in the conformance page's tables links to its definition, whose anchor exists;
    following one shows that clause."""
    outside: list[str] = []
    page = _open(browser, f"{server}/specs/conformance.html", outside)
    links = page.locator("article a[href*='.html#']").evaluate_all(
        "els => els.map(e => e.getAttribute('href'))"
    )
    clause_links = [h for h in links if h.split("#")[1][:1].isupper() and "-" in h.split("#")[1]]
    assert len(clause_links) > 50, clause_links[:5]
    target = next(h for h in clause_links if h.endswith("#JUMP-4"))
    page.goto(f"{server}/specs/{target}", wait_until="networkidle")
    anchor = page.locator("#JUMP-4")
    assert anchor.count() == 1
    item = page.locator("li", has=anchor).first.inner_text()
    assert item.startswith("JUMP-4") and "Pseudo-derivative of the step" in item, item
    page.screenshot(path=str(SHOTS / "specs_conformance_JUMP-4.png"))
    assert outside == [], outside


def test_the_search_index_and_the_api_reference_are_built(server: str, browser: Any) -> None:
    """PKG-5: the search index holds the spec pages; the API page renders the oracle's docstrings,
    their doctests as code."""
    outside: list[str] = []
    page = _open(browser, f"{server}/api/refsae.oracle.html", outside)
    text = page.locator("article").inner_text()
    assert "encode" in text and "pre_activations" in text
    assert page.locator("article pre code").count() > 10  # the doctests, fenced by the griffe extension
    index = (SITE / "search" / "search_index.json").read_text(encoding="utf-8")
    assert "specs/encode.html" in index and "JUMP-4" in index
    assert outside == [], outside
