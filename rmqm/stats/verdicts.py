"""Contrasts between method families and verdicts from intervals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rmqm._utils.validation import check_columns

__all__ = ['family_contrast', 'interval_verdict', 'format_interval']


def family_contrast(
    table: pd.DataFrame,
    values: str | Sequence[str],
    by: Sequence[str],
    first: str = "self-supervised",
    second: str = "supervised",
    *,
    family_column: str = "family",
    statistic: str = "median",
) -> pd.DataFrame:
    """Difference of a statistic of ``values`` between two families, per group.

    For each group of ``by`` (e.g. perturbation, dim and seed), ``statistic`` (``"median"``
    or ``"mean"``) of each value column over the rows of family ``first`` minus the same
    over the rows of family ``second``. A group that lacks either family is left out.

    Returns:
        ``*by, <value>_<first>, <value>_<second>, <value>_diff`` for each value column.

    Raises:
        ValueError: an unknown statistic, a missing column, or no rows of either family.
    """
    values = [values] if isinstance(values, str) else list(values)
    by = list(by)
    if statistic not in ("median", "mean"):
        raise ValueError(f"statistic must be 'median' or 'mean'; got {statistic!r}")
    check_columns(table, [*values, *by, family_column])
    sub = table[table[family_column].isin([first, second])]
    stat = sub.groupby([*by, family_column])[values].agg(statistic).unstack(family_column)
    out = pd.DataFrame(index=stat.index)
    for v in values:
        if (v, first) not in stat.columns or (v, second) not in stat.columns:
            raise ValueError(f"table has no rows of family {first!r} or {second!r} to compare")
        out[f"{v}_{first}"] = stat[(v, first)]
        out[f"{v}_{second}"] = stat[(v, second)]
        out[f"{v}_diff"] = stat[(v, first)] - stat[(v, second)]
    return out.dropna().reset_index()


def interval_verdict(low: float, high: float, null: float = 0.0, expected: str = "positive") -> str:
    """What a confidence interval says about a claim of an effect of sign ``expected``.

    ``"supported: <sign>"`` when the interval lies entirely on the ``expected`` side of
    ``null``, ``"contradicted: <sign>"`` when it lies entirely on the other side (``<sign>``
    is the side it lies on), ``"inconclusive"`` when it contains ``null``, and ``"no
    interval"`` when it is undefined (fewer than two seeds).

    Raises:
        ValueError: ``expected`` is not ``"positive"``/``"negative"``, or ``low > high``.
    """
    if expected not in ("positive", "negative"):
        raise ValueError(f"expected must be 'positive' or 'negative'; got {expected!r}")
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no interval"
    if low > high:
        raise ValueError(f"interval low {low} exceeds high {high}")
    if low > null or high < null:
        side = "positive" if low > null else "negative"
        return f"{'supported' if side == expected else 'contradicted'}: {side}"
    return "inconclusive"


def format_interval(mean: float, low: float, high: float, digits: int = 2, signed: bool = True) -> str:
    """``"+0.96 [+0.94, +0.98]"``; the bracket is left out when the interval is undefined."""
    spec = f"{'+' if signed else ''}.{int(digits)}f"
    text = format(mean, spec)
    if np.isfinite(low) and np.isfinite(high):
        text += f" [{format(low, spec)}, {format(high, spec)}]"
    return text
