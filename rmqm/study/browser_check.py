"""The built book in a headless browser: MathJax errors, horizontal overflow, screenshots.

What :mod:`rmqm.study.html_check` cannot see in the static files, because it happens in the
browser: MathJax's rendering of every formula (a TeX error becomes an ``mjx-merror`` node) and the
layout (a table or formula wider than the screen makes the whole page scroll sideways). Each page
is loaded at a desktop (1280 CSS px) and a phone (390 CSS px, mobile emulation) width from a local
HTTP server on 127.0.0.1, and a screenshot of the whole page (capped at ``MAX_SHOT_HEIGHT`` CSS px)
is saved as ``<page>-<width name>.png`` (``book/methods.html`` -> ``book_methods-phone.png``).

The browser is Debian's ``chromium`` driven through ``chromium-driver`` by Selenium (the book
extra), the same as ``tests/study/test_book.py``; nothing is downloaded
(``scripts/install-system-deps.sh`` installs both packages). Rules (``Problem.kind``):

``mathjax-error``  an ``mjx-merror`` element after MathJax finished (its ``data-mjx-error`` quoted);
``mathjax-unrendered``  a math element (class ``math``) with no ``mjx-container`` once MathJax
finished: MathJax did not even find the formula (unbalanced braces hide the closing ``\\)``), so
the reader sees its TeX;
``mathjax-timeout``  the page loads MathJax but it did not finish within ``timeout_s``;
``overflow``  ``document.documentElement.scrollWidth > clientWidth``; the detail names the visible
elements reaching furthest right (a heuristic to start looking from: MathJax's hidden assistive
MathML is left out, a formula is named by its ``mjx-container`` and section);
``wide-element``  a visible table, code box (``pre``, ``div.highlight``, ``div.cell_output``) or
figure (``figure``, ``img``) that is cut or scrolls inside the column: its own ``scrollWidth``
exceeds its ``clientWidth`` (the reader would have to scroll the box sideways), or its right
edge lies beyond the right edge of the text column (``article``, else ``main``). A wide box is
a defect even in a scrollable container: the reader of a printed page or a phone never sees
what is off to the right, so nothing is exempt. Elements not rendered (inside a folded cell) are
not measured;
``too-tall``  ``document.documentElement.scrollHeight`` above the width's budget in
:data:`HEIGHT_BUDGETS`;
``not-one-screen``  a page of :data:`ONE_SCREEN_PAGES` whose content (the text column,
``article``; the theme's previous/next links and footer below it do not count) ends below the
first screen at that width (the window's height in :data:`WIDTHS`): the reader has to scroll
to take it in;
``stdout``  a visible block of a notebook's standard output (myst-nb's ``div.output.stream``):
printed text is not prose, so a headline or a result left in ``print`` output is one the reader
must read in a monospace box (and scroll). Rule: stdout may only appear inside a folded cell
(tags ``hide-output`` or ``hide-cell``), where it is not rendered until the reader opens it; a
result belongs in a sentence with glued numbers, a Markdown table or a figure;
``load-error``  the page did not load.
"""

from __future__ import annotations

import base64
import functools
import http.server
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rmqm.study.html_check import Problem, html_pages

__all__ = ["WIDTHS", "HEIGHT_BUDGETS", "ONE_SCREEN_PAGES", "MAX_SHOT_HEIGHT", "browser_missing", "check_in_browser",
           "screenshot_name", "serve_folder", "start_browser", "wait_for_mathjax"]

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
#: name -> (width, height, mobile) in CSS pixels; the phone is an iPhone 12-15 sized screen
WIDTHS: Mapping[str, tuple[int, int, bool]] = {"desktop": (1280, 900, False), "phone": (390, 844, True)}
MAX_SHOT_HEIGHT = 12_000
#: The tallest page (CSS px of ``scrollHeight``) per width. At 1280 px, 12,000 px is about 13
#: screens of 900 px: a chapter that makes its argument in prose with a few figures and small
#: tables (the QuantEcon lectures' pattern) reads in that; a page taller than that is a dump of
#: tables or printed output, which belongs behind a fold or in a CSV download. The phone budget is
#: twice the desktop one: the text column is about half as wide (390 against ~750 px, so
#: twice the lines) while figures shrink with the column; the book's text pages measured 1.3 to
#: 1.7 times their desktop height on the phone.
HEIGHT_BUDGETS: Mapping[str, int] = {"desktop": 12_000, "phone": 24_000}

