"""The results summary page: one section per pre-registered confirmatory family
(``book/endpoints.yaml``), Holm within it, read from the results store: one screen at 1280 px (a
row per family with verdict badges), the tables of every test one click away (folded), a
downloadable long form, and sentences whose numbers come from that table.

Sources of each family's rows:

- ``verdicts.parquet`` (chapter 5): its confirmatory rows (``family`` column);
- ``family_<id>.parquet`` (any chapter; the contract for a family's tests): ``label, estimate,
  ci_low, ci_high, p_value`` and optionally ``p_se, n_valid, n_resamples, measurable, reason,
  detectable, leave_one_out``; Holm runs here, within the family;
- otherwise the chapters' own tables, which carry no p-value: ``rmqm_step_verdicts.parquet``
  (chapter 2; Student-t intervals over seeds) and ``synbench_claim2.parquet`` (chapter 4; a
  bootstrap over encoders), shown with their unadjusted verdicts and marked so.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rmqm.stats.verdicts import format_interval, verdict_word
from rmqm.study.chapters.families import family_verdicts
from rmqm.study.endpoints import Endpoints, last_commit, load_endpoints

__all__ = ['SUMMARY_COLUMNS', 'NUMERIC_COLUMNS', 'PAGE_COLUMNS', 'GLANCE_COLUMNS', 'Html', 'summary_table',
           'summary_lines', 'page_rows', 'glance_rows', 'summary_html', 'endpoints_note']

#: The columns of :func:`summary_table` (the long form, one row per confirmatory test).
SUMMARY_COLUMNS: tuple[str, ...] = ("family", "family label", "test", "estimate", "interval", "p", "p (Holm)",
                                    "n_valid", "verdict", "detectable", "without one method", "note")
#: The numbers behind the text of each row (NaN where the text reads "none"), after
#: :data:`SUMMARY_COLUMNS` in :func:`summary_table`: for figures and the abstract, never parsed back.
NUMERIC_COLUMNS: tuple[str, ...] = ("value", "ci_low", "ci_high", "p_holm")
#: The columns of each family's table on the page (:func:`page_rows` gives their text).
PAGE_COLUMNS: tuple[str, ...] = ("test", "estimate [95 %]", "p, Holm p, valid", "verdict")
#: The columns of the page's first table, one row per family (:func:`glance_rows`).
GLANCE_COLUMNS: tuple[str, ...] = ("claim", "tests", "estimates", "verdicts")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_BADGE = {"supported": "#1a7f37", "contradicted": "#cf222e", "inconclusive": "#6e7781", "not measurable": "#bc4c00",
          "unadjusted": "#0969da"}


class Html(str):
    """A string a notebook displays as HTML."""

    def _repr_html_(self) -> str:
        return str(self)


def _num(value: Any, spec: str) -> str:
    return format(float(value), spec) if value is not None and np.isfinite(float(value)) else "none"


def _p_text(p: float, se: float, method: str) -> str:
    """``"0.0020 ± 0.0010"`` (Monte Carlo), ``"0.0100 (exact)"`` (every permutation or sign flip
    counted), ``"0.0041 (t test)"`` (a Student-t p over seeds); ``"< 0.0001"`` where four decimals
    would print 0.0000 (a Monte-Carlo floor of 1/10001 still reads 0.0001)."""
    if not np.isfinite(p):
        return "none"
    text = f"{p:.4f}" if p >= 0.00005 else "< 0.0001"  # only what would print as 0.0000
    if np.isfinite(se) and se > 0:
        return f"{text} ± {se:.4f}"
    if method.startswith("t "):
        return f"{text} (t test)"
    return f"{text} (exact)" if se == 0 else text


def _row(family: str, label: str, test: str, r: Any, note: str = "") -> dict[str, Any]:
    """A summary row from a record with the fields of a verdict row (missing ones read "none")."""
    get = (lambda k, d=np.nan: r.get(k, d)) if isinstance(r, dict) else (lambda k, d=np.nan: getattr(r, k, d))
    est, low, high = (float(get(k)) for k in ("estimate", "ci_low", "ci_high"))
    p, se = float(get("p_value")), float(get("p_se"))
    verdict = str(get("verdict", "inconclusive"))
    reason = str(get("reason", "") or "")
    valid, total = get("n_valid"), get("n_resamples")
    return {"family": family, "family label": label, "test": test, "estimate": _num(est, "+.2f"),
            "interval": format_interval(est, low, high).partition(" ")[2] or "none",
            "p": _p_text(p, se, str(get("p_method", "") or "")),
            "p (Holm)": _num(get("p_holm"), ".4f"),
            "n_valid": f"{float(valid):.0f}/{float(total):.0f}" if np.isfinite(float(total)) and float(total) > 0
            else "none",
            "verdict": verdict, "detectable": str(get("detectable", "") or ""),
            "without one method": str(get("leave_one_out", "") or ""),
            "note": reason if verdict == "not measurable" else note,
            "value": est, "ci_low": low, "ci_high": high, "p_holm": float(get("p_holm"))}


def _from_verdicts(verdicts: pd.DataFrame, fam: Any) -> list[dict[str, Any]]:
    rows = verdicts[verdicts.get("family", pd.Series("", index=verdicts.index)) == fam.id]
    return [_row(fam.id, fam.label, f"{r.task}" + ("" if r.encoders == "without" else " + added encoders"),
                 r, "" if r.p_method == "permutation" else f"p: {r.p_method}") for r in rows.itertuples()]


def _from_family_file(frame: pd.DataFrame, fam: Any, alpha: float) -> list[dict[str, Any]]:
    frame = frame.assign(family=fam.id, expected_sign=fam.expected_sign,
                         measurable=frame.get("measurable", pd.Series(True, index=frame.index)))
    judged = family_verdicts(frame, alpha)
    return [_row(fam.id, fam.label, str(r["label"]), r.to_dict()) for _, r in judged.iterrows()]


def _from_steps(steps: pd.DataFrame, fam: Any) -> list[dict[str, Any]]:
    """Chapter 2's step table (per alteration and d, t-intervals over seeds): one row per alteration
    and claim, the per-d intervals in the test label; no p-value, so no Holm."""
    rows = []
    for setting, part in steps.groupby("perturbation", sort=False):
        for claim, value in (("larger steps", "median B: self-sup. - sup."),
                             ("steadier steps", "median S_b: sup. - self-sup.")):
            words = [verdict_word(v) for v in part[claim]]
            word = words[0] if len(set(words)) == 1 else "inconclusive"
            dims = "; ".join(f"d = {d}: {v}" for d, v in zip(part["dim"], part[value], strict=True))
            rows.append({**_row(fam.id, fam.label, f"{setting}: {claim}", {"verdict": f"unadjusted: {word}"},
                                f"no p-value from chapter 2; Student-t over {int(part['seeds'].min())} seeds "
                                f"(unadjusted); {dims}")})
    return rows


def _from_claim2(claim2: pd.DataFrame, fam: Any) -> list[dict[str, Any]]:
    radii = ", ".join(str(r) for r in fam.get("radii", ()))
    out = []
    for _, r in claim2.iterrows():
        est, _, interval = str(r["gain over random"]).partition(" ")
        row = _row(fam.id, fam.label, f"{r['choice']} direction", {"verdict": f"unadjusted: {r['verdict']}"},
                   f"no p-value from chapter 4; bootstrap over {int(r['encoders'])} encoders (unadjusted); "
                   f"declared radii {radii}: chapter 4 reports its profile's radius only")
        nums = [float(x) for x in _NUMBER.findall(interval)]
        out.append({**row, "estimate": est or "none", "interval": interval or "none",
                    "value": float(est) if _NUMBER.fullmatch(est) else np.nan,
                    "ci_low": nums[0] if len(nums) == 2 else np.nan, "ci_high": nums[1] if len(nums) == 2 else np.nan})
    return out


def summary_table(results: str | os.PathLike, endpoints: Endpoints | None = None) -> pd.DataFrame:
    """One row per confirmatory test, family by family in the order of ``endpoints`` (default
    ``book/endpoints.yaml``), every cell text (a missing number reads "none"); a family no
    chapter reported has one row saying so. Also written to ``results/summary_long.csv``.

    Returns:
        :data:`SUMMARY_COLUMNS` (text) and :data:`NUMERIC_COLUMNS` (floats).

    Raises:
        FileNotFoundError: no ``verdicts.parquet`` (run notebook 05 first).
    """
    results = Path(results)
    endpoints = endpoints or load_endpoints()
    path = results / "verdicts.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"no verdict table {path}; the notebook 05_predicting_downstream writes it")
    verdicts = pd.read_parquet(path)
    rows: list[dict[str, Any]] = []
    for fam in endpoints.families:
        own = results / f"family_{fam.id}.parquet"
        if own.is_file():
            part = _from_family_file(pd.read_parquet(own), fam, endpoints.alpha)
        elif fam.kind == "correlation":
            part = _from_verdicts(verdicts, fam)
        elif fam.kind == "steps" and (results / "rmqm_step_verdicts.parquet").is_file():
            part = _from_steps(pd.read_parquet(results / "rmqm_step_verdicts.parquet"), fam)
        elif fam.kind == "claim2" and (results / "synbench_claim2.parquet").is_file():
            part = _from_claim2(pd.read_parquet(results / "synbench_claim2.parquet"), fam)
        else:
            part = []
        rows += part or [_row(fam.id, fam.label, "no test in this build", {"verdict": "not measurable"}) |
                         {"note": f"{fam.chapter} reported no row of this family"}]
    table = pd.DataFrame(rows, columns=[*SUMMARY_COLUMNS, *NUMERIC_COLUMNS])
    table.to_csv(results / "summary_long.csv", index=False)
    return table


def _verdict_counts(part: pd.DataFrame) -> list[tuple[str, int]]:
    """``(verdict, count)`` of a family's tests, most frequent first."""
    return [(str(w), int(n)) for w, n in part["verdict"].value_counts().items()]


