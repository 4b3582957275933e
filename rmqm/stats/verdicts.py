"""Contrasts between method families, verdicts from intervals, multiple-testing adjustment and
the expected signs of the claims tested."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rmqm._utils.validation import check_columns, check_real

__all__ = [
    'family_contrast', 'interval_verdict', 'verdict_word', 'format_interval', 'holm', 'verdict_table', 'ExpectedSign',
    'expected_sign_alpha_req',
]


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


def verdict_word(verdict: object) -> str:
    """The verdict without its detail: ``"supported: positive"`` -> ``"supported"``,
    ``"inconclusive"`` -> ``"inconclusive"`` (the one place that reads :func:`interval_verdict`'s
    text back).

    >>> verdict_word("contradicted: negative"), verdict_word("not measurable")
    ('contradicted', 'not measurable')
    """
    return str(verdict).split(":", 1)[0].strip()


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


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order.

    With the ``m`` finite p-values sorted ascending, ``p~_(i) = max_{j <= i} min(1, (m - j + 1)
    p_(j))``: monotone in the raw p and capped at 1; rejecting ``p~ <= alpha`` controls the
    family-wise error rate at ``alpha`` under any dependence. NaN p-values (an undefined test)
    are left out of the family (they do not count in ``m``) and stay NaN.

    Raises:
        ValueError: a p-value outside ``[0, 1]``.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError(f"p-values must lie in [0, 1]; got {p[finite][(p[finite] < 0) | (p[finite] > 1)].tolist()}")
    out = np.full(p.shape, np.nan)
    q = p[finite]
    order = np.argsort(q, kind="stable")
    m = q.size
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * q[order]))
    values = np.empty(m)
    values[order] = adjusted
    out[finite] = values
    return out


def verdict_table(
    rows: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    alpha: float = 0.05,
    p_col: str = "p_value",
    low_col: str = "ci_low",
    high_col: str = "ci_high",
    expected_col: str = "expected_sign",
    null: float = 0.0,
) -> pd.DataFrame:
    """``rows`` (one test each) with ``p_holm`` (Holm over all rows, :func:`holm`) and a
    ``verdict`` column:

    - ``"supported"``: ``p_holm <= alpha`` and the interval lies on the expected side of ``null``;
    - ``"contradicted"``: ``p_holm <= alpha`` and the interval lies on the other side;
    - ``"inconclusive"``: otherwise (adjusted p above ``alpha``, the interval containing
      ``null``, or no interval).

    ``expected_col`` holds ``"positive"`` or ``"negative"`` per row (the sign the claim
    predicts; see :func:`expected_sign_alpha_req` for alpha-ReQ). The interval is the
    unadjusted one the row brings; the adjusted p is what guards the family.

    Returns:
        a copy of ``rows`` with ``p_holm`` and ``verdict`` added.

    Raises:
        ValueError: a missing column, an ``alpha`` outside ``(0, 1)``, an expected sign other
            than ``"positive"``/``"negative"``.
    """
    table = pd.DataFrame(list(rows)) if not isinstance(rows, pd.DataFrame) else rows.copy()
    check_columns(table, [p_col, low_col, high_col, expected_col], "rows")
    alpha = check_real(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    table["p_holm"] = holm(table[p_col].to_numpy(dtype=np.float64))
    verdicts = []
    for low, high, expected, p in zip(table[low_col], table[high_col], table[expected_col], table["p_holm"],
                                      strict=True):
        side = verdict_word(interval_verdict(float(low), float(high), null, expected))
        verdicts.append(side if p <= alpha and side in ("supported", "contradicted") else "inconclusive")
    table["verdict"] = verdicts
    return table


@dataclass(frozen=True)
class ExpectedSign:
    """The score to correlate and the sign its authors' claim predicts for corr(score, accuracy).

    ``column`` names the score (``source`` itself, or a transform of it: see ``rule``);
    :meth:`values` computes it from a table.
    """
    column: str
    source: str
    sign: str
    rule: str

    def values(self, table: pd.DataFrame) -> pd.Series:
        """The ``column`` values from ``table[source]`` (``-|alpha - 1|`` for the distance rule)."""
        check_columns(table, [self.source])
        alpha = pd.to_numeric(table[self.source], errors="coerce")
        return (-(alpha - 1).abs() if self.column != self.source else alpha).rename(self.column)


def expected_sign_alpha_req(alphas: Any, source: str = "alpha_req") -> ExpectedSign:
    """The sign of corr(alpha-ReQ, accuracy) that alpha-ReQ's claim predicts, from the measured alphas.

    Agrawal et al. (NeurIPS 2022) find that representations whose eigenspectrum decays as
    ``i^-alpha`` with ``alpha`` close to 1 generalise best. So: every finite alpha above 1 ->
    larger alpha is farther from 1 -> expected sign ``"negative"``; every alpha below 1 ->
    ``"positive"``; mixed (or any alpha exactly 1) -> the score is the closeness
    ``-|alpha - 1|`` (column ``"neg_abs_<source>_minus_1"``) with sign ``"positive"``.

    Raises:
        ValueError: no finite alpha.
    """
    a = np.asarray(pd.to_numeric(pd.Series(np.ravel(np.asarray(alphas, dtype=object))), errors="coerce"),
                   dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise ValueError("need at least one finite alpha to derive alpha-ReQ's expected sign")
    if np.all(a > 1):
        return ExpectedSign(source, source, "negative", "all alphas > 1: larger alpha is farther from 1")
    if np.all(a < 1):
        return ExpectedSign(source, source, "positive", "all alphas < 1: larger alpha is closer to 1")
    return ExpectedSign(f"neg_abs_{source}_minus_1", source, "positive",
                        "alphas on both sides of 1: the score is -|alpha - 1|")
