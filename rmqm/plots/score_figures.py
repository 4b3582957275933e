"""Figures of the last chapter: correlations of task-free scores with downstream accuracy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rmqm._utils.validation import check_columns

__all__ = ['CORRELATION_METHODS', 'plot_correlations', 'plot_verdict_forest']

#: The coefficients drawn, one panel each.
CORRELATION_METHODS: tuple[str, ...] = ("pearson", "spearman", "kendall")


def plot_correlations(
    corr: pd.DataFrame,
    per_seed: pd.DataFrame,
    scores: Sequence[str],
    labels: Mapping[str, str],
    confidence: float = 0.95,
    target: str = "mean_1nn",
) -> Any:
    """Correlation of each score with ``target``: the mean over seeds with its t-interval,
    one marker per zoo (e.g. with and without random-init), and each seed's coefficient as a
    grey dot; one panel per coefficient (Pearson, Spearman, Kendall).

    Args:
        corr: the summary over seeds (``zoo, score, target, method, mean, ci_low, ci_high``).
        per_seed: the per-seed coefficients (``zoo, score, target, method, r``).
        scores: the scores, top to bottom; labels: their names on the y-axis.
        confidence: the intervals' level (for the title).
        target: the accuracy column the coefficients are about.

    Returns:
        the matplotlib ``Figure`` (three axes sharing the y-axis; x from -1.05 to 1.05).

    Raises:
        ValueError: a column is missing, or a score has no label.
    """
    check_columns(corr, ["zoo", "score", "target", "method", "mean", "ci_low", "ci_high"], "corr")
    check_columns(per_seed, ["zoo", "score", "target", "method", "r"], "per_seed")
    unlabelled = [s for s in scores if s not in labels]
    if unlabelled:
        raise ValueError(f"score(s) {unlabelled} have no label")
    scores = list(scores)
    view = corr[corr["target"] == target]
    dots = per_seed[per_seed["target"] == target]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.8), sharey=True)
    for ax, method in zip(axes, CORRELATION_METHODS, strict=True):
        for i, (zoo_label, sub) in enumerate(view[view["method"] == method].groupby("zoo", sort=False)):
            sub = sub.set_index("score").reindex(scores)
            y = np.arange(len(scores)) + (i - 0.5) * 0.3
            err = np.nan_to_num(np.clip([sub["mean"] - sub["ci_low"], sub["ci_high"] - sub["mean"]], 0, None))
            ax.errorbar(sub["mean"], y, xerr=err, fmt="o", capsize=3, label=zoo_label)
            d = dots[(dots["method"] == method) & (dots["zoo"] == zoo_label)]
            ax.scatter(d["r"], d["score"].map({s: k for k, s in enumerate(scores)}) + (i - 0.5) * 0.3,
                       s=8, color="grey", alpha=0.7, zorder=3)
        ax.axvline(0, color="grey", linewidth=1)
        ax.set(title=method.capitalize(), xlim=(-1.05, 1.05))
    axes[0].set_yticks(range(len(scores)), [labels[s] for s in scores])
    axes[0].invert_yaxis()
    fig.supxlabel("correlation with mean 1-NN accuracy" if target == "mean_1nn" else f"correlation with {target}")
    fig.suptitle(f"Correlation with downstream accuracy: mean over seeds, {confidence:.0%} t-interval "
                 "(grey: each seed)")
    fig.tight_layout()
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2,
               fontsize="small")
    return fig


def plot_verdict_forest(verdicts: pd.DataFrame, labels: Mapping[str, str] | None = None, *,
                        zoo: str = "all encoders", method: str = "spearman",
                        analyses: Sequence[str] = ("per task",),
                        endpoints: Sequence[str] = ("primary", "secondary", "confirmatory")) -> Any:
    """Forest plot of a verdict table: each test's estimate with its interval, one row per
    score x task (x baseline), primary endpoints drawn larger and in colour, the verdict
    written at the right.

    Args:
        verdicts: ``claim, endpoint, analysis, score, task, target, method, zoo, estimate, ci_low,
            ci_high, verdict`` (``rmqm.study.chapters.downstream.verdicts``).
        labels: readable score names (default: the column names).
        zoo, method, analyses, endpoints: which rows to draw (by default the per-task rows of
            the primary and secondary endpoints: each score with its paper's probe).

    Returns:
        the matplotlib ``Figure``: the forest (x from -1.05 to 1.05, a line at 0) and a twin axes
        whose right-hand tick labels are the verdicts.

    Raises:
        ValueError: a missing column, or no row to draw.
    """
    check_columns(verdicts, ["claim", "endpoint", "analysis", "score", "task", "target", "method", "zoo",
                             "estimate", "ci_low", "ci_high", "verdict"], "verdicts")
    rows = verdicts[(verdicts["zoo"] == zoo) & (verdicts["method"] == method)
                    & verdicts["analysis"].isin(list(analyses))
                    & verdicts["endpoint"].isin(list(endpoints))].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"no {method} rows of analyses {list(analyses)} and endpoints {list(endpoints)} "
                         f"in zoo {zoo!r} to draw")
    labels = dict(labels or {})
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(rows) + 1.2))
    y = np.arange(len(rows))
    est, low, high = (rows[c].astype(float).to_numpy() for c in ("estimate", "ci_low", "ci_high"))
    err = np.nan_to_num(np.clip([est - low, high - est], 0, None))
    primary = rows["endpoint"].isin(["primary", "confirmatory"]).to_numpy()
    for mask, fmt, color, size, label in ((~primary, "o", "grey", 4.0, "secondary / exploratory"),
                                          (primary, "D", "C3", 7.0, "primary / confirmatory")):
        if mask.any():
            ax.errorbar(est[mask], y[mask], xerr=err[:, mask], fmt=fmt, color=color, markersize=size, capsize=2,
                        linestyle="none", label=label)
    names = [f"{labels.get(s, s)} | {t} ({g.rsplit('_', 1)[-1]})"
             for s, t, g in zip(rows["score"], rows["task"], rows["target"], strict=True)]
    ax.set_yticks(y, names, fontsize="small")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set(xlim=(-1.05, 1.05), xlabel=f"{method.capitalize()} correlation, seed mean (Fisher z),\n"
           "bootstrap interval")
    ax.invert_yaxis()
    right = ax.twinx()  # the verdicts, as tick labels on the right (inside the figure's layout)
    right.set_ylim(ax.get_ylim())
    right.set_yticks(y, [str(v) for v in rows["verdict"]], fontsize="x-small")
    ax.legend(loc="lower left", fontsize="x-small")
    ax.set_title(f"Each score against accuracy per task ({zoo})", fontsize="medium")
    fig.tight_layout()
    return fig
