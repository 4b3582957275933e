"""Figures of the model-zoo chapter: training curves and downstream accuracy."""

from __future__ import annotations

from typing import Any

import pandas as pd
import seaborn as sns

from rmqm._utils.validation import check_columns
from rmqm.stats.intervals import t_errorbar

__all__ = ['plot_training_curves', 'plot_downstream_accuracy']


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