def summary_lines(table: pd.DataFrame) -> list[str]:
    """One sentence per family: its claim label, how many tests, and the verdicts counted
    (Holm within the family; "unadjusted" where the chapter gave no p-value)."""
    lines = []
    for label, part in table.groupby("family label", sort=False):
        lines.append(f"{label}: {len(part)} test{'s' * (len(part) != 1)}, "
                     + ", ".join(f"{n} {w}" for w, n in _verdict_counts(part)) + ".")
    return lines


def _badge(text: str, verdict: str | None = None) -> str:
    """``text`` on a pill coloured by ``verdict`` (default: the text itself)."""
    color = _BADGE.get(verdict_word(verdict or text), _BADGE["inconclusive"])
    return (f'<span style="background:{color};color:#fff;border-radius:0.6em;padding:0 0.45em;'
            f'white-space:nowrap">{html.escape(text)}</span>')


def endpoints_note(endpoints: Endpoints | None = None) -> str:
    """``"book/endpoints.yaml: SHA-256 <hash>, last changed in commit <hash> (<date>)"``."""
    endpoints = endpoints or load_endpoints()
    return (f"book/endpoints.yaml (version {endpoints.version}): SHA-256 {endpoints.sha256}, last changed in "
            f"commit {last_commit(endpoints.path)}")


