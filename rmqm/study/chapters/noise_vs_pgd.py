"""Chapter 3, white noise against PGD: rank agreement, relative-change spikes, noise
schedules and the three PGD modes, each answered once per zoo seed."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from rmqm._utils.progress import progress
from rmqm.experiments.cache import ZooRMQM
from rmqm.stats.correlations import rank_agreement
from rmqm.stats.curves import relative_change_table
from rmqm.stats.intervals import per_seed
from rmqm.study.chapters.common import CORRELATION, ENCODER, FRACTION, seed_line
from rmqm.study.chapters.external import zoo_only

__all__ = ['FRESH', 'NESTED', 'noise_pgd_scores', 'alteration_agreement', 'relative_changes', 'noise_schedules',
           'schedule_summary', 'pgd_mode_table', 'mode_summary']

#: Labels of the two noise schedules.
FRESH, NESTED = "fresh (reference)", "nested"
_VARIANT_INDEX = ["method", "dim", "optimizer", "seed"]


def noise_pgd_scores(summaries: pd.DataFrame) -> pd.DataFrame:
    """One row per zoo model: ``name, method, family, dim, optimizer, seed, noise, pgd``
    (its RMQM under each alteration), from the stacked summaries of
    :func:`rmqm.study.chapters.ssl_vs_supervised.measure_zoo`."""
    return summaries.pivot_table(index=["name", *ENCODER, "seed"], columns="perturbation",
                                 values="rmqm").reset_index()


def _agreement_lines(wide: pd.DataFrame, x: str, y: str, header: str) -> list[str]:
    agree = per_seed(wide, lambda s: rank_agreement(s[x], s[y]))
    return [header, seed_line(agree["spearman"], "  Spearman rho", CORRELATION),
            seed_line(agree["kendall"], "  Kendall tau", CORRELATION)]


def alteration_agreement(scores: pd.DataFrame, noise: str = "noise", pgd: str = "pgd") -> list[str]:
    """Lines that say how alike white noise and a PGD setting rank the encoders of each seed:
    Spearman rho and Kendall tau, mean over seeds with a 95 % t-interval and the per-seed values.

    Args:
        noise, pgd: the two columns of ``scores`` (:func:`noise_pgd_scores`) compared.
    """
    scores = zoo_only(scores)  # the user encoders of the study are shown, not counted
    return _agreement_lines(scores, noise, pgd, f"Rank agreement of {noise} and {pgd} over the "
                            f"{scores.groupby(list(ENCODER)).ngroups} encoders of each seed:")


def relative_changes(levels: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The relative changes ``|r^b_k|`` of the step sizes, summarised.

    Args:
        levels: per-point, per-level table of all models (``perturbation, family, name,
            seed, point, level, strength, a, b``).

    Returns:
        ``spikes``: median and 99th percentile of the finite ``|r^b_k|`` per alteration,
        family and level (points of all encoders and seeds pooled); ``counts``: per
        alteration and family, the (encoder, point) pairs with an infinite ``|r|`` (of
        ``a`` or ``b``) and all of them.
    """
    rc = relative_change_table(levels, by=("perturbation", "family", "name", "seed"))
    finite = rc[np.isfinite(rc["abs_rel_change"])]
    spikes = (finite[finite["series"] == "b"].groupby(["perturbation", "family", "level"])["abs_rel_change"]
              .agg(median="median", p99=lambda v: v.quantile(0.99)).reset_index())

    def n_points(table: pd.DataFrame) -> pd.Series:
        return table.drop_duplicates(["perturbation", "family", "name", "seed", "point"]).groupby(
            ["perturbation", "family"]).size()

    counts = pd.DataFrame({"points with an infinite |r|": n_points(rc[~np.isfinite(rc["abs_rel_change"])]),
                           "points (all encoders)": n_points(levels)}).fillna(0).astype(int)
    return spikes, counts


