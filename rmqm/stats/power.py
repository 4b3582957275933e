"""What "inconclusive" can mean: the smallest effect the zoo's design detects, and whether a
verdict rests on one method family.

:func:`detectable_effect` simulates zoos of the measured size (configurations x seed labels) and
variance components (:func:`rmqm.stats.design.variance_breakdown`) of a score and a target whose
configuration effects correlate by ``rho``, computes the crossed statistic
(:func:`rmqm.stats.crossed.crossed_statistic`) of each, and returns the smallest ``rho`` of a grid
at which a two-sided test at ``alpha`` rejects in at least ``power`` of them. The null's
critical value comes from the same simulation at ``rho = 0`` (what the configuration
permutation estimates). Common random numbers over the grid keep the power curve smooth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rmqm._utils.validation import NotMeasurable, check_columns, check_real
from rmqm.stats.crossed import crossed_statistic, crossed_zoo
from rmqm.stats.design import variance_breakdown

__all__ = ['DetectableEffect', 'detectable_effect', 'leave_one_out', 'leave_one_out_text']


@dataclass(frozen=True)
class DetectableEffect:
    """``rho``: the smallest configuration-level correlation detected with ``power`` at two-sided
    ``alpha`` (NaN: none up to 0.95); ``statistic``: the mean crossed statistic at that ``rho``
    (the scale of the row's estimate); the simulated design ``n_configs x n_seeds``."""
    rho: float
    statistic: float
    alpha: float
    power: float
    n_configs: int
    n_seeds: int
    n_sim: int


def _components(table: pd.DataFrame, column: str, config_cols: Sequence[str], seed_col: str) -> np.ndarray:
    """``(sd_config, sd_seed, sd_residual)`` of a column; a column without spread gets ``(1, 0, 0)``."""
    row = variance_breakdown(table, [column], config_cols=config_cols, seed_col=seed_col).iloc[0]
    v = np.array([row["var_config"], row["var_seed"], row["var_residual"]], dtype=float)
    if not np.isfinite(v).all() or v.sum() <= 0:
        return np.array([1.0, 0.0, 0.0])
    return np.sqrt(v)


def detectable_effect(table: pd.DataFrame, score: str, target: str, *, config_cols: Sequence[str] = ("method", "dim"),
                      seed_col: str = "seed", method: str = "spearman", alpha: float = 0.05, power: float = 0.8,
                      n_sim: int = 300, grid: Sequence[float] = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2)),
                      random_state: int = 0) -> DetectableEffect:
    """The smallest effect this design detects with ``power`` (see the module docstring).

    ``alpha`` is the level the row is judged at: for the first step of Holm over a family of
    ``m`` rows pass ``0.05 / m``. Costs ``(len(grid) + 1) * n_sim`` statistics of a
    ``C x S`` zoo, vectorised.

    Raises:
        ValueError: as :func:`rmqm.stats.crossed.crossed_zoo`, or ``alpha``/``power`` outside (0, 1).
    """
    alpha = check_real(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    power = check_real(power, "power", low=0.0, high=1.0, low_open=True, high_open=True)
    zoo = crossed_zoo(table, [score, target], config_cols, seed_col, allow_inf=False)
    c, s = zoo.values.shape[:2]
    sx, sy = (_components(table, col, config_cols, seed_col) for col in (score, target))
    rng = np.random.default_rng(random_state)
    a, a2 = rng.normal(size=(2, n_sim, c, 1))
    u, v = rng.normal(size=(2, n_sim, 1, s))
    e, f = rng.normal(size=(2, n_sim, c, s))
    missing = np.isnan(zoo.values[..., 0]) | np.isnan(zoo.values[..., 1])

    def simulate(rho: float) -> np.ndarray:
        b = rho * a + np.sqrt(1 - rho * rho) * a2
        x = sx[0] * a + sx[1] * u + sx[2] * e
        y = sy[0] * b + sy[1] * v + sy[2] * f
        x = np.where(missing, np.nan, x)
        return crossed_statistic(x, y, method=method)[0]

    null = np.abs(simulate(0.0))
    critical = float(np.quantile(null[np.isfinite(null)], 1 - alpha))
    for rho in grid:
        t = simulate(float(rho))
        if np.mean(np.abs(t) > critical) >= power:
            return DetectableEffect(float(rho), float(np.nanmean(t)), alpha, power, c, s, n_sim)
    return DetectableEffect(float("nan"), float("nan"), alpha, power, c, s, n_sim)


def leave_one_out(table: pd.DataFrame, score: str, target: str, *, group_col: str = "method",
                  config_cols: Sequence[str] = ("method", "dim"), seed_col: str = "seed",
                  method: str = "spearman") -> pd.DataFrame:
    """The crossed statistic with each value of ``group_col`` (e.g. each training method) left
    out: does a verdict rest on one method family?

    Returns:
        ``left_out, estimate, n_configs`` (NaN estimate when fewer than 3 configurations remain).
    """
    check_columns(table, [group_col])
    rows = []
    for group in sorted(table[group_col].dropna().unique().tolist(), key=str):
        rest = table[table[group_col] != group]
        try:
            zoo = crossed_zoo(rest, [score, target], config_cols, seed_col, allow_inf=method == "spearman")
        except NotMeasurable:  # fewer than 3 configurations left
            rows.append({"left_out": group, "estimate": np.nan, "n_configs": 0})
            continue
        t = crossed_statistic(zoo.values[None, ..., 0], zoo.values[None, ..., 1], method=method)[0][0]
        rows.append({"left_out": group, "estimate": float(t), "n_configs": len(zoo.configs)})
    return pd.DataFrame(rows, columns=["left_out", "estimate", "n_configs"])


def leave_one_out_text(loo: pd.DataFrame) -> str:
    """``"+0.41 to +0.65 (lowest without vicreg)"``, or ``"none"`` without a finite estimate."""
    finite = loo[np.isfinite(loo["estimate"].astype(float))]
    if finite.empty:
        return "none"
    low = finite.loc[finite["estimate"].idxmin()]
    return f"{finite['estimate'].min():+.2f} to {finite['estimate'].max():+.2f} (lowest without {low['left_out']})"