def _cells(r: pd.Series) -> list[tuple[str, str]]:
    """The four cells of a page row as (text a reader sees, HTML)."""
    extra = "; ".join(x for x in (f"detects {r['detectable']}" if r["detectable"] else "",
                                  f"without one method {r['without one method']}" if r["without one method"] else "",
                                  r["note"]) if x)
    p = f"{r['p']} Holm {r['p (Holm)']}; {r['n_valid']} valid"
    verdict = f"{r['verdict']} {extra}".strip()
    estimate = f"{r['estimate']} {r['interval']}"
    return [(r["test"], html.escape(r["test"])), (estimate, estimate),
            (p, f"{html.escape(r['p'])} <br>Holm {r['p (Holm)']}; {r['n_valid']} valid"),
            (verdict, f"{_badge(r['verdict'])} <br><small>{html.escape(extra)}</small>")]


def page_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The text of every family table row the page shows (:data:`PAGE_COLUMNS`), in page order,
    whitespace collapsed (what :mod:`rmqm.study.number_check` reads back from the HTML)."""
    rows = [[" ".join(text.split()) for text, _ in _cells(r)] for _, r in table.iterrows()]
    return pd.DataFrame(rows, columns=list(PAGE_COLUMNS))


def _estimate_range(part: pd.DataFrame) -> str:
    """``"+0.90 to +0.93"`` over the family's finite estimates (one value: itself; none: "none")."""
    values = part["value"].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return "none"
    low, high = (f"{v:+.2f}".replace("-0.00", "+0.00") for v in (values.min(), values.max()))
    return low if low == high else f"{low} to {high}"


