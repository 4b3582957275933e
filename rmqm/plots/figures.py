"""General figures of the book: distance bands, score scatter panels, one SynBench result.

``BOOK_WIDTH`` and ``book_style`` live in :mod:`rmqm.plots.style` and are re-exported here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from rmqm.metrics.synbench.evaluate import SynBenchResult
from rmqm.plots.style import BOOK_WIDTH, book_style

__all__ = ['BOOK_WIDTH', 'book_style', 'plot_distance_bands', 'plot_score_scatter', 'plot_synbench']


_SERIES_LABEL = {
    "a": r"$a_k$ (embedding units)",
    "b": r"$b_k$ (embedding units)",
}


def plot_distance_bands(
    bands: pd.DataFrame,
    series: str = "a",
    hue: str = "method",
    ax: Any = None,
    xlabel: str = "alteration strength",
    title: str | None = None,
) -> Any:
    """Median curve and quantile band per ``hue`` group of :func:`rmqm.stats.curves.level_bands`.

    Args:
        bands: output of :func:`rmqm.stats.curves.level_bands` grouped by ``hue``.
        series: ``"a"`` or ``"b"``.
        hue: the grouping column to colour by.
        xlabel: label of the strength axis, with its unit (e.g. noise std in pixel units).
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    if series not in set(bands["series"]):
        raise ValueError(f"series {series!r} not in the bands table; has {sorted(set(bands['series']))}")
    if ax is None:
        _, ax = plt.subplots(figsize=(BOOK_WIDTH / 2, 4))
    data = bands[bands["series"] == series]
    groups = list(dict.fromkeys(data[hue]))
    colours = dict(zip(groups, sns.color_palette("colorblind", len(groups)), strict=True))
    for group in groups:
        g = data[data[hue] == group].sort_values("strength")
        ax.fill_between(g["strength"], g["low"], g["high"], color=colours[group], alpha=0.15, linewidth=0)
        ax.plot(g["strength"], g["median"], color=colours[group], label=str(group), linewidth=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_SERIES_LABEL.get(series, series))
    ax.set_title(title or ("distance from the original" if series == "a" else "step size"))
    ax.legend(title=hue, fontsize="small")
    return ax


def plot_score_scatter(
    table: pd.DataFrame,
    scores: Sequence[str],
    target: str,
    hue: str = "family",
    style: str | None = None,
    target_label: str | None = None,
    score_labels: dict[str, str] | None = None,
    ncols: int = 3,
    title: str | None = None,
) -> Any:
    """One scatter panel per score against ``target`` (e.g. a downstream accuracy).

    Args:
        table: one row per item (e.g. encoder and seed) with the ``scores``, ``target``,
            ``hue`` (and ``style``) columns.
        scores: the score columns, one panel each, ``ncols`` panels a row.
        target: the column on every panel's y-axis.
        hue, style: columns that colour and mark the points; the legend is on the first panel.
        target_label, score_labels: axis labels (default the column names).
        title: the figure's title (none by default).

    Returns:
        the matplotlib ``Figure``.

    Raises:
        ValueError: no score, or a column missing from ``table``.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    if not scores:
        raise ValueError("give at least one score column")
    missing = [c for c in (*scores, target, hue) if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}")
    ncols = min(ncols, len(scores))
    nrows = -(-len(scores) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(BOOK_WIDTH, 3.4 * nrows), squeeze=False)
    labels = score_labels or {}
    for i, score in enumerate(scores):
        ax = axes[i // ncols][i % ncols]
        sns.scatterplot(data=table, x=score, y=target, hue=hue, style=style, ax=ax, s=60,
                        legend=(i == 0))
        ax.set_xlabel(labels.get(score, score))
        ax.set_ylabel(target_label or target)
        ax.set_title(labels.get(score, score), fontsize="medium")
    for j in range(len(scores), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    if axes[0][0].get_legend() is not None:
        sns.move_legend(axes[0][0], "lower left", fontsize="small", title_fontsize="small")
    fig.tight_layout()
    if title is not None:
        fig.suptitle(title, y=1.02)
    return fig


def plot_synbench(result: SynBenchResult, ax: Any = None, title: str | None = None) -> Any:
    """Expected bound against threshold accuracy: raw reference vs each epsilon.

    Returns:
        the matplotlib ``Axes`` drawn on (a new figure when ``ax`` is ``None``).
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    if not isinstance(result, SynBenchResult):
        raise TypeError(f"plot_synbench needs a SynBenchResult; got {type(result).__name__}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4))
    data = result.curves.assign(
        source=lambda df: np.where(df["source"] == "raw", "raw data (closed form)",
                                   "representation, " + df["source"].str.replace("epsilon", "ε"))
    )
    sns.lineplot(data=data, x="accuracy_threshold", y="expected_bound", hue="source", style="source", ax=ax)
    ax.set_xlabel("threshold accuracy $a_t$")
    ax.set_ylabel(r"expected bound $E(a_t)$")
    ax.set_ylim(bottom=0)
    ax.grid(True, linestyle="-.", alpha=0.5)
    ax.legend(title=None, fontsize="small")
    if title is None:
        title = f"SynBench: {result.config.get('encoder', 'encoder')}"
    ax.set_title(title)
    return ax