#: page -> the widths at which its content must fit the first screen (``not-one-screen``): the
#: results summary is the page a reader takes in at a glance, its long form folded.
ONE_SCREEN_PAGES: Mapping[str, tuple[str, ...]] = {"notebooks/00_results_summary.html": ("desktop",)}

#: Where the page's content ends, in CSS px from the top of the document.
_CONTENT_BOTTOM = """
const a = document.querySelector('article.bd-article') || document.querySelector('article')
  || document.querySelector('main') || document.body;
return Math.ceil(a.getBoundingClientRect().bottom + window.scrollY);
"""

_WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1], limit = arguments[0] * 1000, start = Date.now();
if (!document.querySelector('script[src*="mathjax" i], script[src*="tex-"]')) { done('none'); return; }
(function poll() {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) { mj.startup.promise.then(() => done('ok'), e => done('failed: ' + e)); }
  else if (Date.now() - start > limit) { done('timeout'); }
  else { setTimeout(poll, 100); }
})();
"""

_MATHJAX_ERRORS = """
const found = new Map();  // one per formula: CHTML's mjx-merror and the assistive MathML's merror
for (const e of document.querySelectorAll('mjx-merror, [data-mjx-error]')) {
  const formula = e.closest('mjx-container') || e;
  const tagged = e.hasAttribute('data-mjx-error') ? e : e.querySelector('[data-mjx-error]');
  const text = ((tagged && tagged.getAttribute('data-mjx-error')) || e.textContent || '').slice(0, 120);
  if (!found.has(formula) || tagged) { found.set(formula, text); }
}
return Array.from(found.values());
"""

_UNRENDERED = """
return Array.from(document.querySelectorAll('.math')).filter(e => !e.querySelector('mjx-container'))
  .map(e => e.textContent.trim().slice(0, 80));
"""

_OVERFLOW = """
const root = document.documentElement, width = root.clientWidth;
if (root.scrollWidth <= width) { return null; }
const out = e => { const r = e.getBoundingClientRect();
  return r.width > 0 && r.bottom > 0 && r.right > width + 1 && getComputedStyle(e).visibility !== 'hidden'; };
const seen = new Map();
for (const e of document.body.querySelectorAll('*')) {
  if (!out(e) || (e.parentElement && out(e.parentElement)) || e.closest('mjx-assistive-mml')) { continue; }
  const box = e.closest('mjx-container, table, pre, figure, img') || e;
  const section = box.closest('section[id]');
  const name = box.tagName.toLowerCase() + (box.id ? '#' + box.id : '') +
    (box.classList.length ? '.' + Array.from(box.classList).slice(0, 2).join('.') : '') +
    (section ? ' in section #' + section.id : '');
  seen.set(name, Math.max(seen.get(name) || 0, Math.round(e.getBoundingClientRect().right)));
}
const wide = Array.from(seen).sort((a, b) => b[1] - a[1]).slice(0, 4).map(([n, r]) => n + ' (to ' + r + ' px)');
return [root.scrollWidth, width, wide];
"""


_WIDE = """
const column = document.querySelector('article') || document.querySelector('main') || document.body;
const edge = column.getBoundingClientRect().right;
// a folded cell (a closed <details>) keeps its layout boxes in Chromium but shows nothing
const rendered = e => e.getClientRects().length > 0 && e.clientWidth > 0 && !e.closest('details:not([open])')
  && getComputedStyle(e).visibility !== 'hidden';
