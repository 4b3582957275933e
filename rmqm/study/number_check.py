"""Do the numbers a reader sees on the built pages match the run's results store?

A sample, read from the rendered HTML as a reader would read it and compared with the tables the
notebooks wrote to ``results/``:

- the results summary page (``notebooks/00_results_summary.html``): every row of its family tables
  (test, estimate and interval, p, Holm p and valid resamples, verdict) against
  :func:`rmqm.study.chapters.summary.page_rows` of the summary recomputed from ``results/``;
- the model zoo page (``notebooks/01_model_zoo.html``): its headline "N models (E encoders x S
  seeds)" against ``results/zoo.parquet``;
- the intro (``book/intro.html``): the abstract's counts ("N confirmatory tests in F pre-registered
  families: S are supported, C contradicted and I inconclusive, M could not be measured and U
  carry an unadjusted verdict") and each family's sentence (its counts per verdict and its
  headline test's estimate, interval, Holm p and verdict) against
  :func:`rmqm.study.abstract.abstract_substitutions` and
  :func:`rmqm.study.abstract.family_sentences` of the summary recomputed from ``results/`` (a
  book staged from another build's results would disagree).

Each disagreement is a :class:`rmqm.study.html_check.Problem` of kind ``number-mismatch``.
"""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

from rmqm.study.abstract import abstract_substitutions, family_sentences
from rmqm.study.chapters.summary import PAGE_COLUMNS, page_rows, summary_table
from rmqm.study.html_check import Problem

__all__ = ["SUMMARY_PAGE", "ZOO_PAGE", "INTRO_PAGE", "html_tables", "check_numbers"]

SUMMARY_PAGE = "notebooks/00_results_summary.html"
ZOO_PAGE = "notebooks/01_model_zoo.html"
INTRO_PAGE = "book/intro.html"
_COUNTS = re.compile(r"(\d+) confirmatory tests in (\d+) pre-registered families: (\d+) are supported, (\d+) "
                     r"contradicted and (\d+) inconclusive, (\d+) could not be measured and (\d+) carry an "
                     r"unadjusted verdict")
_COUNT_KEYS = ("n_claims", "n_families", "n_supported", "n_contradicted", "n_inconclusive", "n_not_measurable",
               "n_unadjusted")


class _Tables(HTMLParser):
    """Collects the text of every table cell, row by row, and the page's plain text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self.text: list[str] = []
        self._depth = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._depth += 1
            self.tables.append([])
        elif tag == "tr" and self._depth:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self._depth:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._depth:
            self._depth -= 1
        elif tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        self.text.append(data)


def html_tables(path: str | os.PathLike) -> tuple[list[list[list[str]]], str]:
    """The tables of an HTML page (each a list of rows of cell texts, whitespace collapsed) and
    the page's whole text."""
    parser = _Tables()
    parser.feed(Path(path).read_text(encoding="utf-8", errors="replace"))
    return parser.tables, " ".join("".join(parser.text).split())


def _summary_problems(html: Path, results: Path) -> list[Problem]:
    page = html / SUMMARY_PAGE
    if not page.is_file():
        return []
    expected = page_rows(summary_table(results))
    tables, _ = html_tables(page)
    header = list(PAGE_COLUMNS)
    shown = [t for t in tables if t and t[0] == header]
    if not shown:
        return [Problem(SUMMARY_PAGE, "number-mismatch", "no table with the summary's columns on the page")]
    rows = [dict(zip(header, r, strict=True)) for t in shown for r in t[1:] if len(r) == len(header)]
    problems = []
    if len(rows) != len(expected):
        problems.append(Problem(SUMMARY_PAGE, "number-mismatch",
                                f"the page shows {len(rows)} claims, the results store gives {len(expected)}"))
    for i, (row, (_, want)) in enumerate(zip(rows, expected.iterrows(), strict=False)):
        for col in header:
            if str(row.get(col, "")).strip() != str(want[col]).strip():
                problems.append(Problem(SUMMARY_PAGE, "number-mismatch",
                                        f"row {i} ({want['test']}), {col}: the page says {row.get(col)!r}, "
                                        f"the results store gives {want[col]!r}"))
    return problems


def _zoo_problems(html: Path, results: Path) -> list[Problem]:
    page, table = html / ZOO_PAGE, results / "zoo.parquet"
    if not page.is_file() or not table.is_file():
        return []
    zoo = pd.read_parquet(table)
    _, text = html_tables(page)
    found = re.search(r"(\d+) models \((\d+) encoders x (\d+) seeds\)", text)
    want = (len(zoo), zoo.groupby(["method", "dim", "optimizer"]).ngroups, zoo["seed"].nunique())
    if found is None:
        return [Problem(ZOO_PAGE, "number-mismatch", "no 'N models (E encoders x S seeds)' headline on the page")]
    got = tuple(int(g) for g in found.groups())
    if got != want:
        return [Problem(ZOO_PAGE, "number-mismatch",
                        f"the page says {got[0]} models ({got[1]} encoders x {got[2]} seeds), zoo.parquet has "
                        f"{want[0]} ({want[1]} x {want[2]})")]
    return []


def _abstract_problems(html: Path, results: Path) -> list[Problem]:
    page = html / INTRO_PAGE
    if not page.is_file() or not (results / "verdicts.parquet").is_file():
        return []
    table = summary_table(results)
    want = abstract_substitutions(table)
    _, text = html_tables(page)
    found = _COUNTS.search(text)
    if found is None:
        return [Problem(INTRO_PAGE, "number-mismatch", "no 'N confirmatory tests in F pre-registered families: S are "
                        "supported, ...' sentence in the abstract")]
    problems = []
    expected = tuple(want[k] for k in _COUNT_KEYS)
    if found.groups() != expected:
        problems.append(Problem(INTRO_PAGE, "number-mismatch", f"the abstract counts {found.groups()} (tests, "
                                f"families, supported, contradicted, inconclusive, not measurable, unadjusted), "
                                f"the results store gives {expected}"))
    for fam, sentence in family_sentences(table):
        if " ".join(sentence.split()) not in text:
            problems.append(Problem(INTRO_PAGE, "number-mismatch", f"the abstract does not say {sentence!r} "
                                    f"for family {fam!r} (what the results store gives)"))
    return problems


def check_numbers(html: str | os.PathLike, results: str | os.PathLike) -> list[Problem]:
    """Compare the sampled numbers of the built pages in ``html`` with the tables in ``results``
    (see the module docstring); pages or tables that are not there are skipped."""
    html, results = Path(html), Path(results)
    if not results.is_dir():
        return []
    return _summary_problems(html, results) + _zoo_problems(html, results) + _abstract_problems(html, results)
