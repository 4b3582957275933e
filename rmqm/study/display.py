"""What a chapter notebook shows a reader: headlines as prose, findings as compact tables, full
tables as downloads (never printed output, which the book's browser check rejects outside a
folded cell, :mod:`rmqm.study.browser_check`).

- :func:`finding`: a headline (one sentence, or several as a list) as Markdown prose;
- :func:`table`: a compact HTML table of a few columns, without the index, wrapping inside the
  text column at 1280 and 390 px;
- :func:`download`: the full table written as CSV into the build's results, shown as a link that
  carries the data (a ``data:`` URI, so it works in the built book without a server).

Each returns an object that a notebook displays as its last expression (or with
``IPython.display.display``); the text is in its ``str``, so tests and scripts read it too.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["MAX_COLUMNS", "MAX_ROWS", "Html", "Markdown", "finding", "table", "download", "markdown_escape"]

#: The most columns :func:`table` shows (a finding reads best in four to six): more belongs in :func:`download`.
MAX_COLUMNS = 8
#: The most rows :func:`table` shows.
MAX_ROWS = 40
_SPECIAL = re.compile(r"([\\`*_$<>|\[\]#])")


class Html(str):
    """A string a notebook displays as HTML."""

    def _repr_html_(self) -> str:
        return str(self)


class Markdown(str):
    """A string a notebook displays as Markdown (myst-nb renders it as prose in the book)."""

    def _repr_markdown_(self) -> str:
        return str(self)


def markdown_escape(text: str) -> str:
    """``text`` with the characters Markdown or MyST would read as markup escaped by a backslash
    (``*``, ``_``, ``$``, backticks, brackets, ``<``, ``>``, ``|``, ``#``, ``\\``)."""
    return _SPECIAL.sub(r"\\\1", str(text))


def finding(text: str | Sequence[str], *, bold_first: bool = False) -> Markdown:
    """A headline as Markdown prose: one paragraph for a string, a bullet list for several lines
    (each escaped, :func:`markdown_escape`, so a number like ``[+0.36, +0.82]`` or a column name
    like ``indist_knn`` reads as written). Format the numbers from the results before (e.g.
    ``f"{r:+.2f}"``): this function never types one.

    Args:
        text: the sentence, or the lines (empty lines are dropped).
        bold_first: set the first line in bold (a headline above its details).

    Raises:
        ValueError: no text.
    """
    lines = [str(text)] if isinstance(text, str) else [str(t) for t in text]
    lines = [" ".join(t.split()) for t in lines if str(t).strip()]
    if not lines:
        raise ValueError("finding() needs at least one non-empty sentence")
    escaped = [markdown_escape(t) for t in lines]
    if bold_first:
        escaped[0] = f"**{escaped[0]}**"
    if len(escaped) == 1:
        return Markdown(escaped[0])
    return Markdown("\n".join(f"- {t}" for t in escaped))


def _cell(value: object, digits: int | None) -> str:
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "none" if np.isnan(value) else ("+inf" if value > 0 else "-inf")
        return f"{value:.{digits}f}" if digits is not None else f"{value:g}"
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "none"
    return str(value)


def table(df: pd.DataFrame, columns: Sequence[str] | Mapping[str, str] | None = None,
          round: int | Mapping[str, int] | None = 2, *, caption: str | None = None) -> Html:  # noqa: A002
    """A compact HTML table of ``df``: no index, the chosen ``columns`` (a list, or a mapping
    column -> header), floats rounded, cells that wrap (fixed layout, 100 % of the column), so
    nothing is cut at 1280 px; each cell carries its header as ``data-label``, so that on a
    phone the book's stylesheet (``book/_static/rmqm.css``, class ``rmqm-finding``) stacks each
    row as a card of "header: value" lines instead of cutting columns at 390 px.

    Args:
        df: the table (its index is not shown: make a column of it first if it carries meaning).
        columns: which columns, in order (default all); a mapping also renames them.
        round: decimals of every float column, or per column (columns not named: ``%g``).
        caption: a short caption above the table.

    Raises:
        ValueError: a named column is missing, more than :data:`MAX_COLUMNS` columns or
            :data:`MAX_ROWS` rows (show a finding; put the full table in :func:`download`).
    """
    names = dict(columns) if isinstance(columns, Mapping) else {c: c for c in (columns or df.columns)}
    missing = [c for c in names if c not in df.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; it has {list(df.columns)}")
    if len(names) > MAX_COLUMNS:
        raise ValueError(f"{len(names)} columns is more than a reader takes in ({MAX_COLUMNS} at most): choose the "
                         "columns of the finding and put the full table in download()")
    if len(df) > MAX_ROWS:
        raise ValueError(f"{len(df)} rows is more than a finding ({MAX_ROWS} at most): summarise, and put the full "
                         "table in download()")
    digits = {c: (round.get(c) if isinstance(round, Mapping) else round) for c in names}
    head = "".join(f'<th style="text-align:left;padding:0.2em 0.4em">{html.escape(str(h))}</th>'
                   for h in names.values())
    labels = {c: html.escape(str(h), quote=True) for c, h in names.items()}
    body = "".join(
        "<tr>" + "".join(f'<td data-label="{labels[c]}" style="padding:0.2em 0.4em">'
                         f"{html.escape(_cell(v, digits[c]))}</td>" for c, v in zip(names, row, strict=True)) + "</tr>"
        for row in df[list(names)].itertuples(index=False, name=None))
    cap = f'<caption style="caption-side:top;text-align:left">{html.escape(caption)}</caption>' if caption else ""
    style = ('style="table-layout:fixed;width:100%;max-width:100%;border-collapse:collapse;font-size:0.85em;'
             'overflow-wrap:anywhere;word-break:break-word"')
    return Html(f'<table class="rmqm-finding" {style}>{cap}<thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>")


def download(df: pd.DataFrame, name: str, results: str | os.PathLike | None = None, *,
             label: str | None = None) -> Html:
    """Write ``df`` (with its index only if it is named) as ``<results>/<name>.csv`` and return
    a link to it that carries the data (a ``data:text/csv`` URI with ``download="<name>.csv"``),
    so the full table is one click away in the built book.

    Args:
        df: the full table.
        name: the file's stem: letters, digits, ``-`` and ``_`` only.
        results: the build's results folder (None: only the link).
        label: the link's text (default "Download the full table").

    Raises:
        ValueError: a ``name`` with other characters.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(f"name must be letters, digits, '-' or '_' (a file stem); got {name!r}")
    keep_index = any(n is not None for n in df.index.names)
    text = df.to_csv(index=keep_index)
    if results is not None:
        Path(results).mkdir(parents=True, exist_ok=True)
        (Path(results) / f"{name}.csv").write_text(text)
    data = base64.b64encode(text.encode()).decode()
    words = html.escape(label or "Download the full table")
    return Html(f'<p><a download="{name}.csv" href="data:text/csv;base64,{data}">{words}</a> '
                f"(CSV, {len(df)} rows, {len(df.columns) + keep_index} columns).</p>")
