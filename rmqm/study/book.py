"""Stage and build the Jupyter Book, with a generated run-information page."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rmqm._utils.io import contained
from rmqm._utils.provenance import hardware_summary
from rmqm.study.abstract import stage_abstract
from rmqm.study.browser_check import browser_missing, check_in_browser
from rmqm.study.html_check import Problem, check_html_book
from rmqm.study.manifest import MANIFEST, load_manifest
from rmqm.study.number_check import check_numbers
from rmqm.study.pdf import check_pdf, pdf_missing, print_book, toc_pages
from rmqm.study.profiles import RESERVED_PARAMETERS
from rmqm.study.substitutions import build_substitutions, stage_substitutions

__all__ = ['BookBuildFailed', 'BookCheckFailed', 'data_markdown', 'run_info_markdown', 'stage_book',
           'build_book', 'check_book']


class BookBuildFailed(RuntimeError):
    """``jupyter-book build`` exited non-zero (warnings are errors); the message quotes them."""


class BookCheckFailed(BookBuildFailed):
    """The book built, but its pages have problems a reader would see (:func:`check_book`).

    ``html`` is the built HTML folder (left in place, screenshots written), ``problems`` the list.
    """

    def __init__(self, html: Path, problems: Sequence[Problem]) -> None:
        self.html, self.problems = html, list(problems)
        super().__init__(f"the book built in {html} but {len(self.problems)} problem(s) would show to a "
                         "reader (rules: rmqm.study.html_check, rmqm.study.browser_check):\n"
                         + "\n".join(str(p) for p in self.problems[:60]))


_VERSION_PACKAGES = (
    "rmqm", "torch", "torchvision", "numpy", "scipy", "pandas", "scikit-learn", "seaborn",
    "matplotlib", "papermill", "jupyter-book", "sphinx", "myst-nb", "django-static-mathjax",
)


def _versions() -> list[tuple[str, str]]:
    from importlib.metadata import PackageNotFoundError, version

    rows = [("python", platform.python_version())]
    for name in _VERSION_PACKAGES:
        try:
            rows.append((name, version(name)))
        except PackageNotFoundError:
            rows.append((name, "not installed"))
    return rows


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def esc(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _utc(stamp: Any) -> str:
    """``2026-12-06T03:37:45+00:00`` -> ``2026-12-06 03:37:45`` (breakable on a phone; the column says UTC)."""
    return str(stamp).replace("T", " ").split("+")[0]


def _short(digest: Any) -> str:
    return f"`{str(digest)[:16]}`" if digest else "-"


def _identity_rows(role: str, identity: Mapping[str, Any]) -> list[list[str]]:
    """Table rows of one :func:`rmqm.data.registry.data_identity`: one per file, or its content."""
    name = f"`{identity.get('name', '?')}`"
    if not identity.get("available", True):
        return [[role, name, "**missing**", "-"]]
    if identity.get("files"):
        return [[role, name, f"`{identity.get('folder', '')}/{rel}`", _short(sha)] for rel, sha in identity["files"]]
    return [[role, name, "images and labels (shipped with a Python package)", _short(identity.get("content"))]]


def data_markdown(data_used: Mapping[str, Any]) -> list[str]:
    """The "Data" section: for each ``data_used.json`` record, a warning when a fallback
    replaced the requested data, and the SHA-256 of every file (or of the content) used."""
    if not data_used:
        return ["### Data", "", "No notebook recorded the data it used.", ""]
    parts = ["### Data", ""]
    for where, rec in sorted(data_used.items()):
        if "error" in rec:
            parts += [f"`results/{where}`: {rec['error']}", ""]
            continue
        if rec.get("fallback"):
            parts += ["```{warning}", f"**Data fallback:** `{rec.get('requested')}` was requested but its files "
                      f"were missing, so every result in this book is about `{rec.get('used')}`.", "```", ""]
        rows = _identity_rows("pretraining", rec.get("pretraining", {}))
        for t in rec.get("transfer", []):
            rows += _identity_rows("transfer", t)
        parts += [f"Data actually used (recorded in `results/{where}`; SHA-256, first 16 hex digits):", "",
                  _md_table(["role", "data set", "file", "SHA-256"], rows), ""]
    return parts


def _notebook_parameter_lines(nbs: Mapping[str, Any], shared: Mapping[str, Any]) -> list[str]:
    """The parameters each notebook ran with that are not the profile's shared values (its own
    overrides): the book leaves the injected-parameters cells out, so they are stated here."""
    rows = [[f"`{name}`", f"`{k}`", f"`{json.dumps(v, default=repr)}`"]
            for name, e in nbs.items() for k, v in sorted((e.get("parameters") or {}).items())
            if k not in RESERVED_PARAMETERS and (k not in shared or shared[k] != v)]
    if not rows:
        return ["Every notebook ran with the profile parameters below (no notebook overrides them).", ""]
    return ["### Parameters of one notebook only", "",
            _md_table(["notebook", "parameter", "value"], rows), ""]


def run_info_markdown(manifest: Mapping[str, Any]) -> str:
    """The generated part of the reproducibility page: profile, the data actually used
    (with a warning on a fallback), parameters, wall times, package versions and hardware
    (read from a ``study.json`` manifest)."""
    nbs = manifest.get("notebooks", {})
    total = sum(float(e.get("wall_s", 0.0)) for e in nbs.values())
    shared = manifest.get("shared_parameters", {})
    hosts = sorted({e.get("hardware", "") for e in nbs.values() if e.get("hardware")})
    parts = [
        f"This build used the **{manifest.get('profile', '?')}** profile"
        + (f" ({manifest['description']})" if manifest.get("description") else "") + ".",
        "",
        *data_markdown(manifest.get("data_used") or {}),
        "### Wall time per notebook",
        "",
        _md_table(
            ["notebook", "wall time (s)", "finished (UTC)", "cache key"],
            [[f"`{name}`", f"{float(e.get('wall_s', 0.0)):.1f}", _utc(e.get("finished", "")),
              f"`{str(e.get('key', ''))[:12]}`"] for name, e in nbs.items()]
            + [["**total**", f"**{total:.1f}**", "", ""]],
        ),
        "",
        "### Hardware",
        "",
        *[f"- {h}" for h in (hosts or [hardware_summary()])],
        "",
        *([f"Source fingerprint of `rmqm` (SHA-256 of `rmqm/*.py`, part of every notebook's cache key): "
           f"`{manifest['library_fingerprint'][:12]}`", ""] if manifest.get("library_fingerprint") else []),
        "### Profile parameters",
        "",
        _md_table(["parameter", "value"], [[f"`{k}`", f"`{json.dumps(v, default=repr)}`"]
                                           for k, v in sorted(shared.items())]),
        "",
        *_notebook_parameter_lines(nbs, shared),
        "### Package versions (at book build time)",
        "",
        _md_table(["package", "version"], _versions()),
        "",
    ]
    return "\n".join(parts)


def _mathjax_source() -> Path:
    """The ``es5`` folder of MathJax 3 shipped by the PyPI package django-static-mathjax."""
    try:
        import mathjax  # django-static-mathjax's import name
    except ImportError:
        raise FileNotFoundError(
            "local MathJax not found: install the book extras (pip install -e '.[book]'), "
            "which bring the PyPI package django-static-mathjax"
        ) from None
    src = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (src / "tex-mml-chtml.js").is_file():
        raise FileNotFoundError(f"django-static-mathjax is installed but {src}/tex-mml-chtml.js is missing")
    return src


def stage_book(root: str | os.PathLike, out_dir: str | os.PathLike, *,
               build_dir: str | os.PathLike | None = None) -> Path:
    """Copy the book sources of ``root`` next to the executed notebooks in ``out_dir``.

    ``out_dir`` becomes the book's root: ``_config.yml``, ``_toc.yml``, ``book/`` (fresh
    copies), ``notebooks/`` (executed), ``_mathjax/mathjax`` (the local MathJax that
    ``_config.yml`` names through Sphinx's ``mathjax_path``) and
    ``book/_generated/run_info.md`` (from the manifest), the overview figure and claim tables
    (:func:`rmqm.study.abstract.stage_abstract`, from ``out_dir/results``); the staged
    ``_config.yml`` gets the run's parameters, its results' counts and verdicts and the commit it
    was built from as MyST substitutions (:func:`rmqm.study.substitutions.stage_substitutions`).

    Every path written or deleted is checked first (:func:`rmqm._utils.io.contained`) to lie
    inside ``out_dir``, and ``out_dir`` inside ``build_dir`` when given.

    Raises:
        ValueError: ``out_dir`` or a path inside it (a symlink) resolves outside; nothing written.
    """
    root, out_dir = Path(root), Path(out_dir)
    if build_dir is not None:
        contained(out_dir, build_dir, "the book")
    for name in ("_config.yml", "_toc.yml", "book", "_mathjax", "_mathjax/mathjax"):
        contained(out_dir / name, out_dir, name)
    for name in ("_config.yml", "_toc.yml"):
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name} is missing")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, out_dir / name)
    if (out_dir / "book").exists():
        shutil.rmtree(out_dir / "book")
    shutil.copytree(root / "book", out_dir / "book")
    mj = out_dir / "_mathjax" / "mathjax"
    src = _mathjax_source()
    if not (mj / "tex-mml-chtml.js").is_file():
        shutil.copytree(src, mj, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*svg*", "node-main.js", "*full*"))
    gen = out_dir / "book" / "_generated"
    gen.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(out_dir / MANIFEST)
    (gen / "run_info.md").write_text(run_info_markdown(manifest))
    found = stage_abstract(out_dir / "results", gen)  # overview.png, claims_*.md
    stage_substitutions(out_dir / "_config.yml", manifest.get("shared_parameters", {}),
                        {**found, **build_substitutions(root, manifest)})
    return out_dir


def _jupyter_book_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if not found:
        raise FileNotFoundError("jupyter-book not found: install the book extras (pip install -e '.[book]')")
    return [found]


def check_book(html: str | os.PathLike, *, screenshots: str | os.PathLike | None = None,
               browser: bool = True, log: Callable[[str], None] = print) -> list[Problem]:
    """The problems a reader of the built book would see: the static checks of every page
    (:func:`rmqm.study.html_check.check_html_book`), a sample of its numbers against the run's
    results store next to it (:func:`rmqm.study.number_check.check_numbers`), then, where Chromium is installed and
    ``browser`` is true, the browser's (:func:`rmqm.study.browser_check.check_in_browser`, which
    saves ``<page>-{desktop,phone}.png`` into ``screenshots`` when given). A missing browser is
    logged, not an error: the static checks still run."""
    problems = check_html_book(html)
    problems += check_numbers(html, Path(html).parent.parent / "results")  # build/<profile>/results
    if browser:
        missing = browser_missing()
        if missing:
            log(f"browser check of the book skipped: {missing}")
        else:
            problems += check_in_browser(html, screenshots=screenshots)
            if screenshots is not None:
                log(f"screenshots of every page: {screenshots}")
    return problems


def build_book(book_root: str | os.PathLike, *, log: Callable[[str], None] = print, check: bool = True,
               screenshots: str | os.PathLike | None = None, pdf: bool = True) -> Path:
    """Run ``jupyter-book build <book_root> -W -n --keep-going``; check the pages; return the HTML folder.

    With ``check`` (the default) the built pages go through :func:`check_book`; any problem fails
    the build, like a Sphinx warning does (``-W``): a formula MathJax cannot render, an
    unexplained ``nan`` or a figure without alt text is as much a defect of the book as a broken
    reference. The HTML stays in place for inspection. Screenshots go to ``screenshots``
    (default ``<book_root>/_build/screenshots``; ``make book`` passes ``artifacts/screenshots``).
    With ``pdf`` (the default) and Chromium and poppler-utils installed, the book is also printed
    to ``<html>/rmqm-study.pdf`` (:func:`rmqm.study.pdf.print_book`, linked from the intro) and,
    with ``check``, the PDF is checked too (:func:`rmqm.study.pdf.check_pdf`); where the tools
    are missing the PDF is skipped with a message.

    Raises:
        BookBuildFailed: the build exited non-zero; the message quotes its warnings.
        BookCheckFailed: the build succeeded but :func:`check_book` found problems (listed).
    """
    book_root = Path(book_root)
    cmd = _jupyter_book_cmd() + ["build", str(book_root), "-W", "-n", "--keep-going"]
    log("building the book: " + " ".join(cmd[1:]))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        text = proc.stdout + proc.stderr
        warnings = [ln for ln in text.splitlines() if "WARNING" in ln or "ERROR" in ln]
        raise BookBuildFailed(
            "jupyter-book build failed:\n" + "\n".join((warnings or text.splitlines())[-40:])
        )
    html = book_root / "_build" / "html"
    problems: list[Problem] = []
    if check:
        log("checking the built pages (rmqm.study.html_check, rmqm.study.browser_check)")
        shots = Path(screenshots) if screenshots is not None else book_root / "_build" / "screenshots"
        problems = check_book(html, screenshots=shots, log=log)
    if pdf:
        missing = pdf_missing()
        if missing:
            log(f"PDF of the book skipped: {missing}")
        else:
            printed, titles = print_book(html, toc_pages(book_root))
            log(f"PDF of the book: {printed}")
            if check:
                problems += check_pdf(printed, titles)
    if problems:
        raise BookCheckFailed(html, problems)
    return html
