"""End to end: the tiny profile through papermill and jupyter-book, then the built book in a
headless Chromium served on 127.0.0.1.

Slow (a few minutes on 2 CPU cores): it trains the tiny zoo and executes every notebook in a
temporary build folder, so nothing cached in ./build is reused or touched.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest
import yaml

pytest.importorskip("papermill")
pytest.importorskip("jupyter_book")

from rmqm.study.book import BookCheckFailed, build_book, stage_book
from rmqm.study.browser_check import WIDTHS, browser_missing, check_in_browser, screenshot_name
from rmqm.study.html_check import check_html_book
from rmqm.study.pdf import PDF_NAME, pdf_missing
from rmqm.study.run import run_study

pytestmark = [pytest.mark.slow, pytest.mark.book]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

# Console messages of the book's own theme that are harmless (matched as substrings):
CONSOLE_ALLOWLIST = (
    # sphinx-thebe 0.3 registers its inline config script twice with sphinx-book-theme, so the
    # second `const THEBE_JS_URL` declaration fails; thebe is off (launch_buttons.thebe: false).
    "Identifier 'THEBE_JS_URL' has already been declared",
    # pydata-sphinx-theme logs this with console.error on a first visit (no stored light/dark mode).
    "Got invalid theme mode",
)


def toc_pages() -> list[str]:
    """HTML paths (relative to the book's html folder) of every page in _toc.yml."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    return ["index.html"] + [f"{f}.html" for f in files]


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> dict:
    """The tiny study executed and built as ``make book`` builds it (checks and screenshots
    included); the problems the checks found are kept for ``test_book_has_no_reader_problems``
    instead of failing every test of the module."""
    build = tmp_path_factory.mktemp("study-build")
    result = run_study("tiny", root=ROOT, build_dir=build, build=False, progress=False, log=lambda s: None)
    out = build / "tiny"
    try:
        html, problems = build_book(stage_book(ROOT, out), log=lambda s: None, screenshots=SCREENSHOTS), []
    except BookCheckFailed as err:
        html, problems = err.html, err.problems
    return {"runs": result.runs, "html": html, "out": out, "problems": problems}


def outputs(nb: dict) -> list[dict]:
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]


def test_every_notebook_executed_with_figures_and_tables(book):
    runs = book["runs"]
    assert sorted(r.name for r in runs) == [p.stem for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]
    assert runs[-1].name == "00_results_summary"  # it reads every other chapter's results: it runs last
    assert all(r.status == "executed" and r.wall_s > 0 for r in runs)
    for run in runs:
        nb = json.loads(run.output.read_text())
        outs = outputs(nb)
        figures = [o for o in outs if "image/png" in o.get("data", {})]
        tables = [o for o in outs if "<table" in "".join(o.get("data", {}).get("text/html", ""))]
        errors = [o for o in outs if o["output_type"] == "error"]
        stderr = [o for o in outs if o.get("name") == "stderr"]
        assert figures or run.name == "00_results_summary", f"{run.name} produced no figure"  # summary: a table
        assert tables, f"{run.name} produced no result table"
        assert not errors and not stderr, f"{run.name}: {errors or stderr}"
        tags = [t for c in nb["cells"] for t in c["metadata"].get("tags", [])]
        # both parameter cells and the launch cell (a no-op in the build) left out of the book
        assert tags.count("remove-cell") == 3
    manifest = json.loads((book["out"] / "study.json").read_text())
    assert {n: e["status"] for n, e in manifest["notebooks"].items()} == {r.name: "ok" for r in runs}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.refs.append((tag, name, value))


