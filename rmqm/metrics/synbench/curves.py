"""SynBench curves and scores: expected bound vs threshold accuracy, area ratios."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from rmqm._utils.validation import as_vector

__all__ = [
    "DEFAULT_S_VALUES", "DEFAULT_THRESHOLDS", "ACCURACY_GRID", "accuracy_grid", "expected_bound_curve",
    "synbench_scores", "check_thresholds",
]


#: Mean scales ``s = ||mu||`` of the reference: 0.1, 0.2, ..., 4.9.
DEFAULT_S_VALUES: np.ndarray = np.round(np.arange(1, 50) * 0.1, 10)


#: Threshold accuracies at which the reference prints the score.
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)


#: Threshold-accuracy grid ``a_t`` of the reference curves.
ACCURACY_GRID: np.ndarray = np.linspace(0.6, 1.0, 100)


def accuracy_grid(thresholds: ArrayLike = DEFAULT_THRESHOLDS) -> np.ndarray:
    """The reference grid ``linspace(0.6, 1, 100)`` of ``a_t``, extended downwards with
    the same spacing when a threshold lies below 0.6 (scores at ``t >= 0.6`` unchanged).

    Args:
        thresholds: non-empty threshold accuracies in ``(0.5, 1)``.
    """
    t_min = float(check_thresholds(thresholds).min())
    step = ACCURACY_GRID[1] - ACCURACY_GRID[0]
    extra = max(0, math.ceil((ACCURACY_GRID[0] - t_min) / step - 1e-9))
    return ACCURACY_GRID[0] + step * np.arange(-extra, ACCURACY_GRID.size)


def expected_bound_curve(accuracy: Any, bound: Any, grid: Any = ACCURACY_GRID) -> np.ndarray:
    """``E(a_t) = (1/|S|) sum_s bound(s) [accuracy(s) > a_t]`` for each ``a_t`` in ``grid``.

    Args:
        accuracy, bound: ``(..., S)`` per mean scale (leading axes broadcast, e.g.
            bootstrap replicates).
        grid: ``(G,)`` threshold accuracies.

    Returns:
        ``(..., G)`` curve.
    """
    acc = np.asarray(accuracy, dtype=np.float64)
    bnd = np.asarray(bound, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    if acc.shape != bnd.shape or acc.ndim == 0:
        raise ValueError(f"accuracy and bound must have the same shape (..., S); got {acc.shape} and {bnd.shape}")
    if acc.size == 0:
        raise ValueError(f"accuracy and bound must not be empty; got shape {acc.shape}")
    if not (np.isfinite(acc).all() and np.isfinite(bnd).all()):
        raise ValueError("accuracy and bound must be finite (no NaN or inf)")
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all():
        raise ValueError(f"grid must be a non-empty 1-D array of finite accuracies; got shape {grid.shape}")
    above = acc[..., None, :] > grid[:, None]
    return (bnd[..., None, :] * above).mean(axis=-1)


def synbench_scores(rep_curve: Any, raw_curve: Any, grid: Any, thresholds: ArrayLike) -> np.ndarray:
    """SynBench score per threshold: ``sum_{a_t >= t} E_rep(a_t) / sum_{a_t >= t} E_raw(a_t)``.

    Args:
        rep_curve: ``(..., G)`` representation curve(s).
        raw_curve: ``(G,)`` raw-data curve.
        grid: ``(G,)`` threshold accuracies of the curves.
        thresholds: ``(T,)`` values of ``t``.

    Returns:
        ``(..., T)`` scores.
    """
    grid = np.asarray(grid, dtype=np.float64)
    ts = check_thresholds(thresholds)
    mask = grid[:, None] >= ts[None, :] - 1e-12  # (G, T)
    raw_area = np.asarray(raw_curve, dtype=np.float64) @ mask
    if not (raw_area > 0).all():
        bad = ts[~(raw_area > 0)]
        raise ValueError(
            f"thresholds {bad.tolist()} leave no raw-data area: no mean scale s reaches that "
            f"accuracy on the grid (largest grid value below 1 is {grid[grid < 1].max():.5f}); "
            f"lower the thresholds or extend s_values"
        )
    return (np.asarray(rep_curve, dtype=np.float64) @ mask) / raw_area


def check_thresholds(thresholds: ArrayLike) -> np.ndarray:
    """``thresholds`` as a non-empty 1-D float64 array of accuracies in ``(0.5, 1)`` (else ValueError)."""
    ts = as_vector(thresholds, "thresholds")
    if not np.all((ts > 0.5) & (ts < 1.0)):
        raise ValueError(f"thresholds must lie in (0.5, 1); got {ts.tolist()}")
    return ts
