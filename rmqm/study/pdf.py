"""The book as one PDF, for readers who print or archive it, built offline and checked.

Chromium prints every page of the built HTML book, in the order of the table of contents, after
MathJax has typeset it (the DevTools protocol's ``Page.printToPDF``, A4, the theme's print style:
no sidebars), and poppler's ``pdfunite`` merges the pages into ``<html>/rmqm-study.pdf`` (the intro
links to it). :func:`check_pdf` reads it back with ``pdfinfo`` and ``pdftotext``; its rules
(:class:`rmqm.study.html_check.Problem` kinds):

``pdf-missing-page``  the PDF has fewer pages than the book has pages, or the text of a book
page's title (its ``h1``) is not found in it;
``pdf-raw-math``  TeX in the PDF's text (``$$``, ``\\(``, ``\\[``, ``\\frac``, ``\\begin`` and the
like): a formula printed before MathJax typeset it, or one it never saw.

The tools are Debian's ``chromium``, ``chromium-driver`` and ``poppler-utils``
(``scripts/install-system-deps.sh``); nothing is downloaded.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from rmqm.study.browser_check import browser_missing, serve_folder, start_browser, wait_for_mathjax
from rmqm.study.html_check import Problem

__all__ = ["PDF_NAME", "pdf_missing", "toc_pages", "print_book", "check_pdf"]

#: The PDF's file name in the book's HTML folder.
PDF_NAME = "rmqm-study.pdf"
_TOOLS = ("pdfunite", "pdfinfo", "pdftotext")
_RAW_TEX = re.compile(r"\$\$|\\[()\[\]]|\\(?:frac|begin|end|mathbb|mathrm|operatorname|sum|sqrt|left|right|"
                      r"alpha|beta|gamma|epsilon|varepsilon|mu|sigma|cdot|top|in|le|ge)\b")
#: A4 in inches, with 0.5 inch margins; backgrounds printed (code boxes, admonitions).
_PRINT = {"paperWidth": 8.27, "paperHeight": 11.69, "marginTop": 0.5, "marginBottom": 0.5,
          "marginLeft": 0.5, "marginRight": 0.5, "printBackground": True, "preferCSSPageSize": False}
_TITLE = "const h = document.querySelector('article h1, main h1, h1'); return h ? h.textContent : '';"


def pdf_missing() -> str | None:
    """Why the PDF cannot be built here (None when it can)."""
    missing = [t for t in _TOOLS if shutil.which(t) is None]
    if missing:
        return (f"{', '.join(missing)} not found: install the Debian package poppler-utils "
                "(scripts/install-system-deps.sh)")
    return browser_missing()


def toc_pages(book_root: str | os.PathLike) -> list[str]:
    """The HTML pages of a staged book in reading order: the root, then every chapter of
    ``_toc.yml`` (``book/intro`` -> ``book/intro.html``).

    Raises:
        FileNotFoundError: no ``_toc.yml`` in ``book_root``.
    """
    path = Path(book_root) / "_toc.yml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: pass the staged book's root")
    toc = yaml.safe_load(path.read_text())
    files = [toc["root"]] + [ch["file"] for part in toc.get("parts", []) for ch in part.get("chapters", [])]
    files += [ch["file"] for ch in toc.get("chapters", [])]
    return [f"{f}.html" for f in files]


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout


def print_book(html: str | os.PathLike, pages: Sequence[str], out: str | os.PathLike | None = None,
               *, timeout_s: float = 30.0) -> tuple[Path, list[str]]:
    """Print ``pages`` (paths relative to ``html``, in order) with Chromium and merge them.

    Returns:
        the PDF (``out``, default ``<html>/rmqm-study.pdf``) and each page's title (its ``h1``), in order.

    Raises:
        RuntimeError: Chromium or poppler-utils is missing (:func:`pdf_missing` says which), or a
            page is not in ``html``.
    """
    html = Path(html)
    missing = pdf_missing()
    if missing:
        raise RuntimeError(f"cannot print the book: {missing}")
    absent = [p for p in pages if not (html / p).is_file()]
    if absent:
        raise RuntimeError(f"page(s) {absent} are not in {html}")
    target = Path(out) if out is not None else html / PDF_NAME
    titles: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        driver = start_browser()
        try:
            with serve_folder(html) as base:
                for i, page in enumerate(pages):
                    driver.get(f"{base}/{page}")
                    wait_for_mathjax(driver, timeout_s)
                    titles.append(" ".join(str(driver.execute_script(_TITLE)).replace("#", " ").split()))
                    data = driver.execute_cdp_cmd("Page.printToPDF", dict(_PRINT))["data"]
                    parts.append(Path(tmp) / f"{i:03d}.pdf")
                    parts[-1].write_bytes(base64.b64decode(data))
        finally:
            driver.quit()
        if len(parts) == 1:
            shutil.copyfile(parts[0], target)
        else:
            _run("pdfunite", *(str(p) for p in parts), str(target))
    return target, titles


def _letters(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def check_pdf(pdf: str | os.PathLike, titles: Sequence[str]) -> list[Problem]:
    """The problems of a printed book (the rules of the module docstring); ``titles`` are the
    printed pages' titles in order (what :func:`print_book` returns)."""
    pdf = Path(pdf)
    name = pdf.name
    if not pdf.is_file():
        return [Problem(name, "pdf-missing-page", f"{pdf} was not written")]
    info = re.search(r"^Pages:\s+(\d+)", _run("pdfinfo", str(pdf)), re.MULTILINE)
    n_pages = int(info.group(1)) if info else 0
    problems = []
    if n_pages < len(titles):
        problems.append(Problem(name, "pdf-missing-page", f"{n_pages} PDF page(s) for {len(titles)} book pages"))
    text = _run("pdftotext", "-layout", str(pdf), "-")
    flat = _letters(text)
    for title in titles:
        if _letters(title) and _letters(title)[:40] not in flat:
            problems.append(Problem(name, "pdf-missing-page", f"the page {title!r} is not in the PDF's text"))
    for m in list(_RAW_TEX.finditer(text))[:10]:
        around = " ".join(text[max(0, m.start() - 40): m.end() + 40].split())
        problems.append(Problem(name, "pdf-raw-math", f"TeX in the printed text: {m.group()!r} in {around!r}"))
    return problems
