"""Chapter 5, do task-free scores predict downstream accuracy? The scores of every zoo
model side by side, their correlations with accuracy over seeds, and each paper's claim."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from rmqm.stats.correlations import seed_correlations
from rmqm.stats.intervals import summarize_seeds
from rmqm.stats.verdicts import format_interval, interval_verdict
from rmqm.study.chapters.common import CORRELATION, PROBES, interval_pivot, load_zoo, probe_columns

__all__ = ['SCORES', 'TARGETS', 'CLAIMS', 'score_labels', 'score_table', 'score_headline', 'score_overview',
           'correlations', 'correlation_means', 'correlation_intervals', 'claim_verdict', 'verdict_lines']

#: The task-free scores and the downstream targets (mean accuracy of each probe over the tasks).
SCORES: tuple[str, ...] = ("rmqm_noise", "rmqm_pgd", "synbench", "rankme", "alpha_req")
TARGETS: tuple[str, ...] = tuple(f"mean_{probe}" for probe in PROBES)
#: Each paper's claim: (score, target, coefficient, the sign its paper predicts).
CLAIMS: tuple[tuple[str, str, str, str], ...] = (
    ("rmqm_noise", "mean_1nn", "pearson", "positive"), ("rmqm_pgd", "mean_1nn", "pearson", "positive"),
    ("synbench", "mean_linear", "spearman", "positive"), ("rankme", "mean_1nn", "pearson", "positive"),
    ("rankme", "mean_linear", "spearman", "positive"), ("alpha_req", "mean_1nn", "pearson", "negative"),
)
_ZOOS = ("all encoders", "without random-init")


def score_labels(synbench_threshold: float) -> dict[str, str]:
    """Readable names of the :data:`SCORES` (axis labels and verdict lines)."""
    return {"rmqm_noise": "RMQM, white noise", "rmqm_pgd": "RMQM, PGD",
            "synbench": f"SynBench (t = {synbench_threshold})", "rankme": "RankMe (effective rank)",
            "alpha_req": "alpha-ReQ (spectral decay)"}


def score_table(results: str | os.PathLike, synbench_threshold: float, synbench_epsilon: float) -> pd.DataFrame:
    """The zoo table with every model's task-free scores and mean accuracies; written to
    ``results/all_scores.parquet``.

    Reads ``zoo.parquet``, ``rmqm_scores.parquet`` and ``synbench_scores.parquet`` of
    ``results`` and adds ``rmqm_noise``, ``rmqm_pgd``, ``synbench`` (the score at
    ``synbench_threshold`` and ``synbench_epsilon``) and the :data:`TARGETS` (each probe's
    accuracy averaged over the transfer tasks).

    Raises:
        FileNotFoundError: a table is missing (run the notebooks it depends on first).
        ValueError: no SynBench score at that threshold and epsilon.
    """
    results = Path(results)
    zoo = load_zoo(results)
    for name in ("rmqm_scores.parquet", "synbench_scores.parquet"):
        if not (results / name).is_file():
            raise FileNotFoundError(f"no table {results / name}; run the notebooks this one depends on first")
    rmqm_scores = pd.read_parquet(results / "rmqm_scores.parquet")
    synbench = pd.read_parquet(results / "synbench_scores.parquet")
    table = zoo.merge(
        rmqm_scores.pivot_table(index="name", columns="perturbation", values="rmqm")
        .rename(columns={"noise": "rmqm_noise", "pgd": "rmqm_pgd"}).reset_index(), on="name")
    sel = synbench[np.isclose(synbench["threshold"], synbench_threshold)
                   & np.isclose(synbench["epsilon"], synbench_epsilon)]
    if sel.empty:
        raise ValueError(f"no SynBench score at threshold {synbench_threshold}, epsilon {synbench_epsilon}")
    table = table.merge(sel[["name", "score"]].rename(columns={"score": "synbench"}), on="name")
    probes = probe_columns(zoo)
    for probe in PROBES:
        table[f"mean_{probe}"] = table[[c for c in probes if c.endswith("_" + probe)]].mean(axis=1)
    table.to_parquet(results / "all_scores.parquet")
    return table


def score_headline(table: pd.DataFrame) -> str:
    """One line: how many models, encoders and seeds the scores cover."""
    return (f"{len(table)} models: {table.groupby(['method', 'dim', 'optimizer']).ngroups} encoders x "
            f"{table['seed'].nunique()} seeds")


def score_overview(table: pd.DataFrame) -> pd.DataFrame:
    """Mean of each score and target per encoder over seeds, rounded to 3 digits."""
    return table.groupby(["method", "family", "dim", "optimizer"])[[*SCORES, *TARGETS]].mean().round(3)


def correlations(
    table: pd.DataFrame, results: str | os.PathLike, confidence: float = 0.95
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Correlation of each score with each target, across the encoders of each seed, with and
    without the random-init encoders (a zoo is left out when a seed has fewer than 3 encoders).

    Writes ``results/correlations_per_seed.parquet`` and ``results/correlations.parquet``.

    Returns:
        the per-seed coefficients (:func:`rmqm.stats.correlations.seed_correlations` plus
        ``zoo``) and their summary over seeds (:func:`summarize_seeds` at ``confidence``,
        clipped to [-1, 1], plus ``n_encoders``: the fewest encoders of a seed).

    Raises:
        ValueError: no zoo has at least 3 encoders in every seed.
    """
    results = Path(results)
    parts = []
    for label, sub in zip(_ZOOS, (table, table[table["family"] != "random"]), strict=True):
        if len(sub) and sub.groupby("seed").size().min() >= 3:
            parts.append(seed_correlations(sub, list(SCORES), list(TARGETS)).assign(zoo=label))
    if not parts:
        raise ValueError("every seed needs at least 3 encoders to correlate scores with accuracy")
    per_seed_r = pd.concat(parts, ignore_index=True)
    per_seed_r.to_parquet(results / "correlations_per_seed.parquet")
    keys = ["zoo", "score", "target", "method"]
    corr = summarize_seeds(per_seed_r, "r", by=keys, confidence=confidence, bounds=CORRELATION)
    corr = corr.merge(per_seed_r.groupby(keys)["n"].min().rename("n_encoders").reset_index())
    corr.to_parquet(results / "correlations.parquet")
    return per_seed_r, corr


