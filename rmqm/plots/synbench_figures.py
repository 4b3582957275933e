"""Figures of the SynBench chapter: the closed-form reference, each encoder's curves and
scores, the mean directions, and the robust linear probe under an input-space attack."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rmqm._utils.validation import check_columns
from rmqm.metrics.synbench.mixture import expected_bound, raw_accuracy
from rmqm.stats.intervals import t_errorbar

__all__ = ['plot_synbench_reference', 'plot_synbench_curves', 'plot_synbench_scores', 'plot_direction_scores',
           'plot_robust_attack', 'plot_width_penalty', 'plot_detectable_gain']


def plot_synbench_reference(s_max: float = 4.9, n: int = 200) -> Any:
    """The closed-form reference on the raw mixture: Bayes accuracy ``Phi(s)`` against the
    mean scale ``s`` (left) and the expected normalised radius ``E(a)`` against the accuracy
    ``a`` (right, log scale), at ``n`` scales from 0.05 to ``s_max``.

    Returns:
        the matplotlib ``Figure`` (two axes).
    """
    s_grid = np.linspace(0.05, s_max, n)
    a = raw_accuracy(s_grid)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].plot(s_grid, a)
    axes[0].set(xlabel="mean scale $s = \\|\\mu\\|$ (input units)", ylabel="Bayes accuracy $\\Phi(s)$ (fraction)",
                title="Raw-data accuracy")
    axes[1].plot(a, expected_bound(a))
    axes[1].set(xlabel="accuracy $a$ (fraction)", ylabel="expected normalised radius $E(a)$",
                yscale="log", title="Raw-data robustness at that accuracy")
    fig.tight_layout()
    return fig


def plot_synbench_curves(curves: pd.DataFrame) -> Any:
    """Expected bound ``E(a_t)`` against the threshold accuracy ``a_t``, one panel per method
    at the largest dimension, one line per epsilon (mean over seeds, 95 % t-interval band),
    with the raw-data curve in black.

    Args:
        curves: stacked SynBench curves of the zoo (``source`` is ``"raw"`` or an epsilon
            label; ``accuracy_threshold``, ``expected_bound``, ``method``, ``dim``).

    Returns:
        the matplotlib ``Figure``.
    """
    check_columns(curves, ["source", "accuracy_threshold", "expected_bound", "method", "dim"], "curves")
    d_max = curves["dim"].max()
    sub = curves[(curves["dim"] == d_max) & (curves["source"] != "raw")]
    raw = curves[curves["source"] == "raw"].drop_duplicates("accuracy_threshold")
    g = sns.relplot(data=sub, x="accuracy_threshold", y="expected_bound", hue="source", col="method", col_wrap=4,
                    kind="line", errorbar=t_errorbar(), height=2.5, aspect=1.1, palette="flare")
    for ax in g.axes.flat:
        ax.plot(raw["accuracy_threshold"], raw["expected_bound"], color="black", linewidth=1.5, label="raw data")
    g.set_axis_labels("threshold accuracy $a_t$", "expected bound $E(a_t)$")
    g.set_titles("{col_name}")
    g.figure.suptitle(f"SynBench curves per method (d = {d_max}); black: raw data", y=1.03)
    return g.figure


def plot_synbench_scores(score_ci: pd.DataFrame, epsilon: float = 0.0) -> Any:
    """SynBench score against the threshold accuracy at ``epsilon``, one line per encoder:
    the mean over seeds with its 95 % t-interval as error bars.

    Args:
        score_ci: :func:`rmqm.study.chapters.synbench.synbench_intervals` (``method, dim,
            optimizer, epsilon, threshold, mean, ci_low, ci_high``).

    Returns:
        the matplotlib ``Figure``.

    Raises:
        ValueError: a column is missing, or no row has ``epsilon``.
    """
    check_columns(score_ci, ["method", "dim", "optimizer", "epsilon", "threshold", "mean", "ci_low", "ci_high"],
                  "score intervals")
    sel = score_ci[np.isclose(score_ci["epsilon"], epsilon)].copy()
    if sel.empty:
        raise ValueError(f"no SynBench score at epsilon {epsilon}; have {sorted(set(score_ci['epsilon']))}")
    sel["encoder"] = sel["method"] + " d=" + sel["dim"].astype(str)
    if sel["optimizer"].nunique() > 1:
        sel["encoder"] += " " + sel["optimizer"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for enc, g in sel.groupby("encoder"):
        err = np.nan_to_num([g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]])
        ax.errorbar(g["threshold"], g["mean"], yerr=err, marker="o", capsize=2, label=enc)
    ax.set(xlabel="threshold accuracy $t$", ylabel="SynBench score (ratio of areas)",
           title=f"SynBench score per encoder at epsilon = {epsilon:g}: mean and 95 % interval over seeds")
    ax.legend(fontsize="x-small", ncol=2, bbox_to_anchor=(1, 1), loc="upper left")
    fig.tight_layout()
    return fig


def plot_direction_scores(directions: pd.DataFrame, threshold: float, epsilon: float = 0.0) -> Any:
    """SynBench score of every encoder under each mean direction choice at ``threshold`` and
    ``epsilon``: one point per encoder and choice (mean over seeds and, for the random choice,
    directions), with the spread of the single runs as a 95 % interval of their values.

    Args:
        directions: :func:`rmqm.study.chapters.synbench_claims.synbench_directions`
            (``choice, threshold, epsilon, score, method, dim``).

    Returns:
        the matplotlib ``Figure``.
    """
    check_columns(directions, ["choice", "threshold", "epsilon", "score", "method", "dim"], "directions")
    at = directions[np.isclose(directions["threshold"], threshold) & np.isclose(directions["epsilon"], epsilon)]
    at = at.assign(encoder=at["method"] + " d=" + at["dim"].astype(str))
    order = at[at["choice"] == "all-ones"].groupby("encoder")["score"].mean().sort_values(ascending=False).index
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(order) + 1.5))
    sns.pointplot(data=at, y="encoder", x="score", hue="choice", order=list(order), errorbar=("pi", 95),
                  dodge=0.5, linestyle="none", marker="o", ax=ax)
    ax.set_xlabel(f"SynBench score (t = {threshold:g}, epsilon = {epsilon:g})")
    ax.set_ylabel("")
    ax.set_title("The mean direction: all-ones (the reference's), random orthogonal to all-ones, random")
    return fig


def plot_robust_attack(attacks: pd.DataFrame, task: str) -> Any:
    """Robust accuracy under the input-space attack against the probe's epsilon, one line per
    method (means over seeds; dashed the larger embedding dimension), one panel per attack radius.

    Args:
        attacks: :func:`rmqm.study.chapters.synbench_claims.claim2_attacks`
            (``epsilon, robust_accuracy, radius, method, dim``).
        task: the real task.

    Returns:
        the matplotlib ``Figure``.
    """
    check_columns(attacks, ["epsilon", "robust_accuracy", "radius", "method", "dim"], "attacks")
    g = sns.relplot(data=attacks, x="epsilon", y="robust_accuracy", hue="method", style="dim", col="radius",
                    kind="line", marker="o", errorbar=None, height=3.2, aspect=0.95, facet_kws={"sharey": False})
    g.set_axis_labels("epsilon of the robust probe", "robust accuracy (fraction)")
    g.set_titles("L-inf radius {col_name}")
    g.figure.suptitle(f"{task}: accuracy under L-inf PGD through encoder and probe (means over seeds)", y=1.04)
    return g.figure


def plot_width_penalty(penalty: pd.DataFrame, threshold: float, epsilon: float = 0.0,
                       n_study: int | None = None) -> Any:
    """The finite-sample penalty of a lossless encoder: SynBench score at ``threshold`` and
    ``epsilon`` against the probe's train sample size, one colour per feature width; solid the
    reference's score, dashed the width-corrected one (epsilon-free); the lossless truth (1)
    dotted, and the study's sample size ``n_study`` as a vertical line.

    Args:
        penalty: :func:`rmqm.metrics.synbench.width.width_penalty`
            (``width, n_train, epsilon, threshold, reference, corrected``).

    Returns:
        the matplotlib ``Figure``.
    """
    check_columns(penalty, ["width", "n_train", "epsilon", "threshold", "reference", "corrected"], "penalty")
    at = penalty[np.isclose(penalty["threshold"], threshold) & np.isclose(penalty["epsilon"], epsilon)]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    colours = sns.color_palette("viridis", at["width"].nunique())
    for colour, (width, part) in zip(colours, at.groupby("width"), strict=True):
        part = part.sort_values("n_train")
        ax.plot(part["n_train"], part["reference"], "-o", color=colour, label=f"d = {width}: reference")
        ax.plot(part["n_train"], part["corrected"], "--s", color=colour, mfc="none", label=f"d = {width}: corrected")
    ax.axhline(1.0, color="black", linestyle=":", linewidth=1)
    if n_study is not None:
        ax.axvline(n_study, color="grey", linewidth=1)
    ax.set(xscale="log", xlabel="train samples per mean scale n (log scale)",
           ylabel=f"score of a lossless encoder (t = {threshold:g})",
           title="Lossless encoders: the reference score falls with width / n")
    ax.legend(fontsize="x-small", ncol=2, bbox_to_anchor=(1, 1), loc="upper left")
    fig.tight_layout()
    return fig


def plot_detectable_gain(detectable: pd.DataFrame) -> Any:
    """Claim 2's detectable effect: the smallest mean robust-accuracy gain over a random epsilon the
    test would detect (80 % power by default) against the number of encoders, one line per direction
    choice, with the study's encoder count and its observed mean gain (absolute value) marked.

    Args:
        detectable: :func:`rmqm.experiments.synbench_claims.detectable_gain`.

    Returns:
        the matplotlib ``Figure``.
    """
    check_columns(detectable, ["choice", "n_encoders", "detectable", "observed", "n_study"], "detectable")
    fig, ax = plt.subplots(figsize=(7, 4))
    for (choice, part), colour in zip(detectable.groupby("choice", sort=False), sns.color_palette(), strict=False):
        ax.plot(part["n_encoders"], part["detectable"], color=colour, label=f"{choice}: detectable gain")
        ax.plot(part["n_study"].iloc[0], abs(part["observed"].iloc[0]), "o", color=colour,
                label=f"{choice}: |observed gain| at the study's encoders")
    ax.set(xlabel="number of encoders (each counted once)", ylabel="robust-accuracy gain over a random epsilon",
           title="Claim 2: the effect its test can detect")
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig
