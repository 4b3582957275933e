"""Intervals over seeds: Student-t means, seed summaries, per-seed statistics."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from rmqm._utils.validation import check_bounds, check_columns, check_confidence

__all__ = ['t_interval', 't_errorbar', 'per_seed', 'summarize_seeds']


def t_interval(
    values: Any, confidence: float = 0.95, bounds: tuple[float, float] | None = None
) -> tuple[float, float, float]:
    """Mean of the finite ``values`` and its two-sided Student-t confidence interval.

    ``mean -/+ t_{(1+c)/2, n-1} * s / sqrt(n)`` with ``s`` the sample standard deviation
    (ddof 1) of the ``n`` finite values; non-finite values (an undefined coefficient of one
    seed) are left out. ``bounds`` clips the interval to the quantity's range (e.g.
    ``(-1, 1)`` for a correlation, ``(0, 1)`` for an accuracy): with few seeds the
    symmetric interval can otherwise reach values the quantity cannot take.

    Returns:
        ``(mean, low, high)``; ``low = high = nan`` with fewer than 2 finite values and
        ``mean = nan`` with none.

    Raises:
        ValueError: a value that is not a number, a bad ``confidence`` or ``bounds``, or a
            mean outside ``bounds``.
    """
    confidence = check_confidence(confidence)
    bounds = check_bounds(bounds)
    x = pd.to_numeric(pd.Series(np.ravel(np.asarray(values, dtype=object))), errors="raise").to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if n == 1:
        return mean, float("nan"), float("nan")
    # Not scipy.stats.t.interval(confidence, n - 1, loc=mean, scale=sem): it takes the lower
    # end from t.ppf((1 - c) / 2), which is not exactly -t.ppf((1 + c) / 2), and rounds the
    # standard error first, so about half of its intervals differ from the published ones in
    # the last bits (up to 7e-15 relative). The symmetric formula keeps the tables exact.
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    low, high = mean - half, mean + half
    if bounds is not None:
        if not bounds[0] <= mean <= bounds[1]:
            raise ValueError(f"the mean {mean} lies outside bounds {bounds!r}")
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return mean, low, high


def t_errorbar(
    confidence: float = 0.95, bounds: tuple[float, float] | None = None
) -> Callable[[Any], tuple[float, float]]:
    """A seaborn ``errorbar=`` callable drawing :func:`t_interval` (no bar for one value)."""
    confidence = check_confidence(confidence)
    bounds = check_bounds(bounds)  # fails now rather than inside a plot

    def interval(values: Any) -> tuple[float, float]:
        mean, low, high = t_interval(values, confidence, bounds)
        return (mean, mean) if np.isnan(low) else (low, high)

    return interval


def per_seed(
    table: pd.DataFrame, fn: Callable[[pd.DataFrame], Any], seed_column: str = "seed"
) -> pd.DataFrame:
    """Apply ``fn`` to the rows of each seed and stack the results with a seed column.

    Args:
        table: rows of several seeds (e.g. one row per encoder and seed).
        fn: maps one seed's rows to a DataFrame, a dict (one row) or a scalar (column ``value``).
        seed_column: the column holding the seed.

    Returns:
        ``seed_column`` followed by ``fn``'s columns, seeds in ascending order.

    Raises:
        TypeError: ``table`` is not a DataFrame.
        ValueError: no seed column, or an empty table.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame; got {type(table).__name__}")
    if seed_column not in table.columns:
        raise ValueError(f"table has no seed column {seed_column!r}; it has {list(table.columns)}")
    if table.empty:
        raise ValueError("table is empty: there is no seed to summarise")
    parts = []
    for seed, rows in table.groupby(seed_column, sort=True):
        out = fn(rows)
        if isinstance(out, pd.DataFrame):
            out = out.copy()
        elif isinstance(out, Mapping):
            out = pd.DataFrame([dict(out)])
        else:
            out = pd.DataFrame({"value": [out]})
        if seed_column in out.columns:
            out = out.drop(columns=seed_column)
        out.insert(0, seed_column, seed)
        parts.append(out)
    return pd.concat(parts, ignore_index=True)


def summarize_seeds(
    table: pd.DataFrame,
    values: str | Sequence[str],
    by: str | Sequence[str] = (),
    *,
    seed_column: str = "seed",
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Mean over seeds with a Student-t confidence interval, per group.

    Args:
        table: a sweep table (one row per seed and group, e.g. from :func:`run_sweep`).
        values: metric column(s) to summarise.
        by: column(s) that define a group (everything that is not the seed).
        seed_column: the column holding the seed; each group must list a seed once.
        confidence: level of the two-sided interval, in (0, 1).
        bounds: range the metric can take (e.g. ``(-1, 1)`` for a correlation); the
            interval is clipped to it (see :func:`rmqm.stats.intervals.t_interval`).

    Returns:
        One row per group and metric: ``*by, metric, n_seeds, mean, std`` (ddof 1),
        ``ci_low, ci_high`` (``mean -/+ t_{(1+c)/2, n-1} * std / sqrt(n)``; NaN for one seed).

    Raises:
        TypeError: ``table`` is not a DataFrame.
        ValueError: no value column named, a missing column, a bad ``confidence`` or
            ``bounds``, or a (group, seed) combination that appears twice.
    """
    values = [values] if isinstance(values, str) else list(values)
    by = [by] if isinstance(by, str) else list(by)
    if not values:
        raise ValueError("name at least one value column")
    check_columns(table, [*values, *by, seed_column])
    confidence = check_confidence(confidence)
    bounds = check_bounds(bounds)
    keys = [*by, seed_column]
    duplicated = table.duplicated(subset=keys)
    if duplicated.any():
        raise ValueError(
            f"{int(duplicated.sum())} rows repeat a ({', '.join(keys)}) combination; add the column that "
            "tells them apart to `by`"
        )
    rows = []
    groups = table.groupby(by, sort=True, dropna=False) if by else [((), table)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        for metric in values:
            x = pd.to_numeric(group[metric], errors="raise").to_numpy(dtype=float)
            x = x[np.isfinite(x)]
            mean, low, high = t_interval(x, confidence, bounds)
            std = float(x.std(ddof=1)) if len(x) > 1 else float("nan")
            rows.append({**dict(zip(by, key, strict=True)), "metric": metric, "n_seeds": len(x), "mean": mean,
                         "std": std, "ci_low": low, "ci_high": high})
    columns = [*by, "metric", "n_seeds", "mean", "std", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=columns)