def test_html_pages_exist_and_link(book):
    html: Path = book["html"]
    pages = toc_pages()
    for page in pages:
        assert (html / page).is_file(), f"missing page {page}"
    assert "url=book/intro.html" in (html / "index.html").read_text()  # index redirects to the intro
    assert (html / "favicon.ico").is_file()  # what a browser fetches for the redirect page
    nav = {urldefrag(urljoin("book/intro.html", v))[0] for t, a, v in _parse(html / "book" / "intro.html") if a == "href"}
    assert set(pages) - {"index.html", "book/intro.html"} <= nav, "the navigation misses pages"
    for page in pages:
        for tag, attr, value in _parse(html / page):
            url = urlparse(value)
            if url.scheme in ("http", "https"):
                # resources must be local; only plain links may point outside (repository, Binder, ...)
                assert tag == "a" or (tag == "link" and attr == "href" and "canonical" in _rel(html / page, value)), \
                    f"{page} loads {value} from outside"
                continue
            if url.scheme in ("mailto", "data", "javascript") or not url.path:
                continue
            target = (html / page).parent / url.path
            if target.name == PDF_NAME and pdf_missing():
                continue  # the PDF is skipped where Chromium or poppler-utils is missing
            assert target.resolve().exists(), f"{page}: broken link {value}"
    repro = (html / "book" / "reproducibility.html").read_text()
    for run in book["runs"]:
        assert run.name in repro
    assert "Wall time per notebook" in repro and "tiny" in repro


def _parse(path: Path) -> list[tuple[str, str, str]]:
    parser = _Links()
    parser.feed(path.read_text())
    return parser.refs


def _rel(path: Path, href: str) -> str:
    m = re.search(r'<link[^>]*rel="([^"]*)"[^>]*href="' + re.escape(href), path.read_text())
    return m.group(1) if m else ""


def test_every_chapter_launches_its_own_notebook_on_colab_and_binder(book):
    """The launch buttons open the repository's notebook of the page (whose launch cell installs rmqm,
    tests/study/test_launch.py); the launch cell itself is not on the page."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    org_repo = urlparse(config["repository"]["url"]).path.strip("/")
    branch = config["repository"]["branch"]
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        page = (book["html"] / "notebooks" / f"{notebook.stem}.html").read_text()
        path = f"notebooks/{notebook.name}"
        assert f"https://colab.research.google.com/github/{org_repo}/blob/{branch}/{path}" in page, notebook.name
        assert f"https://mybinder.org/v2/gh/{org_repo}/{branch}?urlpath=tree/{path}" in page, notebook.name
        assert "run_upstream" not in page, f"{notebook.name}: the launch cell is shown on the page"


def test_mathjax_is_served_locally(book):
    html: Path = book["html"]
    page = (html / "book" / "methods.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', page)
    assert scripts and all(not s.startswith(("http:", "https:", "//")) for s in scripts), scripts
    local = (html / "book" / scripts[0].split("?")[0]).resolve()
    assert local.is_file() and local.stat().st_size > 100_000
    assert (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()


@pytest.fixture(scope="module")
def server(book):
    html = str(book["html"])

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=html))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian packages chromium and chromium-driver are not installed "
                    "(scripts/install-system-deps.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-sync", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
const start = Date.now();
(function poll() {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) { mj.startup.promise.then(() => done(true), () => done(false)); }
  else if (Date.now() - start > 20000) { done(false); }
  else { setTimeout(poll, 100); }
})();
"""

BROKEN_IMAGES = """
return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
"""


