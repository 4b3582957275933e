"""Chapter 2, self-supervised against supervised: RMQM of every zoo model and the paper's claim."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rmqm.experiments.cache import ZooRMQM
from rmqm.experiments.engine import prefetch_rmqm
from rmqm.stats.factorial import factorial_effects
from rmqm.stats.intervals import summarize_seeds, t_interval
from rmqm.stats.shift import step_family
from rmqm.stats.verdicts import family_contrast, format_interval, interval_verdict, verdict_word
from rmqm.study.chapters.common import ENCODER, FACTOR_LABELS, interval_pivot, model_meta
from rmqm.study.chapters.families import family_verdicts
from rmqm.study.endpoints import Endpoints, load_endpoints

__all__ = ['VERDICT_WORDS', 'ZooMeasurements', 'measure_zoo', 'rmqm_scores', 'rmqm_intervals', 'rmqm_components',
           'per_class_rmqm', 'step_verdicts', 'verdict_lines', 'step_family_verdicts', 'claim_headline',
           'factorial_gaps', 'factorial_cell_table', 'factorial_effect_table', 'factorial_headline',
           'ARTEFACT_FREE']

#: The PGD settings without the reference's augmentation artefacts: the book's headline RMQM.
ARTEFACT_FREE: tuple[str, ...] = ("pgd-displacement", "pgd-own-loss")

#: The family of ``book/endpoints.yaml`` the step claims' tests belong to.
STEP_FAMILY = "rmqm-steps"

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
        per_class: one row per model, alteration and class (``scope == 'label=<c>'``): RMQM
            computed over the points of one class, as the reference's per-method figures show it.
    """

    summaries: pd.DataFrame
    points: pd.DataFrame
    levels: pd.DataFrame
    per_class: pd.DataFrame


def measure_zoo(zoo: pd.DataFrame, rmqm_of: ZooRMQM, settings: Sequence[str] | None = None,
                scheduler: str | None = None) -> ZooMeasurements:
    """RMQM of every model of ``zoo`` under each alteration of ``settings`` (cached by ``rmqm_of``);
    the measurements missing from the store run first as jobs of the engine
    (:func:`rmqm.experiments.engine.prefetch_rmqm`, where ``scheduler`` says).

    Args:
        settings: alteration names (default: every setting of ``rmqm_of``, in its order).

    Raises:
        ValueError: ``settings`` is empty or names an alteration ``rmqm_of`` does not know.
    """
    settings = list(rmqm_of.settings) if settings is None else list(settings)
    if not settings:
        raise ValueError("give at least one alteration setting")
    # the engine's jobs load zoo checkpoints by name: the user encoders (rmqm_of.external) run here
    prefetch_rmqm(rmqm_of, [(row.name, row.seed, s) for row in zoo.itertuples() for s in settings
                            if row.name not in rmqm_of.external], scheduler=scheduler)
    summaries, points, levels = [], [], []
    for row in zoo.itertuples():
        for setting in settings:
            t = rmqm_of(row.name, row.seed, setting)
            meta = dict(model_meta(row), perturbation=setting)
            summaries.append(t["summary"].assign(**meta))
            points.append(t["points"].assign(**meta))
            levels.append(t["levels"].assign(**meta))
    summary = pd.concat(summaries, ignore_index=True)
    return ZooMeasurements(summary.query("scope == 'all'").reset_index(drop=True), pd.concat(points, ignore_index=True),
                           pd.concat(levels, ignore_index=True), summary.query("scope != 'all'").reset_index(drop=True))


def rmqm_scores(zoo: pd.DataFrame, rmqm_of: ZooRMQM, results: str | os.PathLike,
                scheduler: str | None = None, settings: Sequence[str] | None = None,
                table: str = "rmqm_scores") -> ZooMeasurements:
    """:func:`measure_zoo` under the alterations ``settings`` (default: all of ``rmqm_of``);
    writes the summaries (without their ``scope`` column) to ``results/<table>.parquet``."""
    measured = measure_zoo(zoo, rmqm_of, settings, scheduler=scheduler)
    measured.summaries.drop(columns=["scope"]).to_parquet(Path(results) / f"{table}.parquet")
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


def per_class_rmqm(per_class: pd.DataFrame) -> pd.DataFrame:
    """RMQM per class (the reference's figures), mean over seeds: one row per method,
    dimension and alteration, one column per class, and ``spread``: the largest minus the
    smallest class mean (how much "the" RMQM of an encoder depends on which digits it sees)."""
    table = per_class.assign(**{"class": per_class["scope"].str.split("=").str[1]}).pivot_table(
        index=["method", "dim", "perturbation"], columns="class", values="rmqm", aggfunc="mean")
    table = table[sorted(table.columns, key=lambda c: (len(c), c))]
    return table.assign(spread=table.max(axis=1) - table.min(axis=1)).round(3)


