"""Chapter 2, self-supervised against supervised: RMQM of every zoo model and the paper's claim."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rmqm.experiments.cache import ZooRMQM
from rmqm.experiments.engine import prefetch_rmqm
from rmqm.stats.intervals import summarize_seeds
from rmqm.stats.verdicts import family_contrast, format_interval, interval_verdict
from rmqm.study.chapters.common import ENCODER, interval_pivot, model_meta

__all__ = ['VERDICT_WORDS', 'ZooMeasurements', 'measure_zoo', 'rmqm_scores', 'rmqm_intervals', 'rmqm_components',
           'step_verdicts', 'verdict_lines']

#: The verdict words of :func:`rmqm.stats.verdicts.interval_verdict`, in the order they are counted.
VERDICT_WORDS: tuple[str, ...] = ("supported", "contradicted", "inconclusive", "no interval")


@dataclass(frozen=True)
class ZooMeasurements:
    """RMQM tables of every zoo model under each alteration, stacked.

    Each table is the model's table (see :func:`rmqm.metrics.rmqm.measure.measure_rmqm`)
    with ``name, method, family, dim, optimizer, seed`` and ``perturbation`` (the alteration) set.

    Attributes:
        summaries: one row per model and alteration (the ``scope == 'all'`` summary row).
        points: one row per model, alteration and test point (``A, B, S_a, S_b``, ...).
        levels: one row per model, alteration, point and level (``a, b``, ...).
    """

    summaries: pd.DataFrame
    points: pd.DataFrame
    levels: pd.DataFrame


def measure_zoo(zoo: pd.DataFrame, rmqm_of: ZooRMQM, settings: Sequence[str] = ("noise", "pgd"),
                scheduler: str | None = None) -> ZooMeasurements:
    """RMQM of every model of ``zoo`` under each alteration of ``settings`` (cached by ``rmqm_of``);
    the measurements missing from the store run first as jobs of the engine
    (:func:`rmqm.experiments.engine.prefetch_rmqm`, where ``scheduler`` says).

    Raises:
        ValueError: ``settings`` is empty or names an alteration ``rmqm_of`` does not know.
    """
    if not settings:
        raise ValueError("give at least one alteration setting")
    prefetch_rmqm(rmqm_of, [(row.name, row.seed, s) for row in zoo.itertuples() for s in settings],
                  scheduler=scheduler)
    summaries, points, levels = [], [], []
    for row in zoo.itertuples():
        for setting in settings:
            t = rmqm_of(row.name, row.seed, setting)
            meta = dict(model_meta(row), perturbation=setting)
            summaries.append(t["summary"].query("scope == 'all'").assign(**meta))
            points.append(t["points"].assign(**meta))
            levels.append(t["levels"].assign(**meta))
    return ZooMeasurements(pd.concat(summaries, ignore_index=True), pd.concat(points, ignore_index=True),
                           pd.concat(levels, ignore_index=True))


def rmqm_scores(zoo: pd.DataFrame, rmqm_of: ZooRMQM, results: str | os.PathLike,
                scheduler: str | None = None) -> ZooMeasurements:
    """:func:`measure_zoo` under white noise and PGD; writes the summaries (without their
    ``scope`` column) to ``results/rmqm_scores.parquet``."""
    measured = measure_zoo(zoo, rmqm_of, scheduler=scheduler)
    measured.summaries.drop(columns=["scope"]).to_parquet(Path(results) / "rmqm_scores.parquet")
    return measured


def rmqm_intervals(summaries: pd.DataFrame) -> pd.DataFrame:
    """RMQM of each encoder per alteration as ``"mean [low, high]"`` over seeds (95 % t-interval)."""
    ci = summarize_seeds(summaries, "rmqm", by=[*ENCODER, "perturbation"])
    return interval_pivot(ci, ["method", "dim", "optimizer"], "perturbation")


def rmqm_components(summaries: pd.DataFrame) -> pd.DataFrame:
    """The terms inside RMQM's logarithm, means over seeds per encoder and alteration, with
    ``share_inverse``: the share of the inverse-relative-change terms in their sum."""
    terms = ["mean_A", "mean_B", "inv_S_a", "inv_S_b", "n_dropped", "rmqm"]
    c = summaries.groupby(["method", "dim", "optimizer", "perturbation"])[terms].mean().reset_index()
    return c.assign(share_inverse=(c["inv_S_a"] + c["inv_S_b"])
                    / (c["mean_A"] + c["mean_B"] + c["inv_S_a"] + c["inv_S_b"])).round(3)


def step_verdicts(points: pd.DataFrame) -> pd.DataFrame:
    """Does self-supervised training give larger (median ``B``) and steadier (median ``S_b``)
    steps than supervised training? One row per alteration and dimension.

    Each difference is computed once per seed (:func:`rmqm.stats.verdicts.family_contrast`)
    and summarised by its mean over seeds with a 95 % t-interval; a positive difference
    favours the paper (``S_b``'s sign is flipped: smaller is steadier).

    Returns:
        ``perturbation, dim, seeds`` and, for each claim, the interval text and its verdict
        (:func:`rmqm.stats.verdicts.interval_verdict`).
    """
    contrast = family_contrast(points, ["B", "S_b"], by=["perturbation", "dim", "seed"])
    contrast["S_b_sup_minus_ssl"] = -contrast["S_b_diff"]
    ci = summarize_seeds(contrast, ["B_diff", "S_b_sup_minus_ssl"], by=["perturbation", "dim"])
    rows = []
    for (setting, dim), g in ci.groupby(["perturbation", "dim"]):
        b, s = g.set_index("metric").loc["B_diff"], g.set_index("metric").loc["S_b_sup_minus_ssl"]
        rows.append({"perturbation": setting, "dim": dim, "seeds": int(b["n_seeds"]),
                     "median B: self-sup. - sup.": format_interval(b["mean"], b["ci_low"], b["ci_high"], 4),
                     "larger steps": interval_verdict(b["ci_low"], b["ci_high"]),
                     "median S_b: sup. - self-sup.": format_interval(s["mean"], s["ci_low"], s["ci_high"], 4),
                     "steadier steps": interval_verdict(s["ci_low"], s["ci_high"])})
    return pd.DataFrame(rows)


def verdict_lines(verdict: pd.DataFrame) -> list[str]:
    """How often each claim of :func:`step_verdicts` is supported, contradicted or
    inconclusive, and the verdict on both claims together (one line each)."""
    n = len(verdict)
    lines = []
    for claim in ("larger steps", "steadier steps"):
        counts = verdict[claim].str.split(":").str[0].value_counts()
        lines.append(f"{claim}: " + ", ".join(f"{word} in {counts.get(word, 0)} of {n}" for word in VERDICT_WORDS
                                              if counts.get(word, 0) or word != "no interval"))
    both = int((verdict["larger steps"].str.startswith("supported")
                & verdict["steadier steps"].str.startswith("supported")).sum())
    lines.append("Verdict: the paper's claim (larger AND steadier) holds in every comparison." if both == n else
                 f"Verdict: the paper's claim (larger AND steadier, both supported over seeds) holds in {both} of {n} "
                 "comparisons.")
    return lines
