"""Figures of the RMQM chapters: scores per encoder, distance curves, per-point statistics,
noise against PGD, relative-change spikes, noise schedules and attack losses."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from rmqm._utils.validation import check_columns
from rmqm.plots.figures import plot_distance_bands
from rmqm.stats.curves import level_bands
from rmqm.stats.intervals import t_errorbar

__all__ = ['plot_rmqm_bars', 'plot_distance_curves', 'plot_point_statistics', 'plot_noise_vs_pgd',
           'plot_relative_change_spikes', 'plot_noise_schedules', 'plot_attack_losses']

#: Strength-axis label of each alteration, with its unit.
STRENGTH_LABEL = {"noise": "noise std $\\sigma_k$ (pixel units)", "pgd": "PGD steps $k$"}
#: Per-point statistics drawn by :func:`plot_point_statistics`.
POINT_STATISTICS = ("A", "B", "S_a", "S_b")


def plot_rmqm_bars(summaries: pd.DataFrame) -> Any:
    """Horizontal RMQM bars per method and dimension, one panel per alteration: the mean over
    seeds with a 95 % t-interval whisker.

    Args:
        summaries: one row per model and alteration (``rmqm``, ``method``, ``dim``,
            ``perturbation``), e.g. :attr:`rmqm.study.chapters.ssl_vs_supervised.ZooMeasurements.summaries`.

    Returns:
        the matplotlib ``Figure``.
    """
    check_columns(summaries, ["rmqm", "method", "dim", "perturbation"], "summaries")
    wrap = 2 if summaries["perturbation"].nunique() > 2 else None
    g = sns.catplot(data=summaries, x="rmqm", y="method", hue="dim", col="perturbation", col_wrap=wrap, kind="bar",
                    errorbar=t_errorbar(), height=3.6, aspect=1.3, orient="h", sharex=False, palette="crest")
    g.set_axis_labels("RMQM (dimensionless)", "pretraining method")
    g.set_titles("{col_name}")
    g.figure.suptitle("RMQM of each encoder under white noise and PGD (mean and 95 % interval over seeds)", y=1.03)
    return g.figure


def strength_label(setting: str) -> str:
    """The strength-axis label of an alteration setting (``noise`` or any ``pgd...`` setting)."""
    return STRENGTH_LABEL["noise" if setting == "noise" else "pgd"]


def _settings(table: pd.DataFrame) -> list[str]:
    """The alteration settings of a table in display order: noise first, then the others as they come."""
    seen = list(dict.fromkeys(table["perturbation"]))
    return sorted(seen, key=lambda s: (s != "noise", seen.index(s)))


def plot_distance_curves(levels: pd.DataFrame, quantiles: tuple[float, float] = (0.1, 0.9)) -> Any:
    """Median distance from the original ``a_k`` (top) and step size ``b_k`` (bottom) per
    method against the alteration strength, one column per alteration (white noise first),
    with the band between ``quantiles`` of the points (all seeds pooled), at the largest dimension.

    Args:
        levels: per-point, per-level table (``perturbation``, ``dim``, ``method``, ``level``,
            ``strength``, ``a``, ``b``).

    Returns:
        the matplotlib ``Figure`` (2 x n axes; the legend on the top-left one).
    """
    check_columns(levels, ["perturbation", "dim", "method", "level", "strength", "a", "b"], "levels")
    d_max = levels["dim"].max()
    settings = _settings(levels)
    fig, axes = plt.subplots(2, len(settings), figsize=(5 * len(settings), 7.5), squeeze=False)
    for i, setting in enumerate(settings):
        sub = levels[(levels["perturbation"] == setting) & (levels["dim"] == d_max)]
        bands = level_bands(sub, by=("method",), quantiles=quantiles)
        for j, series in enumerate(("a", "b")):
            what = "distance from the original" if series == "a" else "step size"
            plot_distance_bands(bands, series, hue="method", ax=axes[j][i], xlabel=strength_label(setting),
                                title=f"{setting}: {what}")
            if (i, j) != (0, 0):
                axes[j][i].get_legend().remove()
    low, high = (round(100 * q) for q in quantiles)
    fig.suptitle(f"Per-point distance curves, median and {low}-{high} % band (d = {d_max})")
    fig.tight_layout()
    return fig


def plot_point_statistics(points: pd.DataFrame) -> Any:
    """Box plots of the per-point statistics ``A, B, S_a, S_b`` by method family and
    alteration (one panel each; the relative changes ``S`` on a log scale). Missing and
    non-positive values are left out.

    Args:
        points: one row per model, alteration and point (``family``, ``perturbation``,
            ``dim``, ``A``, ``B``, ``S_a``, ``S_b``).

    Returns:
        the matplotlib ``Figure``.
    """
    check_columns(points, ["family", "perturbation", "dim", *POINT_STATISTICS], "points")
    long = points.melt(id_vars=["family", "perturbation", "dim"], value_vars=list(POINT_STATISTICS),
                       var_name="statistic", value_name="value").dropna()
    long = long[long["value"] > 0]
    g = sns.catplot(data=long, x="family", y="value", hue="perturbation", col="statistic", kind="box",
                    col_wrap=2, sharey=False, height=3.2, aspect=1.4, showfliers=False)
    for ax, stat in zip(g.axes.flat, POINT_STATISTICS, strict=False):
        if stat.startswith("S"):
            ax.set_yscale("log")
        ax.set_ylabel(f"{stat} per point" + (" (embedding units)" if stat in "AB" else " (relative change, log)"))
    g.set_xlabels("method family")
    g.figure.suptitle("Per-point statistics by method family (boxes: quartiles, whiskers: 1.5 IQR)", y=1.02)
    return g.figure


def plot_noise_vs_pgd(scores: pd.DataFrame, pgd: str = "pgd", pgd_label: str = "PGD") -> Any:
    """RMQM under a PGD setting against RMQM under white noise, one point per encoder and seed.

    Args:
        scores: one row per model with ``noise``, ``pgd`` (the column named by ``pgd``),
            ``method`` and ``dim`` columns.
        pgd_label: how the y-axis names the PGD setting.

    Returns:
        the matplotlib ``Figure``.
    """
    check_columns(scores, ["noise", pgd, "method", "dim"], "scores")
    fig, ax = plt.subplots()
    sns.scatterplot(data=scores, x="noise", y=pgd, hue="method", style="dim", s=60, ax=ax)
    ax.set(xlabel="RMQM under white noise", ylabel=f"RMQM under {pgd_label}",
           title="Same encoders, two alterations (one point per encoder and seed)")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1), fontsize="small")
    return fig


def plot_relative_change_spikes(spikes: pd.DataFrame) -> Any:
    """Median (solid) and 99th percentile (dashed) of ``|r^b_k|`` per level and family, on a
    log scale; one panel per alteration, white noise first.

    Args:
        spikes: :func:`rmqm.study.chapters.noise_vs_pgd.relative_changes` (``perturbation``,
            ``family``, ``level``, ``median``, ``p99``).

    Returns:
        the matplotlib ``Figure`` (two axes).
    """
    check_columns(spikes, ["perturbation", "family", "level", "median", "p99"], "spikes")
    settings = _settings(spikes)
    fig, axes = plt.subplots(1, len(settings), figsize=(5 * len(settings), 4), squeeze=False)
    for i, (ax, setting) in enumerate(zip(axes[0], settings, strict=True)):
        xlabel = "noise level $k$" if setting == "noise" else "PGD step $k$"
        sub = spikes[spikes["perturbation"] == setting]
        sns.lineplot(data=sub, x="level", y="median", hue="family", ax=ax, legend=(i == 0))
        sns.lineplot(data=sub, x="level", y="p99", hue="family", ax=ax, linestyle="--", legend=False)
        ax.set(yscale="log", xlabel=xlabel, ylabel="$|r^b_k|$ (relative change, log scale)",
               title=f"{setting}: median (solid) and 99th percentile (dashed)")
    fig.tight_layout()
    return fig


def _variant_bars(table: pd.DataFrame, hue: str, xlabel: str, title: str, height: float, aspect: float,
                  title_y: float) -> Any:
    check_columns(table, ["rmqm", "method", "dim", hue], "table")
    g = sns.catplot(data=table, x="rmqm", y="method", hue=hue, col="dim", kind="bar", errorbar=t_errorbar(),
                    height=height, aspect=aspect, orient="h")
    g.set_axis_labels(xlabel, "pretraining method")
    g.set_titles("d = {col_name}")
    g.figure.suptitle(title, y=title_y)
    return g.figure


def plot_noise_schedules(nested: pd.DataFrame) -> Any:
    """Horizontal RMQM bars under white noise per method, fresh noise per level against one
    nested draw (column ``noise``), one panel per dimension: the mean over seeds with a 95 %
    t-interval whisker.

    Args:
        nested: :func:`rmqm.study.chapters.noise_vs_pgd.noise_schedules` (``rmqm``,
            ``method``, ``dim``, ``noise``).

    Returns:
        the matplotlib ``Figure``.
    """
    return _variant_bars(nested, "noise", "RMQM under white noise", "Fresh against nested noise",
                         height=3.4, aspect=1.2, title_y=1.03)


def plot_attack_losses(attacks: pd.DataFrame) -> Any:
    """Horizontal RMQM bars under PGD per method, one bar per PGD mode (column ``attack``:
    the reference's pipeline, each model's own loss without output augmentation, the shared
    displacement attack), one panel per dimension: the mean over seeds with a 95 % t-interval
    whisker.

    Args:
        attacks: :func:`rmqm.study.chapters.noise_vs_pgd.pgd_mode_table` (``rmqm``,
            ``method``, ``dim``, ``attack``).

    Returns:
        the matplotlib ``Figure``.
    """
    return _variant_bars(attacks, "attack", "RMQM under PGD", "RMQM under the three PGD modes",
                         height=3.0, aspect=1.3, title_y=1.04)