const out = [], flagged = new Set();  // flagged: boxes reported
for (const e of column.querySelectorAll('table, pre, div.highlight, div.cell_output, figure, img')) {
  if (!rendered(e)) { continue; }
  // report the outermost offender only: a cut pre inside a cut div.highlight is one problem
  let up = e.parentElement;
  while (up && !flagged.has(up)) { up = up.parentElement; }
  if (up) { continue; }
  const right = e.getBoundingClientRect().right, scroll = e.scrollWidth - e.clientWidth;
  if (scroll > 1 || right > edge + 1) {
    const section = e.closest('section[id]');
    const name = e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
      (e.classList.length ? '.' + Array.from(e.classList).slice(0, 2).join('.') : '') +
      (section ? ' in section #' + section.id : '');
    flagged.add(e);
    out.push(name + (scroll > 1 ? ': content ' + e.scrollWidth + ' px wide in a ' + e.clientWidth + ' px box'
                                : ': reaches ' + Math.round(right - edge) + ' px past the column'));
  }
}
return out;
"""

_STDOUT = """
return Array.from(document.querySelectorAll('div.output.stream, div.output.text_plain.stream'))
  .filter(e => e.getClientRects().length > 0 && e.offsetHeight > 0 && !e.closest('details:not([open])'))
  .map(e => { const s = e.closest('section[id]');
    return [s ? s.id : '', e.textContent.trim().split('\\n')[0].slice(0, 100)]; });
"""


def screenshot_name(page: str, width: str) -> str:
    """``book/methods.html``, ``phone`` -> ``book_methods-phone.png``."""
    stem = page[:-5] if page.endswith(".html") else page
    return f"{stem.replace('/', '_')}-{width}.png"


def browser_missing() -> str | None:
    """Why the browser check cannot run here (None when it can)."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        return (f"{CHROMIUM} or {CHROMEDRIVER} is missing: install the Debian packages chromium and "
                "chromium-driver (scripts/install-system-deps.sh)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: install the book extras (pip install -e '.[book]')"
    return None


@contextmanager
def serve_folder(folder: str | os.PathLike) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port) while in the block; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def wait_for_mathjax(driver: Any, timeout_s: float) -> str:
    """Wait until MathJax has typeset the loaded page: ``"ok"``, ``"none"`` (the page loads no
    MathJax), ``"timeout"`` or ``"failed: <error>"``."""
    return str(driver.execute_async_script(_WAIT_FOR_MATHJAX, timeout_s))


def start_browser() -> Any:
    """A headless Chromium driven by Selenium, offline (the caller quits it); see :func:`browser_missing`."""
    return _driver()


def _driver() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-sync", "--hide-scrollbars", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    return driver