def glance_rows(table: pd.DataFrame) -> pd.DataFrame:
    """One row per family, the page's first table: ``claim`` (the family's short label), ``tests``,
    ``estimates`` (the range of its tests' estimates, in the family's own unit) and ``verdicts``
    (counts per verdict, most frequent first; Holm within the family)."""
    rows = []
    for label, part in table.groupby("family label", sort=False):
        rows.append({"claim": str(label), "tests": len(part), "estimates": _estimate_range(part),
                     "verdicts": ", ".join(f"{n} {w}" for w, n in _verdict_counts(part))})
    return pd.DataFrame(rows, columns=list(GLANCE_COLUMNS))


_TABLE_STYLE = ('style="table-layout:fixed;width:100%;border-collapse:collapse;font-size:0.85em;'
                'overflow-wrap:anywhere;word-break:break-word"')


def _html_table(columns: Sequence[str], widths: Sequence[str], rows: Sequence[Sequence[str]],
                css_class: str = "rmqm-finding") -> str:
    """A fixed-layout table of HTML ``rows`` (cells already escaped), each cell labelled with its
    column for the phone layout (``book/_static/rmqm.css``)."""
    head = "".join(f'<th style="width:{w}">{c}</th>' for c, w in zip(columns, widths, strict=True))
    body = "".join("<tr>" + "".join(f'<td data-label="{html.escape(c, quote=True)}">{cell}</td>'
                                    for c, cell in zip(columns, row, strict=True)) + "</tr>" for row in rows)
    return f'<table class="{css_class}" {_TABLE_STYLE}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _glance_html(table: pd.DataFrame) -> str:
    rows = [(html.escape(str(label)), str(len(part)), html.escape(_estimate_range(part)),
             " ".join(_badge(f"{n} {w}", w) for w, n in _verdict_counts(part)))
            for label, part in table.groupby("family label", sort=False)]
    return _html_table(GLANCE_COLUMNS, ("34%", "10%", "22%", "34%"), rows, "rmqm-finding rmqm-glance")


def summary_html(table: pd.DataFrame, endpoints: Endpoints | None = None) -> Html:
    """The page's body, one screen at 1280 px: a table with one row per family (:func:`glance_rows`:
    claim, number of tests, range of estimates, verdict badges), then, folded one click away, per
    family a heading line (label, claim, counts) and a four-column table (test; estimate and
    interval; p with its Monte-Carlo error, Holm p and valid resamples; verdict badge with the
    detectable effect and the leave-one-method-out range), and the long form as a CSV download.
    Fixed layout and wrapping cells, so nothing is cut at 390 px."""
    endpoints = endpoints or load_endpoints()
    claims = {f.id: f.claim for f in endpoints.families}
    parts = ['<div class="rmqm-summary" style="max-width:100%;overflow-wrap:anywhere">', _glance_html(table),
             f'<details class="rmqm-long-form"><summary>Every test, family by family ({len(table)} tests: p-values, '
             "detectable effects, the result without each method)</summary>"]
    for (fam, label), part in table.groupby(["family", "family label"], sort=False):
        counts = ", ".join(f"{n} {w}" for w, n in _verdict_counts(part))
        parts.append(f"<p><b>{html.escape(str(label))}</b>: {html.escape(claims.get(fam, ''))} "
                     f"<i>({len(part)} tests: {html.escape(counts)}; Holm within this family)</i></p>")
        rows = [tuple(cell for _, cell in _cells(r)) for _, r in part.iterrows()]
        parts.append(_html_table(PAGE_COLUMNS, ("22%", "22%", "24%", "32%"), rows))
    data = base64.b64encode(table.to_csv(index=False).encode()).decode()
    parts.append(f'<p><a download="summary_long.csv" href="data:text/csv;base64,{data}">Download the long form '
                 f"(CSV, {len(table)} rows)</a>. Families: {html.escape(endpoints_note(endpoints))}.</p>"
                 "</details></div>")
    return Html("".join(parts))
