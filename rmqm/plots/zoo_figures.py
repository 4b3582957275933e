"""Figures of the model-zoo chapter: training curves and downstream accuracy."""

from __future__ import annotations

from typing import Any

import pandas as pd
import seaborn as sns

from rmqm._utils.validation import check_columns
from rmqm.stats.intervals import t_errorbar

__all__ = ['plot_training_curves', 'plot_learning_curves', 'plot_downstream_accuracy']


def plot_training_curves(curves: pd.DataFrame) -> Any:
    """Smoothed training loss against optimisation step, one panel per method (own y-axis),
    one line per embedding dimension: the mean over seeds with a 95 % t-interval band.

    Args:
        curves: :func:`rmqm.study.chapters.zoo.training_curves` (``step``, ``smoothed loss``,
            ``method``, ``dim``, ``seed``).

    Returns:
        the matplotlib ``Figure``.

    Raises:
        ValueError: a column is missing.
    """
    check_columns(curves, ["step", "smoothed loss", "method", "dim"], "curves")
    g = sns.relplot(data=curves, x="step", y="smoothed loss", hue="dim", col="method", col_wrap=3,
                    kind="line", errorbar=t_errorbar(), facet_kws={"sharey": False, "sharex": False}, height=2.6,
                    aspect=1.3)
    g.set_axis_labels("optimisation step", "training loss (method's own units)")
    g.figure.suptitle("Training curves per pretraining method", y=1.02)
    return g.figure


def plot_learning_curves(curves: pd.DataFrame, plateaus: pd.DataFrame | None = None) -> Any:
    """In-distribution accuracy against training epoch (log2 axis), one panel per (probe,
    dimension), one line per method: the mean over seeds with a 95 % t-interval band
    clipped to [0, 1]. Training maturity as a measured axis: a flat end is a plateau.

    Args:
        curves: :func:`rmqm.study.chapters.zoo.learning_curves_long` (``epoch``,
            ``accuracy``, ``method``, ``probe``, ``dim``).
        plateaus: optional table with ``method``, ``dim`` and a boolean ``plateau`` (e.g. the
            one of :func:`rmqm.study.chapters.zoo.plateau_summary`); the methods not on a
            plateau are named in each panel of their dimension ("still improving: ...").

    Returns:
        the matplotlib ``Figure``.

    Raises:
        ValueError: a column is missing.
    """
    check_columns(curves, ["epoch", "accuracy", "method", "probe", "dim"], "learning curves")
    g = sns.relplot(data=curves, x="epoch", y="accuracy", hue="method", col="dim", row="probe", kind="line",
                    marker="o", errorbar=t_errorbar(bounds=(0, 1)), height=2.8, aspect=1.3,
                    facet_kws={"sharey": "row"})
    for ax in g.axes.flat:
        ax.set_xscale("log", base=2)
    g.set_axis_labels("training epoch (checkpoint, log2 scale)", "accuracy (fraction)")
    g.set_titles("{row_name}, d={col_name}")
    if plateaus is not None:
        check_columns(plateaus, ["method", "dim", "plateau"], "plateaus")
        for (_, dim), ax in g.axes_dict.items():
            rising = sorted(plateaus.loc[(plateaus["dim"] == dim) & ~plateaus["plateau"].astype(bool), "method"])
            ax.text(0.02, 0.02, "still improving: " + (", ".join(rising) if rising else "none"),
                    transform=ax.transAxes, fontsize="x-small", va="bottom", ha="left", wrap=True)
    g.figure.suptitle("Learning curves: in-distribution accuracy at each checkpoint", y=1.02)
    return g.figure


def plot_downstream_accuracy(acc: pd.DataFrame) -> Any:
    """Horizontal bars of accuracy per method and probe, one panel per (dimension, task):
    the mean over seeds with a 95 % t-interval whisker clipped to [0, 1].

    Args:
        acc: :func:`rmqm.study.chapters.zoo.downstream_long` (``accuracy``, ``method``,
            ``probe``, ``task``, ``dim``).

    Returns:
        the matplotlib ``Figure``.

    Raises:
        ValueError: a column is missing.
    """
    check_columns(acc, ["accuracy", "method", "probe", "task", "dim"], "accuracy table")
    g = sns.catplot(data=acc, x="accuracy", y="method", hue="probe", col="task", row="dim", kind="bar",
                    errorbar=t_errorbar(bounds=(0, 1)), height=2.8, aspect=1.2, orient="h")
    g.set_axis_labels("accuracy (fraction)", "pretraining method")
    g.set_titles("{col_name}, d={row_name}")
    g.figure.suptitle("Downstream accuracy of frozen embeddings", y=1.02)
    return g.figure