def _screenshot(driver: Any, path: Path, width: int) -> None:
    """The whole page (up to ``MAX_SHOT_HEIGHT`` CSS px tall) as a PNG, through the DevTools protocol."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": min(height, MAX_SHOT_HEIGHT), "scale": 1},
    })
    path.write_bytes(base64.b64decode(shot["data"]))


#: Ends every CSS transition and animation at once: the theme slides its sidebars in on load,
#: and a page measured or photographed mid-slide is not the page a reader sees a moment later.
_SETTLE = """
const s = document.createElement('style');
s.textContent = '*, *::before, *::after { transition: none !important; animation: none !important; }';
document.head.appendChild(s);
return document.documentElement.offsetHeight;
"""


def _check_loaded(driver: Any, page: str, width: str, timeout_s: float,
                  height_budget: int | None = None, one_screen: int | None = None) -> list[Problem]:
    problems = []
    driver.execute_script(_SETTLE)
    state = wait_for_mathjax(driver, timeout_s)
    if state == "timeout" or str(state).startswith("failed"):
        problems.append(Problem(page, "mathjax-timeout", f"{width}: MathJax did not finish ({state})"))
    for error in driver.execute_script(_MATHJAX_ERRORS):
        problems.append(Problem(page, "mathjax-error", f"{width}: MathJax could not render a formula: {error!r}"))
    if state == "ok":
        for tex in driver.execute_script(_UNRENDERED):
            problems.append(Problem(page, "mathjax-unrendered", f"{width}: MathJax left a formula as TeX "
                                    f"(unbalanced braces or delimiters?): {tex!r}"))
    overflow = driver.execute_script(_OVERFLOW)
    if overflow:
        scroll, client, wide = overflow
        problems.append(Problem(page, "overflow", f"{width}: the page is {scroll} px wide in a {client} px "
                                f"window (scrolls sideways); widest: {', '.join(wide) or '?'}"))
    for wide_box in driver.execute_script(_WIDE):
        problems.append(Problem(page, "wide-element", f"{width}: {wide_box} (cut or scrolled sideways "
                                "in the column: wrap it, shorten it or fold it)"))
    if height_budget is not None:
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        if height > height_budget:
            problems.append(Problem(page, "too-tall", f"{width}: the page is {height:,} px tall, over the budget "
                                    f"of {height_budget:,} px (rmqm.study.browser_check.HEIGHT_BUDGETS): fold "
                                    "or move tables and printed output"))
    if one_screen is not None:
        bottom = int(driver.execute_script(_CONTENT_BOTTOM))
        if bottom > one_screen:
            problems.append(Problem(page, "not-one-screen", f"{width}: the content ends at {bottom:,} px, below "
                                    f"the first screen of {one_screen:,} px (rmqm.study.browser_check."
                                    "ONE_SCREEN_PAGES): fold the detail one click away"))
    for section, line in driver.execute_script(_STDOUT):
        problems.append(Problem(page, "stdout", f"{width}: printed output shown unfolded"
                                + (f" in section #{section}" if section else "") + f": {line!r} (write it "
                                "as a sentence with glued numbers, or fold the cell with hide-output)"))
    return problems


def _is_redirect(path: Path) -> bool:
    return 'http-equiv="refresh"' in path.read_text(errors="replace")[:2000].lower()


def check_in_browser(
    folder: str | os.PathLike,
    pages: Sequence[str] | None = None,
    screenshots: str | os.PathLike | None = None,
    *,
    widths: Mapping[str, tuple[int, int, bool]] = WIDTHS,
    timeout_s: float = 30.0,
    height_budgets: Mapping[str, int] | None = HEIGHT_BUDGETS,
    heights: dict[tuple[str, str], int] | None = None,
    one_screen: Mapping[str, Sequence[str]] | None = ONE_SCREEN_PAGES,
) -> list[Problem]:
    """Load each page of a built book in headless Chromium at each width; the problems found.

    Args:
        folder: the book's ``_build/html``.
        pages: paths relative to ``folder``; default :func:`rmqm.study.html_check.html_pages`
            less the redirect pages (``index.html``).
        screenshots: a folder for ``<page>-<width>.png`` (created); None: no screenshots.
        widths: name -> (width, height, mobile emulation), CSS pixels.
        timeout_s: how long to wait for MathJax on one page.
        height_budgets: width name -> the tallest page allowed (``too-tall``); a width not
            named, or None, has no budget.
        heights: when given, filled with ``(page, width name) -> scrollHeight`` (CSS px) of
            every page loaded, for reports of page heights.
        one_screen: page -> width names at which its content must end within the first screen
            (``not-one-screen``); None: no such page.

    Raises:
        RuntimeError: Chromium, its driver or selenium is missing (:func:`browser_missing` says
            which); check it first to skip instead.
    """
    folder = Path(folder)
    missing = browser_missing()
    if missing:
        raise RuntimeError(f"cannot run the browser check: {missing}")
    if pages is None:
        pages = [p for p in html_pages(folder) if not _is_redirect(folder / p)]
    shots = Path(screenshots) if screenshots is not None else None
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
    problems: list[Problem] = []
    driver = _driver()
    try:
        with serve_folder(folder) as base:
            for name, (width, height, mobile) in widths.items():
                driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                    "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
                for page in pages:
                    try:
                        driver.get(f"{base}/{page}")
                    except Exception as err:  # selenium's TimeoutException and WebDriverException
                        problems.append(Problem(page, "load-error", f"{name}: {type(err).__name__}: {err}"))
                        continue
                    budget = (height_budgets or {}).get(name)
                    screen = height if name in (one_screen or {}).get(page, ()) else None
                    problems += _check_loaded(driver, page, name, timeout_s, budget, screen)
                    if heights is not None:
                        heights[(page, name)] = int(driver.execute_script(
                            "return document.documentElement.scrollHeight"))
                    if shots is not None:
                        _screenshot(driver, shots / screenshot_name(page, name), width)
    finally:
        driver.quit()
    return problems
