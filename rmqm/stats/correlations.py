"""Correlations between scores and accuracies, with bootstrap and per-seed intervals."""

from __future__ import annotations

import zlib
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from rmqm._utils.validation import check_confidence
from rmqm.stats.intervals import per_seed

__all__ = ['CORRELATIONS', 'correlation', 'bootstrap_correlations', 'rank_agreement', 'seed_correlations']


#: Correlation coefficients :func:`bootstrap_correlations` reports.
CORRELATIONS: tuple[str, ...] = ("pearson", "spearman", "kendall")


def correlation(x: Any, y: Any, method: str = "pearson") -> tuple[float, float]:
    """Correlation coefficient and two-sided p-value of ``x`` and ``y`` (scipy).

    Returns ``(nan, nan)`` when either input is constant.
    """
    if method not in CORRELATIONS:
        raise ValueError(f"unknown correlation {method!r}; choose one of {list(CORRELATIONS)}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length; got {x.shape} and {y.shape}")
    if x.size < 3:
        raise ValueError(f"need at least 3 pairs for a correlation; got {x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    fn = {"pearson": stats.pearsonr, "spearman": stats.spearmanr, "kendall": stats.kendalltau}[method]
    res = fn(x, y)
    return float(res[0]), float(res[1])


def _finite_pairs(table: pd.DataFrame, x: str, y: str) -> np.ndarray:
    """``(n, 2)`` float array of the rows where columns ``x`` and ``y`` are both finite."""
    pair = table[[x, y]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    return pair[np.isfinite(pair).all(axis=1)]


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
    with a percentile-bootstrap confidence interval (rows resampled with replacement).

    Rows where a score or target is not finite are left out of that pair. A bootstrap
    replicate in which either column is constant gives no coefficient and is skipped;
    ``n_boot_valid`` says how many were used. Each (score, target) pair draws its own
    seeded resamples, so adding columns leaves the other intervals unchanged.

    Returns:
        ``score, target, method, n, r, p_value, ci_low, ci_high, n_boot_valid``.
    """
    check_confidence(confidence)
    if int(n_boot) != n_boot or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer; got {n_boot}")
    missing = [c for c in (*scores, *targets) if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; has {list(table.columns)}")
    for m in methods:
        if m not in CORRELATIONS:
            raise ValueError(f"unknown correlation {m!r}; choose one of {list(CORRELATIONS)}")
    alpha = (1.0 - confidence) / 2
    rows = []
    for score in scores:
        for target in targets:
            pair = _finite_pairs(table, score, target)
            n = pair.shape[0]
            # one stream per (score, target): a pair's interval does not depend on the others
            rng = np.random.default_rng([int(seed), zlib.crc32(f"{score}|{target}".encode())])
            idx = rng.integers(0, n, size=(int(n_boot), n)) if n >= 3 else np.empty((0, n), dtype=int)
            for method in methods:
                r, p = correlation(pair[:, 0], pair[:, 1], method) if n >= 3 else (np.nan, np.nan)
                boot = []
                for sample in idx:
                    x, y = pair[sample, 0], pair[sample, 1]
                    if np.ptp(x) > 0 and np.ptp(y) > 0:
                        boot.append(correlation(x, y, method)[0])
                boot_arr = np.asarray(boot, dtype=np.float64)
                boot_arr = boot_arr[np.isfinite(boot_arr)]
                low, high = (np.quantile(boot_arr, [alpha, 1 - alpha]) if boot_arr.size else (np.nan, np.nan))
                rows.append({
                    "score": score, "target": target, "method": method, "n": n, "r": r, "p_value": p,
                    "ci_low": float(low), "ci_high": float(high), "n_boot_valid": int(boot_arr.size),
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
    for m in methods:
        if m not in CORRELATIONS:
            raise ValueError(f"unknown correlation {m!r}; choose one of {list(CORRELATIONS)}")
    missing = [c for c in (*scores, *targets) if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; has {list(table.columns)}")

    def one_seed(rows: pd.DataFrame) -> pd.DataFrame:
        out = []
        for score in scores:
            for target in targets:
                pair = _finite_pairs(rows, score, target)
                for method in methods:
                    r, p = correlation(pair[:, 0], pair[:, 1], method) if len(pair) >= 3 else (np.nan, np.nan)
                    out.append({"score": score, "target": target, "method": method, "n": len(pair),
                                "r": r, "p_value": p})
        return pd.DataFrame(out)

    return per_seed(table, one_seed, seed_column)