def noise_schedules(zoo: pd.DataFrame, rmqm_of: ZooRMQM) -> pd.DataFrame:
    """RMQM of every zoo model under white noise drawn fresh at each level (the reference)
    and as one nested draw for all levels.

    Returns:
        ``method, dim, optimizer, seed, noise`` (:data:`FRESH` or :data:`NESTED`), ``rmqm,
        mean_B, inv_S_b``: two rows per model.
    """
    rows = []
    for row in progress(zoo.itertuples(), "RMQM noise schedules", total=len(zoo), label=lambda r: r.name):
        for nested in (False, True):
            s = rmqm_of(row.name, row.seed, "noise", nested=nested)["summary"].query("scope == 'all'").iloc[0]
            rows.append(dict(method=row.method, dim=row.dim, optimizer=row.optimizer, seed=row.seed,
                             noise=NESTED if nested else FRESH, rmqm=s["rmqm"], mean_B=s["mean_B"],
                             inv_S_b=s["inv_S_b"]))
    return pd.DataFrame(rows)


def schedule_summary(nested: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """What :func:`noise_schedules` says, over seeds.

    Returns:
        two lines (the fraction of encoders that nested noise scores higher; the Spearman
        rank agreement of the two schedules) and the mean RMQM of each encoder under each
        schedule, rounded to 3 digits.
    """
    wide = nested.pivot_table(index=_VARIANT_INDEX, columns="noise", values="rmqm").reset_index()
    zoo = zoo_only(wide)  # the lines describe the zoo; the table shows the user encoders too
    higher = per_seed(zoo, lambda s: float((s[NESTED] > s[FRESH]).mean()))
    agree = per_seed(zoo, lambda s: rank_agreement(s[FRESH], s[NESTED]))
    lines = [seed_line(higher["value"], "fraction of encoders that nested noise scores higher", FRACTION),
             seed_line(agree["spearman"], "rank agreement of fresh and nested noise, Spearman rho", CORRELATION)]
    return lines, wide.groupby(["method", "dim", "optimizer"])[[FRESH, NESTED]].mean().round(3)


def pgd_mode_table(summaries: pd.DataFrame, modes: Mapping[str, str]) -> pd.DataFrame:
    """RMQM of every zoo model under each PGD mode, from the stacked summaries of
    :func:`rmqm.study.chapters.ssl_vs_supervised.measure_zoo` (no new measurement).

    Args:
        modes: alteration setting name -> label shown in tables and figures (e.g.
            ``{"pgd-reference": "reference (output augmentation)", ...}``), in display order.

    Returns:
        ``method, dim, optimizer, seed, attack`` (the label), ``rmqm``: one row per model and mode.

    Raises:
        ValueError: a mode has no rows in ``summaries``.
    """
    missing = [m for m in modes if m not in set(summaries["perturbation"])]
    if missing:
        raise ValueError(f"no RMQM summaries for PGD mode(s) {missing}; measured: "
                         f"{sorted(set(summaries['perturbation']))}")
    rows = summaries[summaries["perturbation"].isin(list(modes))]
    table = rows.assign(attack=rows["perturbation"].map(dict(modes)))[[*_VARIANT_INDEX, "attack", "rmqm"]]
    order = {label: i for i, label in enumerate(modes.values())}
    return table.sort_values(["attack", *_VARIANT_INDEX], key=lambda c: c.map(order) if c.name == "attack" else c,
                             ignore_index=True)


def mode_summary(modes: pd.DataFrame, reference: str) -> tuple[list[str], pd.DataFrame]:
    """What :func:`pgd_mode_table` says, over seeds.

    Args:
        reference: the label of the mode the others are compared with.

    Returns:
        for every other mode, its rank agreement with ``reference`` over the encoders of each
        seed (Spearman rho and Kendall tau, mean over seeds with a 95 % t-interval; no lines when a
        seed has fewer than 3 encoders), and the mean RMQM of each encoder under each mode (3 digits).
    """
    labels = list(dict.fromkeys(modes["attack"]))
    if reference not in labels:
        raise ValueError(f"reference mode {reference!r} is not among {labels}")
    wide = modes.pivot_table(index=_VARIANT_INDEX, columns="attack", values="rmqm").reset_index()
    lines: list[str] = []
    zoo = zoo_only(wide)  # the lines describe the zoo; the table shows the user encoders too
    if zoo.groupby("seed").size().min() >= 3:
        n = zoo.groupby(["method", "dim", "optimizer"]).ngroups
        for other in labels:
            if other != reference:
                lines += _agreement_lines(zoo, reference, other,
                                          f"rank agreement of {reference} and {other} over {n} encoders:")
    return lines, wide.groupby(["method", "dim", "optimizer"])[labels].mean().round(3)
