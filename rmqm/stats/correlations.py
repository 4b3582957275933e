"""Correlations between scores and accuracies, with bootstrap and per-seed intervals."""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from rmqm._utils.validation import NotMeasurable, check_choice, check_columns, check_confidence
from rmqm.stats.intervals import per_seed

__all__ = ['CORRELATIONS', 'correlation', 'bootstrap_correlations', 'rank_agreement', 'seed_correlations']


#: Correlation coefficients :func:`bootstrap_correlations` reports.
CORRELATIONS: tuple[str, ...] = ("pearson", "spearman", "kendall")


def correlation(x: Any, y: Any, method: str = "pearson") -> tuple[float, float]:
    """Correlation coefficient and two-sided p-value of ``x`` and ``y`` (scipy).

    Args:
        x, y: 1-D sequences of equal length ``n >= 3``, finite.
        method: one of :data:`CORRELATIONS`.

    Returns:
        ``(r, p)``; ``(nan, nan)`` when either input is constant.

    Raises:
        ValueError: an unknown method, unequal or non-1-D shapes, fewer than 3 pairs, NaN/inf.
    """
    check_choice(method, CORRELATIONS, "correlation")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length; got {x.shape} and {y.shape}")
    if x.size < 3:
        raise NotMeasurable(f"need at least 3 pairs for a correlation; got {x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    fn = {"pearson": stats.pearsonr, "spearman": stats.spearmanr, "kendall": stats.kendalltau}[method]
    res = fn(x, y)
    return float(res[0]), float(res[1])


def _check_request(table: pd.DataFrame, scores: Sequence[str], targets: Sequence[str],
                   methods: Sequence[str]) -> None:
    """Raise unless ``table`` has the score and target columns and ``methods`` are known."""
    for m in methods:
        check_choice(m, CORRELATIONS, "correlation")
    check_columns(table, [*scores, *targets])


def _finite_pairs(table: pd.DataFrame, x: str, y: str) -> np.ndarray:
    """``(n, 2)`` float array of the rows where columns ``x`` and ``y`` are both finite."""
    pair = table[[x, y]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    return pair[np.isfinite(pair).all(axis=1)]


def _coefficients(
    table: pd.DataFrame, scores: Sequence[str], targets: Sequence[str], methods: Sequence[str]
) -> Iterator[tuple[str, str, str, np.ndarray, float, float]]:
    """``(score, target, method, pairs, r, p)`` for every combination, ``pairs`` the ``(n, 2)``
    finite rows of the two columns; ``r = p = nan`` with fewer than 3 pairs."""
    for score in scores:
        for target in targets:
            pair = _finite_pairs(table, score, target)
            for method in methods:
                r, p = correlation(pair[:, 0], pair[:, 1], method) if len(pair) >= 3 else (np.nan, np.nan)
                yield score, target, method, pair, r, p


def _bootstrap_distribution(pair: np.ndarray, method: str, n_boot: int, seed: Sequence[int]) -> np.ndarray:
    """Coefficients of ``n_boot`` paired resamples of the rows of ``pair`` (``(n, 2)``, ``n >= 3``),
    drawn by :func:`scipy.stats.bootstrap` from ``default_rng(seed)``; NaN for a constant resample."""
    if n_boot == 0:
        return np.empty(0)
    with warnings.catch_warnings():
        # a constant resample gives NaN, which scipy's own interval (not used here) warns about
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap(
            (pair[:, 0], pair[:, 1]), lambda x, y: correlation(x, y, method)[0], n_resamples=n_boot,
            paired=True, vectorized=False, method="percentile", rng=np.random.default_rng(seed),
        )
    return np.asarray(result.bootstrap_distribution, dtype=np.float64)


def bootstrap_correlations(
    table: pd.DataFrame,
    scores: Sequence[str],
    targets: Sequence[str],
    *,
    methods: Sequence[str] = CORRELATIONS,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Correlation of each score with each target across the rows (encoders) of ``table``,
    with a percentile-bootstrap confidence interval (rows resampled with replacement,
    :func:`scipy.stats.bootstrap` with ``paired=True``).

    Rows where a score or target is not finite are left out of that pair. A bootstrap
    replicate in which either column is constant gives no coefficient and is skipped
    (the percentiles are taken over the others); ``n_boot_valid`` says how many were
    used. Each (score, target) pair draws its own seeded resamples, the same for every
    method, so adding columns leaves the other intervals unchanged.

    Returns:
        ``score, target, method, n, r, p_value, ci_low, ci_high, n_boot_valid``.

    Raises:
        ValueError: a bad ``confidence`` or ``n_boot``, a missing column, an unknown method.
    """
    check_confidence(confidence)
    if int(n_boot) != n_boot or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer; got {n_boot}")
    _check_request(table, scores, targets, methods)
    alpha = (1.0 - confidence) / 2
    rows = []
    for score, target, method, pair, r, p in _coefficients(table, scores, targets, methods):
        # one stream per (score, target): a pair's interval does not depend on the others
        stream = [int(seed), zlib.crc32(f"{score}|{target}".encode())]
        n = len(pair)
        boot = _bootstrap_distribution(pair, method, int(n_boot), stream) if n >= 3 else np.empty(0)
        boot = boot[np.isfinite(boot)]
        low, high = (np.quantile(boot, [alpha, 1 - alpha]) if boot.size else (np.nan, np.nan))
        rows.append({
            "score": score, "target": target, "method": method, "n": n, "r": r, "p_value": p,
            "ci_low": float(low), "ci_high": float(high), "n_boot_valid": int(boot.size),
        })
    return pd.DataFrame(rows)


def rank_agreement(x: Any, y: Any) -> dict[str, float]:
    """How alike two scores rank the same items: Spearman rho and Kendall tau (with p-values)."""
    rho, p_rho = correlation(x, y, "spearman")
    tau, p_tau = correlation(x, y, "kendall")
    return {"spearman": rho, "spearman_p": p_rho, "kendall": tau, "kendall_p": p_tau}


def seed_correlations(
    table: pd.DataFrame,
    scores: Sequence[str],
    targets: Sequence[str],
    *,
    methods: Sequence[str] = CORRELATIONS,
    seed_column: str = "seed",
) -> pd.DataFrame:
    """Correlation of each score with each target across the encoders of each seed.

    One coefficient per seed: the encoders trained (and measured) with seed ``s`` form one
    replicate of the whole zoo, so the spread of the coefficient over seeds is the
    run-to-run uncertainty of the study's answer. Summarise it with
    :func:`rmqm.stats.intervals.summarize_seeds` (``values="r", by=["score", "target", "method"]``).
    Rows with a non-finite score or target are left out of that pair; fewer than 3 pairs
    or a constant column give ``r = nan``.

    Returns:
        ``seed, score, target, method, n, r, p_value``.
    """
    _check_request(table, scores, targets, methods)

    def one_seed(rows: pd.DataFrame) -> pd.DataFrame:
        """The coefficients over the encoders of one seed."""
        return pd.DataFrame([
            {"score": score, "target": target, "method": method, "n": len(pair), "r": r, "p_value": p}
            for score, target, method, pair, r, p in _coefficients(rows, scores, targets, methods)
        ])

    return per_seed(table, one_seed, seed_column)
