"""Summaries of per-point distance curves: quantile bands and relative changes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rmqm._utils.validation import check_columns

__all__ = ['level_bands', 'relative_change_table']


def level_bands(
    levels: pd.DataFrame,
    by: Sequence[str] = (),
    series: Sequence[str] = ("a", "b"),
    quantiles: tuple[float, float] = (0.1, 0.9),
) -> pd.DataFrame:
    """Median and a quantile band of per-point distance curves at each level.

    Args:
        levels: long table with columns ``level``, ``strength``, the ``series`` columns
            (e.g. :attr:`rmqm.metrics.rmqm.measure.RMQMResult.levels` with extra grouping columns).
        by: grouping columns (e.g. ``("method",)``); each group gets its own curves.
        series: value columns to summarise (``a`` distance from the original, ``b`` step).
        quantiles: lower and upper quantile of the band, in ``[0, 1]``.

    Returns:
        Long table: ``*by, level, strength, series, low, median, high, n``.

    Raises:
        ValueError: quantiles out of order or outside ``[0, 1]``, or a missing column.
    """
    lo, hi = quantiles
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"quantiles must satisfy 0 <= low <= high <= 1; got {quantiles}")
    check_columns(levels, [*by, "level", "strength", *series], "levels table")
    keys = [*by, "level", "strength"]
    long = levels.melt(id_vars=keys, value_vars=list(series), var_name="series", value_name="value")
    grouped = long.groupby([*by, "level", "strength", "series"], sort=True)["value"]
    out = grouped.agg(
        low=lambda v: v.quantile(lo), median="median", high=lambda v: v.quantile(hi), n="size"
    ).reset_index()
    return out


def relative_change_table(levels: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Absolute relative changes ``|r_k| = |s_k - s_{k-1}| / s_{k-1}`` of each point's
    ``a`` and ``b`` series (methods page, eq. relchange), one row per point and level.

    Args:
        levels: long table with ``point``, ``level``, ``strength``, ``a``, ``b`` and the
            ``by`` columns; levels of a point must be consecutive integers.

    Returns:
        ``*by, point, level, strength, series, abs_rel_change`` (``inf`` where the
        previous distance is 0, kept so callers can count such points).

    Raises:
        ValueError: a missing column.
    """
    check_columns(levels, [*by, "point", "level", "strength", "a", "b"], "levels table")
    keys = [*by, "point"]
    df = levels.sort_values([*keys, "level"])
    parts = []
    for s in ("a", "b"):
        prev = df.groupby(keys, sort=False)[s].shift(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (df[s] - prev).abs() / prev
        part = df[[*keys, "level", "strength"]].assign(series=s, abs_rel_change=r)
        parts.append(part[prev.notna()])
    return pd.concat(parts, ignore_index=True)
