"""Chapter 3, white noise against PGD: rank agreement, relative-change spikes, noise
schedules and attack losses, each answered once per zoo seed."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from rmqm.experiments.cache import ZooRMQM
from rmqm.stats.correlations import rank_agreement
from rmqm.stats.curves import relative_change_table
from rmqm.stats.intervals import per_seed
from rmqm.study.chapters.common import CORRELATION, ENCODER, FRACTION, seed_line
from rmqm.training.augmentation import augment
from rmqm.training.checkpoints import load_model
from rmqm.training.methods import own_attack_loss

__all__ = ['FRESH', 'NESTED', 'OWN_LOSS', 'DISPLACEMENT', 'noise_pgd_scores', 'alteration_agreement',
           'relative_changes', 'noise_schedules', 'schedule_summary', 'attack_losses', 'attack_summary']

#: Labels of the two noise schedules and of the two attacks.
FRESH, NESTED = "fresh (reference)", "nested"
OWN_LOSS, DISPLACEMENT = "own training loss", "displacement (label-free)"
_VARIANT_INDEX = ["method", "dim", "optimizer", "seed"]


def _rmqm(tables: dict[str, pd.DataFrame]) -> float:
    return float(tables["summary"].query("scope == 'all'")["rmqm"].iloc[0])


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


def alteration_agreement(scores: pd.DataFrame) -> list[str]:
    """Lines that say how alike white noise and PGD rank the encoders of each seed: Spearman
    rho and Kendall tau, mean over seeds with a 95 % t-interval and the per-seed values."""
    return _agreement_lines(scores, "noise", "pgd", f"Rank agreement of noise and PGD over the "
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
        return table.drop_duplicates(["perturbation", "family", "name", "point"]).groupby(
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
    for row in zoo.itertuples():
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
    higher = per_seed(wide, lambda s: float((s[NESTED] > s[FRESH]).mean()))
    agree = per_seed(wide, lambda s: rank_agreement(s[FRESH], s[NESTED]))
    lines = [seed_line(higher["value"], "fraction of encoders that nested noise scores higher", FRACTION),
             seed_line(agree["spearman"], "rank agreement of fresh and nested noise, Spearman rho", CORRELATION)]
    return lines, wide.groupby(["method", "dim", "optimizer"])[[FRESH, NESTED]].mean().round(3)


def attack_losses(zoo: pd.DataFrame, rmqm_of: ZooRMQM, zoo_dir: str | os.PathLike) -> pd.DataFrame:
    """RMQM under PGD with each model's own training loss and with the shared displacement attack.

    The own loss is :func:`rmqm.training.methods.own_attack_loss`: cross-entropy through the
    classifier head, or NT-Xent against an augmented view; models without one are left out.

    Returns:
        ``method, dim, optimizer, seed, attack`` (:data:`OWN_LOSS` or :data:`DISPLACEMENT`),
        ``rmqm``: two rows per model that has an own-loss attack.

    Raises:
        ValueError: no model of the zoo has an own-loss attack.
    """
    rows = []
    for row in zoo.itertuples():
        loss = own_attack_loss(row.method)
        if loss is None:
            continue
        if loss == "cross-entropy":
            own = rmqm_of(row.name, row.seed, "pgd", attack_loss=loss, head=load_model(row.name, zoo_dir).head)
        else:
            own = rmqm_of(row.name, row.seed, "pgd", attack_loss=loss, augment=augment)
        disp = rmqm_of(row.name, row.seed, "pgd")
        for label, t in ((OWN_LOSS, own), (DISPLACEMENT, disp)):
            rows.append(dict(method=row.method, dim=row.dim, optimizer=row.optimizer, seed=row.seed, attack=label,
                             rmqm=_rmqm(t)))
    if not rows:
        raise ValueError(f"no model of the zoo (methods {sorted(set(zoo['method']))}) has an own-loss attack: "
                         "that needs a classifier head or the nt-xent method")
    return pd.DataFrame(rows)


def attack_summary(attacks: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """What :func:`attack_losses` says, over seeds.

    Returns:
        the rank agreement of the two attacks (Spearman rho and Kendall tau over seeds; no
        lines when a seed has fewer than 3 such encoders) and the mean RMQM of each encoder
        under each attack, rounded to 3 digits.
    """
    wide = attacks.pivot_table(index=_VARIANT_INDEX, columns="attack", values="rmqm").reset_index()
    lines = []
    if wide.groupby("seed").size().min() >= 3:
        lines = _agreement_lines(wide, OWN_LOSS, DISPLACEMENT, f"rank agreement of the two attacks over the "
                                 f"{wide.groupby(['method', 'dim', 'optimizer']).ngroups} encoders that have an "
                                 "own-loss attack:")
    return lines, wide.groupby(["method", "dim", "optimizer"])[[OWN_LOSS, DISPLACEMENT]].mean().round(3)