def correlation_means(corr: pd.DataFrame) -> pd.DataFrame:
    """Mean coefficient over seeds per zoo, score and coefficient (rows) and target (columns), rounded."""
    return corr.pivot_table(index=["zoo", "score", "method"], columns="target", values="mean").round(2)


def correlation_intervals(corr: pd.DataFrame) -> pd.DataFrame:
    """:func:`correlation_means` as text ``"+mean [+low, +high]"`` with the t-intervals."""
    return interval_pivot(corr, ["zoo", "score", "method"], "target", digits=2, signed=True)


def claim_verdict(corr: pd.DataFrame, score: str, target: str, method: str, zoo: str, expected: str) -> str:
    """What the summary ``corr`` of :func:`correlations` says about a claim that ``score``
    correlates with ``target`` in sign ``expected`` (coefficient ``method``, in ``zoo``).

    Returns:
        ``"<verdict>, <method> r = <interval> over <n> seeds of <m> encoders each"`` (see
        :func:`rmqm.stats.verdicts.interval_verdict`), or a "not measurable" note.
    """
    row = corr[(corr["score"] == score) & (corr["target"] == target) & (corr["method"] == method)
               & (corr["zoo"] == zoo)]
    if row.empty or not np.isfinite(row["mean"].iloc[0]):
        return "not measurable (too few encoders or a constant score)"
    r = row.iloc[0]
    word = interval_verdict(r["ci_low"], r["ci_high"], expected=expected)
    if word == "inconclusive":
        word = "inconclusive: the interval includes 0"
    return (f"{word}, {method} r = {format_interval(r['mean'], r['ci_low'], r['ci_high'])} over "
            f"{int(r['n_seeds'])} seeds of {int(r['n_encoders'])} encoders each")


def verdict_lines(table: pd.DataFrame, corr: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    """The verdict on each of the :data:`CLAIMS` in each zoo, after the range of alpha-ReQ."""
    lines = [f"alpha-ReQ ranges from {table['alpha_req'].min():.2f} to {table['alpha_req'].max():.2f} in this zoo"]
    for zoo in corr["zoo"].unique():
        lines.append(f"--- {zoo} ---")
        for score, target, method, expected in CLAIMS:
            lines.append(f"{labels[score]:>28} vs {target:<11}: "
                         f"{claim_verdict(corr, score, target, method, zoo, expected)}")
    return lines
