"""The book's overview figure: every claim of the study as one forest-plot row, coloured by verdict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rmqm._utils.validation import check_columns

__all__ = ['VERDICT_COLORS', 'UNADJUSTED', 'plot_claims_overview']

#: Verdict -> colour (Okabe-Ito, readable by the colour-blind and in greyscale print).
VERDICT_COLORS: Mapping[str, str] = {
    "supported": "#009E73",       # bluish green
    "contradicted": "#D55E00",    # vermillion
    "inconclusive": "#7F7F7F",    # grey
    "not measurable": "#BBBBBB",  # light grey
}
_OTHER_COLOR = "#000000"
#: The prefix of a verdict reached without a p-value (``"unadjusted: supported"``): coloured by
#: its word, drawn with an open dot.
UNADJUSTED = "unadjusted: "


def _word(verdict: object) -> str:
    text = str(verdict)
    return text[len(UNADJUSTED):] if text.startswith(UNADJUSTED) else text
_LABEL_CHARS = 52


def _short(label: str) -> str:
    """``label`` cut in the middle to ``_LABEL_CHARS`` characters: both ends carry meaning (what
    is claimed, and against what or in which setting)."""
    if len(label) <= _LABEL_CHARS:
        return label
    head = (_LABEL_CHARS - 1) // 2
    return label[:head].rstrip() + "\u2026" + label[len(label) - (_LABEL_CHARS - 1 - head):].lstrip()


def _common_prefix(labels: list[str]) -> str:
    """The words all ``labels`` start with (none for a single label, or when a label would be left empty)."""
    if len(labels) < 2:
        return ""
    words = [lab.split(" ") for lab in labels]
    n = 0
    while all(len(w) > n + 1 and w[n] == words[0][n] for w in words):
        n += 1
    return " ".join(words[0][:n])


def _display_rows(rows: pd.DataFrame) -> list[tuple[str, int | None]]:
    """(tick label, row index or None for a group heading), top to bottom: with a ``group`` column
    each group gets a heading naming the group and the words its claims share, and its rows show
    the rest of their label."""
    if "group" not in rows.columns:
        return [(_short(str(lab)), i) for i, lab in enumerate(rows["label"])]
    out: list[tuple[str, int | None]] = []
    groups = rows["group"].astype(str).to_numpy()
    labels = rows["label"].astype(str).to_numpy()
    i = 0
    while i < len(rows):
        j = i
        while j < len(rows) and groups[j] == groups[i]:
            j += 1
        prefix = _common_prefix(list(labels[i:j]))
        heading = groups[i] + (f": {prefix} \u2026" if prefix else "")
        out.append((heading if len(heading) <= 60 else heading[:59] + "\u2026", None))
        out += [(_short(labels[k][len(prefix):].strip() if prefix else labels[k]), k) for k in range(i, j)]
        i = j
    return out


def plot_claims_overview(rows: pd.DataFrame, *, title: str | None = None) -> Any:
    """One row per claim, top to bottom in the order of ``rows``: the estimate as a dot and its
    interval as a bar, coloured by the verdict (:data:`VERDICT_COLORS`), 0 marked; a claim
    without an estimate (``estimate`` NaN) gets its label and the word "no estimate" at 0.

    Each row is in its own unit (a rank correlation, a difference of correlations, a difference of
    medians, an accuracy gain): the figure shows where each interval lies against 0 and its
    verdict, not a comparison of sizes across rows. A verdict ``"unadjusted: <word>"`` (an
    interval but no p-value) is coloured by its word and drawn with an open dot.

    Args:
        rows: ``label`` (text), ``estimate``, ``ci_low``, ``ci_high`` (floats, NaN where undefined),
            ``verdict`` (text); optional ``group`` (text): consecutive rows of one group get a bold
            heading (the group and the words their labels share, which the rows then leave out).
        title: the figure's title (default none).

    Returns:
        the matplotlib ``Figure``, 7.5 inches wide (about the text column at 100 dpi) and 0.22 inch per
        row (and heading) tall.

    Raises:
        ValueError: a column is missing or ``rows`` is empty.
    """
    check_columns(rows, ["label", "estimate", "ci_low", "ci_high", "verdict"], "rows")
    if rows.empty:
        raise ValueError("rows is empty: no claim to draw")
    shown = _display_rows(rows)
    n = len(shown)
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.22 * n))
    est = rows["estimate"].to_numpy(dtype=float)
    lo, hi = rows["ci_low"].to_numpy(dtype=float), rows["ci_high"].to_numpy(dtype=float)
    colors = [VERDICT_COLORS.get(_word(v), _OTHER_COLOR) for v in rows["verdict"]]
    hollow = [str(v).startswith(UNADJUSTED) for v in rows["verdict"]]
    ax.axvline(0.0, color="black", lw=0.8)
    for pos, (_, k) in enumerate(shown):
        yi = n - 1 - pos
        if k is None:
            if pos:
                ax.axhline(yi + 0.5, color="0.75", lw=0.6)
            continue
        if np.isfinite(lo[k]) and np.isfinite(hi[k]):
            ax.plot([lo[k], hi[k]], [yi, yi], color=colors[k], lw=2.2, solid_capstyle="butt")
        if np.isfinite(est[k]):
            ax.plot([est[k]], [yi], "o", color=colors[k], ms=5.5, mec=colors[k] if hollow[k] else "white",
                    mew=1.2 if hollow[k] else 0.6, mfc="white" if hollow[k] else colors[k])
        else:
            ax.text(0.0, yi, "  no estimate", va="center", ha="left", fontsize=8, color=colors[k])
    ax.set_yticks(np.arange(n)[::-1])
    ax.set_yticklabels([label for label, _ in shown], fontsize=9)
    for tick, (_, k) in zip(ax.get_yticklabels(), shown, strict=True):
        if k is None:
            tick.set_fontweight("bold")
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("estimate and interval (each row in its own unit; 0 = no effect)")
    ax.grid(axis="y", visible=False)
    present = [v for v in VERDICT_COLORS if v in {_word(x) for x in rows["verdict"]}]
    handles = [plt.Line2D([], [], color=VERDICT_COLORS[v], marker="o", lw=2.2, label=v) for v in present]
    if any(hollow):
        handles.append(plt.Line2D([], [], color="0.3", marker="o", mfc="white", lw=0, label="unadjusted (no p)"))
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=max(1, len(handles)),
              frameon=False, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
