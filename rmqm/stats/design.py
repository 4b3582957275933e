"""Helpers the verdict rules of a crossed zoo need: the interaction of two settings' contrasts
(is an effect different *between* settings, not just significant in one), the uniform tie rule
for an argmax over epsilons, and the configuration x seed variance breakdown.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from rmqm._utils.validation import check_columns, check_confidence

__all__ = ['Interaction', 'interaction_contrast', 'tie_weights', 'uniform_tie_choice', 'variance_breakdown']


@dataclass(frozen=True)
class Interaction:
    """The difference of two settings' contrasts, paired by seed and dimension.

    ``estimate`` the mean over seeds of each seed's mean difference over dimensions; ``low, high``
    its Student-t interval over the ``n_seeds`` seed means (``n_seeds - 1`` dof); ``p_value`` the
    exact two-sided sign-flip p over seeds (``2^n_seeds`` flips: never below ``2 / 2^n_seeds``);
    ``n_pairs`` the (seed, dim) pairs both settings have, ``n_unpaired`` those only one has.
    """
    estimate: float
    low: float
    high: float
    p_value: float
    n_seeds: int
    n_pairs: int
    n_unpaired: int
    confidence: float


def interaction_contrast(with_setting: pd.DataFrame, without_setting: pd.DataFrame, *, value: str = "contrast",
                         seed_col: str = "seed", dim_col: str = "dim", confidence: float = 0.95) -> Interaction:
    """Interaction of two settings (e.g. with and without augmentation): ``with - without`` of
    the per (seed, dim) ``value`` (e.g. a self-supervised minus supervised median), paired by
    seed and dimension, averaged over dimensions within each seed, then over seeds.

    The seed is the replicate (each seed fixes the data of every encoder, in both settings), so
    the interval and the exact sign-flip p-value run over seeds. "The finding survives in one
    setting but not the other" is evidence of a difference only if this interval excludes 0.

    Raises:
        ValueError: a missing column, a repeated (seed, dim) row, or no (seed, dim) pair in both.
    """
    confidence = check_confidence(confidence)
    keys = [seed_col, dim_col]
    for name, frame in (("with_setting", with_setting), ("without_setting", without_setting)):
        check_columns(frame, [value, *keys], name)
        if frame.duplicated(subset=keys).any():
            raise ValueError(f"{name} repeats a ({seed_col}, {dim_col}) row; give one contrast per seed and dim")
    merged = with_setting[[*keys, value]].merge(without_setting[[*keys, value]], on=keys, suffixes=("_a", "_b"))
    merged = merged[np.isfinite(merged[[f"{value}_a", f"{value}_b"]].to_numpy(dtype=float)).all(axis=1)]
    if merged.empty:
        raise ValueError(f"no ({seed_col}, {dim_col}) pair has a finite {value!r} in both settings")
    unpaired = len(with_setting) + len(without_setting) - 2 * len(merged)
    diff = merged.assign(d=merged[f"{value}_a"] - merged[f"{value}_b"]).groupby(seed_col)["d"].mean().to_numpy()
    n = diff.size
    estimate = float(diff.mean())
    if n < 2:
        return Interaction(estimate, float("nan"), float("nan"), float("nan"), n, len(merged), unpaired, confidence)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * diff.std(ddof=1) / np.sqrt(n))
    flips = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    p = float(np.mean(np.abs((flips * diff).mean(axis=1)) >= abs(estimate) - 1e-12))
    return Interaction(estimate, estimate - half, estimate + half, p, n, len(merged), unpaired, confidence)


def tie_weights(scores: np.ndarray | Sequence[Sequence[float]], *, atol: float = 1e-12) -> np.ndarray:
    """The argmax of each row of ``scores`` (``(n, E)``: encoders x epsilons) as a uniform choice
    among the tied maxima: ``w[i, e] = 1 / k_i`` for the ``k_i`` epsilons within ``atol`` of the
    row's largest score, 0 elsewhere. NaN scores are never chosen; an all-NaN row is all NaN.
    A row of all-equal scores (e.g. SynBench 0 at every epsilon) spreads evenly over every epsilon:
    it favours none, rather than the smallest.
    """
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        top = np.nanmax(np.where(np.isnan(s), -np.inf, s), axis=1, keepdims=True)
        tied = np.isfinite(s) & (s >= top - atol) | (np.isposinf(s) & np.isposinf(top))
    k = tied.sum(axis=1, keepdims=True)
    return np.where(k > 0, tied / np.maximum(k, 1), np.nan)


def uniform_tie_choice(scores: np.ndarray | Sequence[Sequence[float]],
                       values: np.ndarray | Sequence[Sequence[float]], *, atol: float = 1e-12) -> np.ndarray:
    """Expected ``values`` of the epsilon a score favours, ties broken uniformly (:func:`tie_weights`):
    ``sum_e w[i, e] values[i, e]`` per row (``(n,)``). With ``values`` an indicator of the best
    epsilon it is the chance that the favoured epsilon is the best one."""
    w = tie_weights(scores, atol=atol)
    v = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if v.shape != w.shape:
        raise ValueError(f"scores and values must have the same shape; got {w.shape} and {v.shape}")
    return np.where(np.isnan(w).all(axis=1), np.nan, np.nansum(np.where(w > 0, w * v, 0.0), axis=1))


def variance_breakdown(table: pd.DataFrame, columns: Sequence[str], *, config_cols: Sequence[str] = ("method", "dim"),
                       seed_col: str = "seed") -> pd.DataFrame:
    """How much of each column is seed: the two-way crossed random-effects ANOVA of
    configuration x seed label (one row per cell, no replication), on the configurations that
    have every seed.

    Mean squares ``MS_c, MS_s, MS_e`` (configuration, seed, residual = configuration x seed),
    variance components ``var_config = (MS_c - MS_e) / S``, ``var_seed = (MS_s - MS_e) / C``,
    ``var_residual = MS_e`` (negative estimates set to 0), and the shares of their sum:
    ``share_seed`` = seed shift + configuration x seed (everything a rerun with another seed
    changes), ``share_seed_shift`` the part shared by every encoder of a seed.

    Returns:
        ``column, n_configs, n_seeds, var_config, var_seed, var_residual, share_config,
        share_seed_shift, share_seed`` (NaN shares with fewer than 2 seeds or configurations).
    """
    config_cols = list(config_cols)
    check_columns(table, [*columns, *config_cols, seed_col])
    rows = []
    for column in columns:
        wide = table.pivot_table(index=config_cols, columns=seed_col, values=column, aggfunc="mean")
        wide = wide[np.isfinite(wide.to_numpy(dtype=float)).all(axis=1)]
        y = wide.to_numpy(dtype=float)
        c, s = y.shape if y.size else (0, 0)
        row = {"column": column, "n_configs": c, "n_seeds": s}
        if c >= 2 and s >= 2:
            grand = y.mean()
            ms_c = s * ((y.mean(axis=1) - grand) ** 2).sum() / (c - 1)
            ms_s = c * ((y.mean(axis=0) - grand) ** 2).sum() / (s - 1)
            resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + grand
            ms_e = (resid ** 2).sum() / ((c - 1) * (s - 1))
            vc, vs, ve = max((ms_c - ms_e) / s, 0.0), max((ms_s - ms_e) / c, 0.0), ms_e
            total = vc + vs + ve
            row.update(var_config=vc, var_seed=vs, var_residual=ve, share_config=vc / total if total else np.nan,
                       share_seed_shift=vs / total if total else np.nan,
                       share_seed=(vs + ve) / total if total else np.nan)
        rows.append(row)
    cols = ["column", "n_configs", "n_seeds", "var_config", "var_seed", "var_residual", "share_config",
            "share_seed_shift", "share_seed"]
    return pd.DataFrame(rows).reindex(columns=cols)
