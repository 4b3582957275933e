"""Correlations that control for embedding dimension: partial correlations on a covariate
(``log d``) and correlations within each dimension pooled on the Fisher-z scale.

A score and an accuracy that both grow with the embedding dimension ``d`` correlate across a
zoo of mixed dimensions even when, at a fixed ``d``, the score says nothing about accuracy;
these two views take ``d`` out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from rmqm._utils.validation import check_choice, check_columns, check_confidence
from rmqm.stats.inference import METHODS, fisher_z, seed_means

__all__ = ['PartialCorrelation', 'partial_correlation', 'within_dim_correlations']


@dataclass(frozen=True)
class PartialCorrelation:
    """Correlation of the residuals of ``score`` and ``target`` after a least-squares fit on the
    covariates (ranks for Spearman); ``p_value`` from Student's t with ``n - 2 - k`` dof."""
    r: float
    p_value: float
    n: int
    covariates: tuple[str, ...]
    method: str


def _covariate_frame(table: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """``table`` with ``log_dim = log(dim)`` added when a covariate asks for it and it is absent."""
    if "log_dim" in covariates and "log_dim" not in table.columns and "dim" in table.columns:
        return table.assign(log_dim=np.log(pd.to_numeric(table["dim"], errors="coerce").astype(float)))
    return table


def partial_correlation(
    table: pd.DataFrame,
    score: str,
    target: str,
    covariates: Sequence[str] = ("log_dim",),
    *,
    method: str = "spearman",
    config_cols: Sequence[str] = ("method", "dim"),
    seed_col: str | None = "seed",
) -> PartialCorrelation:
    """Correlation of ``score`` and ``target`` controlling for ``covariates``, across
    configurations (each averaged over its seeds first, :func:`seed_means`; ``seed_col=None``
    uses the rows as they are).

    Both variables (and the covariates) are replaced by their ranks for ``"spearman"``, each
    variable is regressed on ``[1, covariates]`` by least squares, and the Pearson
    correlation of the two residual vectors is returned; ``p`` from
    ``t = r sqrt(df / (1 - r^2))`` with ``df = n - 2 - k``. ``log_dim`` is computed as
    ``log(dim)`` when the table has ``dim`` but not ``log_dim``.

    Raises:
        ValueError: a missing column, an unknown method, or ``n - 2 - k < 1``.
    """
    check_choice(method, METHODS, "method")
    covariates = tuple(covariates)
    table = _covariate_frame(table, covariates)
    data = seed_means(table, [score, target, *covariates], config_cols=config_cols, seed_col=seed_col)
    cols = [score, target, *covariates]
    values = data[cols].to_numpy(dtype=np.float64)
    if method == "spearman":
        values = stats.rankdata(values, axis=0)
    n, k = len(values), len(covariates)
    df = n - 2 - k
    if df < 1:
        raise ValueError(f"a partial correlation with {k} covariate(s) needs at least {k + 3} configurations; got {n}")
    design = np.column_stack([np.ones(n), values[:, 2:]])
    coef, *_ = np.linalg.lstsq(design, values[:, :2], rcond=None)
    resid = values[:, :2] - design @ coef
    scale = np.abs(values[:, :2] - values[:, :2].mean(axis=0)).max(axis=0)
    if np.any(np.abs(resid).max(axis=0) <= 1e-10 * np.maximum(scale, 1e-300)):  # covariates explain all
        return PartialCorrelation(float("nan"), float("nan"), n, covariates, method)
    r = float(np.clip(np.corrcoef(resid[:, 0], resid[:, 1])[0, 1], -1.0, 1.0))
    t = r * np.sqrt(df / max(1 - r * r, 1e-300))
    return PartialCorrelation(r, float(2 * stats.t.sf(abs(t), df)), n, covariates, method)


def _bounded_z(r: float, n: int) -> float:
    """``arctanh(r)``, with ``r = +/-1`` taken as ``+/-(1 - 12 / (n (n^2 - 1)))``, the
    Spearman coefficient of ``n`` points one adjacent swap from perfect, so that a dim of few
    encoders that happen to be ranked perfectly (probability ``1 / n!`` under independence)
    does not make the pooled z infinite."""
    if not np.isfinite(r) or abs(r) < 1:
        return float(fisher_z(r))
    return float(np.sign(r) * fisher_z(1 - 12 / (n * (n * n - 1))))


def within_dim_correlations(
    table: pd.DataFrame,
    score: str,
    target: str,
    *,
    dim_col: str = "dim",
    method: str = "spearman",
    config_cols: Sequence[str] = ("method", "dim"),
    seed_col: str | None = "seed",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Correlation of ``score`` and ``target`` within each embedding dimension, and their
    pooled estimate, across configurations (each averaged over its seeds first).

    Per dim: ``r`` (NaN with fewer than 3 configurations or a constant column), its scipy p,
    and the Fisher interval ``tanh(z -/+ q sqrt(v / (n - 3)))`` with ``v = 1`` (Pearson) or
    ``v = 1.06`` (Spearman; Fieller, Hartley & Pearson 1957). Pooled (last row, ``dim =
    "pooled"``): ``z = sum w_i z_i / sum w_i`` with ``w_i = n_i - 3`` over dims with a finite
    ``r`` and ``n_i > 3``, standard error ``sqrt(v / sum w_i)``, a normal p-value. A dim
    with ``r = +/-1`` (frequent for Spearman over few encoders) enters with a finite z (see
    ``_bounded_z``) and its own interval reaches ``+/-1`` on that side.

    Returns:
        ``dim, n, r, ci_low, ci_high, p_value, weight``.

    Raises:
        ValueError: a missing column, an unknown method, a bad confidence.
    """
    check_choice(method, METHODS, "method")
    confidence = check_confidence(confidence)
    check_columns(table, [dim_col])
    keys = list(dict.fromkeys([*config_cols, dim_col]))
    data = seed_means(table, [score, target], config_cols=keys, seed_col=seed_col)
    q = float(stats.norm.ppf((1 + confidence) / 2))
    v = 1.06 if method == "spearman" else 1.0
    rows = []
    for dim, group in data.groupby(dim_col, sort=True):
        n = len(group)
        r = p = float("nan")
        if n >= 3:
            r, p = (float(t) for t in (stats.spearmanr if method == "spearman" else stats.pearsonr)(
                group[score], group[target]))
        w = n - 3 if np.isfinite(r) and n > 3 else 0
        z = _bounded_z(r, n)
        half = q * np.sqrt(v / w) if w else float("nan")
        low, high = float(np.tanh(z - half)), float(np.tanh(z + half))
        rows.append({"dim": dim, "n": n, "r": r, "ci_low": -1.0 if r == -1 else low,
                     "ci_high": 1.0 if r == 1 else high, "p_value": p, "weight": w, "z": z})
    out = pd.DataFrame(rows, columns=["dim", "n", "r", "ci_low", "ci_high", "p_value", "weight", "z"])
    w = out["weight"].to_numpy(dtype=float)
    if w.sum() > 0:
        used = w > 0
        z = float(np.sum(w[used] * out["z"].to_numpy(dtype=float)[used]) / w.sum())
        se = float(np.sqrt(v / w.sum()))
        pooled = {"r": np.tanh(z), "ci_low": np.tanh(z - q * se), "ci_high": np.tanh(z + q * se),
                  "p_value": float(2 * stats.norm.sf(abs(z) / se))}
    else:
        pooled = dict.fromkeys(("r", "ci_low", "ci_high", "p_value"), float("nan"))
    pooled_row = pd.DataFrame([{"dim": "pooled", "n": int(out["n"].sum()), **pooled, "weight": int(w.sum())}])
    return pd.concat([out.drop(columns="z").astype({"dim": object}), pooled_row], ignore_index=True)