def test_pages_load_in_chromium_offline(book, server, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.get_log("performance")  # drop anything from browser start-up
    browser.get_log("browser")
    problems: list[str] = []
    internal_links: set[str] = set()
    for page in toc_pages():
        browser.get(f"{server}/{page}")
        if page == "index.html":  # a meta-refresh redirect to the introduction
            WebDriverWait(browser, 20).until(lambda d: d.current_url.endswith("book/intro.html"))
        WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
        has_math = "class=\"math" in browser.page_source or "\\(" in browser.page_source
        mathjax_ok = browser.execute_async_script(WAIT_FOR_MATHJAX)
        n_math = browser.execute_script("return document.querySelectorAll('mjx-container').length")
        if has_math and not (mathjax_ok and n_math > 0):
            problems.append(f"{page}: math not rendered by MathJax ({n_math} mjx-container elements)")
        broken = browser.execute_script(BROKEN_IMAGES)
        problems += [f"{page}: broken image {src}" for src in broken]
        for href in browser.execute_script("return Array.from(document.links).map(a => a.href)"):
            if href.startswith(server):
                internal_links.add(urldefrag(href)[0])
        for entry in browser.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                url = message["params"]["request"]["url"]
                if not url.startswith((server, "data:", "blob:", "about:", "chrome")):
                    problems.append(f"{page}: request leaves the machine: {url}")
        for entry in browser.get_log("browser"):
            if entry["level"] == "SEVERE" and not any(a in entry["message"] for a in CONSOLE_ALLOWLIST):
                problems.append(f"{page}: console error: {entry['message']}")
    for link in sorted(internal_links):
        try:
            with urllib.request.urlopen(link, timeout=10) as resp:
                if resp.status != 200:
                    problems.append(f"broken link {link}: HTTP {resp.status}")
        except OSError as err:
            problems.append(f"broken link {link}: {err}")
    assert not problems, "\n".join(problems)


def test_pdf_of_the_book(book):
    """The whole book printed to one PDF (its checks are among the book's problems), linked from the intro."""
    if pdf_missing():
        pytest.skip(f"no PDF: {pdf_missing()}")
    pdf = book["html"] / PDF_NAME
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 100_000
    assert f'href="../{PDF_NAME}"' in (book["html"] / "book" / "intro.html").read_text()


def test_book_has_no_reader_problems(book):
    """What rmqm.study.html_check and rmqm.study.browser_check find in the real tiny book."""
    assert not book["problems"], "\n".join(str(p) for p in book["problems"])


def test_screenshots_of_every_page_at_both_widths(book):
    if browser_missing():
        pytest.skip(f"no browser check: {browser_missing()}")
    for page in toc_pages()[1:]:  # index.html is a redirect to the introduction
        for width in WIDTHS:
            shot = SCREENSHOTS / screenshot_name(page, width)
            assert shot.is_file() and shot.stat().st_size > 5_000, f"no screenshot {shot}"


def test_planted_control_character_and_mathjax_errors_are_caught(book, tmp_path):
    """A backspace in a paragraph, a double exponent and an unclosed brace in two formulas, planted
    into a copy of the built methods page: the static check finds the first; in the browser MathJax
    marks the second as an error and does not find the third (its TeX stays on the page)."""
    copy = shutil.copytree(book["html"], tmp_path / "html")
    page = copy / "book" / "methods.html"
    text = page.read_text()
    first_p = text.index("<p>", text.index("<article"))
    text = text[:first_p + 3] + "\b" + text[first_p + 3:]
    broken = iter([r"\(x^{2}^{3}\)", r"\(\frac{a}{\)"])
    text, n = re.subn(r'(<span class="math notranslate nohighlight">)\\\(.*?\\\)(</span>)',
                      lambda m: m.group(1) + next(broken) + m.group(2), text, count=2)
    assert n == 2, "the methods page has fewer than two inline formulas to break"
    page.write_text(text)
    before = {(p.page, p.kind, p.detail) for p in book["problems"]}
    new = [p for p in check_html_book(copy) if (p.page, p.kind, p.detail) not in before]
    assert [(p.page, p.kind) for p in new] == [("book/methods.html", "control-char")], new
    assert "U+0008" in new[0].detail
    if browser_missing():
        pytest.skip(f"no browser check: {browser_missing()}")
    found = check_in_browser(copy, ["book/methods.html"], widths={"desktop": WIDTHS["desktop"]})
    assert sorted(p.kind for p in found) == ["mathjax-error", "mathjax-unrendered"], found
    assert "Double exponent" in next(p.detail for p in found if p.kind == "mathjax-error")
    assert r"\frac{a}{" in next(p.detail for p in found if p.kind == "mathjax-unrendered")