def step_verdicts(points: pd.DataFrame, results: str | os.PathLike | None = None) -> pd.DataFrame:
    """Does self-supervised training give larger (median ``B``) and steadier (median ``S_b``)
    steps than supervised training? One row per alteration and dimension.

    Each difference is computed once per seed (:func:`rmqm.stats.verdicts.family_contrast`)
    and summarised by its mean over seeds with a 95 % t-interval; a positive difference
    favours the paper (``S_b``'s sign is flipped: smaller is steadier).

    Args:
        results: when given, the table is also written to ``results/rmqm_step_verdicts.parquet``
            (the results summary page reads it).

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
    table = pd.DataFrame(rows)
    if results is not None:
        table.to_parquet(Path(results) / "rmqm_step_verdicts.parquet")
    return table


def verdict_lines(verdict: pd.DataFrame) -> list[str]:
    """How often each claim of :func:`step_verdicts` is supported, contradicted or
    inconclusive, and the verdict on both claims together (one line each)."""
    n = len(verdict)
    lines = []
    for claim in ("larger steps", "steadier steps"):
        counts = verdict[claim].map(verdict_word).value_counts()
        lines.append(f"{claim}: " + ", ".join(f"{word} in {counts.get(word, 0)} of {n}" for word in VERDICT_WORDS
                                              if counts.get(word, 0) or word != "no interval"))
    both = int((verdict["larger steps"].str.startswith("supported")
                & verdict["steadier steps"].str.startswith("supported")).sum())
    lines.append("Verdict: the paper's claim (larger AND steadier) holds in every comparison." if both == n else
                 f"Verdict: the paper's claim (larger AND steadier, both supported over seeds) holds in {both} of {n} "
                 "comparisons.")
    return lines


def step_family_verdicts(points: pd.DataFrame, results: str | os.PathLike | None = None, *,
                         endpoints: Endpoints | None = None) -> pd.DataFrame:
    """The step claims' confirmatory family (``rmqm-steps`` of ``endpoints``, default
    ``book/endpoints.yaml``): per alteration, larger and steadier steps each tested over seeds
    (:func:`rmqm.stats.shift.step_family`), Holm within the family at the file's ``alpha``
    (:func:`rmqm.study.chapters.families.family_verdicts`, expected sign positive). Written to
    ``results/family_rmqm-steps.parquet`` when ``results`` is given (the summary page reads it)."""
    endpoints = endpoints or load_endpoints()
    endpoints.family(STEP_FAMILY)  # declared, or a clear error
    alpha = endpoints.alpha
    judged = family_verdicts(step_family(points, alpha=alpha).assign(family=STEP_FAMILY, expected_sign="positive"),
                             alpha)
    if results is not None:
        judged.to_parquet(Path(results) / f"family_{STEP_FAMILY}.parquet")
    return judged


def claim_headline(judged: pd.DataFrame, paper: str = "pgd-reference", claim: str = "steadier steps") -> list[str]:
    """The paper's PGD claim judged first where RMQM has no augmentation artefact
    (:data:`ARTEFACT_FREE` settings present in ``judged``), then under the reference's pipeline,
    shown as what the paper computed: one line each with the contrast over seeds (dimensions
    averaged), its interval, the t p-value, Holm's p within the family and the verdict
    (``judged``: :func:`step_family_verdicts`)."""
    lines = []
    for setting in [*[s for s in ARTEFACT_FREE if s in set(judged["perturbation"])], paper]:
        rows = judged[(judged["perturbation"] == setting) & (judged["claim"] == claim)]
        if rows.empty:
            continue
        r = rows.iloc[0]
        role = "what the paper computed" if setting == paper else "artefact-free"
        if not r["measurable"]:
            lines.append(f"{setting} ({role}): {claim} not measurable ({r['reason']}).")
            continue
        lines.append(f"{setting} ({role}): {claim} {format_interval(r['estimate'], r['ci_low'], r['ci_high'], 4)} "
                     f"over {r['n_valid']} seeds (d = {r['dims']} averaged; p = {r['p_value']:.4f}, Holm p = "
                     f"{r['p_holm']:.4f} over the family's {len(judged)} tests) -> {r['verdict']}.")
    return lines


def factorial_gaps(points: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """The steadier-steps gap of every ablation cell, seed and dimension: supervised minus
    self-supervised median ``S_b`` (:func:`rmqm.stats.verdicts.family_contrast`; positive: the
    self-supervised encoders take steadier steps, the paper's direction).

    Args:
        points: per-point statistics with ``perturbation`` naming the cell (``ZooMeasurements.points``).
        cells: :attr:`rmqm.study.chapters.common.AttackFactorial.cells`.

    Returns:
        ``setting, dim, seed, gap`` and the cell's factor columns.
    """
    sub = points[points["perturbation"].isin(cells["setting"])]
    if sub.empty:
        raise ValueError(f"no points of the ablation cells {list(cells['setting'])}")
    contrast = family_contrast(sub, ["S_b"], by=["perturbation", "dim", "seed"])
    gaps = contrast.assign(gap=-contrast["S_b_diff"]).rename(columns={"perturbation": "setting"})
    return gaps[["setting", "dim", "seed", "gap"]].merge(cells, on="setting")


def _over_seeds(values: pd.Series) -> tuple[float, float, float]:
    return t_interval(values.to_numpy())


def factorial_cell_table(gaps: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """The gap of every cell as ``"mean [low, high]"`` over seeds (each seed's mean over
    dimensions; 95 % t-interval), with the cell's factor levels as on/off columns and one
    column per dimension."""
    rows = []
    for setting, g in gaps.groupby("setting", sort=False):
        first = g.iloc[0]
        row = {FACTOR_LABELS[f]: "on" if first[f] else "off" for f in factors}
        row["rotation drawn"] = "per image" if first["rotation"] == "image" else "per batch"
        row["gap, mean over dims"] = format_interval(*_over_seeds(g.groupby("seed")["gap"].mean()), 3)
        for dim, gd in g.groupby("dim"):
            row[f"d={dim}"] = format_interval(*_over_seeds(gd.set_index("seed")["gap"]), 3)
        rows.append({"setting": setting, **row})
    return pd.DataFrame(rows)


def factorial_effect_table(gaps: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """Main effects and two-factor interactions of ``factors`` on the gap, paired by seed and
    dimension (:func:`rmqm.stats.factorial.factorial_effects`), and the sensitivity row when the
    ablation has one: the per-image minus the per-batch rotation at the all-on cell, paired alike.

    Returns:
        ``effect, estimate, ci_low, ci_high, n_seeds, interval`` (the effect named in prose).
    """
    design = gaps[~gaps["sensitivity"]]
    effects = factorial_effects(design, "gap", list(factors), units=("seed", "dim"))
    effects["effect"] = [" x ".join(FACTOR_LABELS[f] for f in e.split(" x ")) for e in effects["effect"]]
    sens = gaps[gaps["sensitivity"]]
    if not sens.empty:
        top = design[design[list(factors)].all(axis=1)]
        paired = sens.merge(top, on=["seed", "dim"], suffixes=("", "_batch"))
        per_seed = (paired["gap"] - paired["gap_batch"]).groupby(paired["seed"]).mean()
        m, lo, hi = _over_seeds(per_seed)
        effects = pd.concat([effects, pd.DataFrame([{
            "effect": FACTOR_LABELS["rotation"], "order": 1, "estimate": m, "ci_low": lo, "ci_high": hi,
            "n_seeds": int(per_seed.size), "per_seed": per_seed.round(6).tolist()}])], ignore_index=True)
    effects["interval"] = [format_interval(m, lo, hi, 3) for m, lo, hi in
                           effects[["estimate", "ci_low", "ci_high"]].to_numpy()]
    return effects.drop(columns=["order", "per_seed"])


def factorial_headline(gaps: pd.DataFrame, effects: pd.DataFrame, factors: Sequence[str]) -> str:
    """The chapter's headline sentence, built from the ablation: the gap with every factor on and
    with every factor off, each main effect with its interval, the interactions whose interval
    excludes 0, and the per-image sensitivity. An effect "explains" part of the gap only in the
    words its interval allows: it is called clear when its interval excludes 0, else unresolved."""
    design = gaps[~gaps["sensitivity"]]
    on, off = design[design[list(factors)].all(axis=1)], design[~design[list(factors)].any(axis=1)]

    def gap_text(g: pd.DataFrame) -> str:
        return format_interval(*_over_seeds(g.groupby("seed")["gap"].mean()), 3)

    def word(row: pd.Series) -> str:
        if not (np.isfinite(row["ci_low"]) and np.isfinite(row["ci_high"])):
            return f"{row['interval']} (no interval: fewer than two seeds)"
        clear = row["ci_low"] > 0 or row["ci_high"] < 0
        return f"{row['interval']}{'' if clear else ' (unresolved: the interval includes 0)'}"

    main = effects[effects["effect"].isin([FACTOR_LABELS[f] for f in factors])]
    inter = effects[effects["effect"].str.contains(" x ") & ((effects["ci_low"] > 0) | (effects["ci_high"] < 0))]
    text = (f"The steadier-steps gap (supervised minus self-supervised median S_b, mean over dimensions and "
            f"seeds) is {gap_text(on)} with every factor of the ablation on and {gap_text(off)} with every "
            f"factor off; ")
    text += "; ".join(f"{r['effect']} contributes {word(r)}" for _, r in main.iterrows()) + " on average."
    if len(inter):
        text += " Interactions whose interval excludes 0: " + "; ".join(
            f"{r['effect']} {r['interval']}" for _, r in inter.iterrows()) + "."
    elif len(factors) > 1 and np.isfinite(effects["ci_low"]).all():
        text += " No interaction's interval excludes 0, so the contributions add up within their intervals."
    sens = effects[effects["effect"] == FACTOR_LABELS["rotation"]]
    if len(sens):
        text += f" Drawing the rotation per image instead of per batch changes the all-on gap by {word(sens.iloc[0])}."
    return text
