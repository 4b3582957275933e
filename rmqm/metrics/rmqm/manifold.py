"""RMQM's statistics of embedding trajectories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

__all__ = ['distance_series', 'relative_changes', 'point_statistics', 'rmqm_score', 'summarize']


def distance_series(z: torch.Tensor, normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances from the original and step sizes along each point's trajectory.

    Args:
        z: embeddings ``(N, L, d)``: ``N`` points, ``L >= 3`` levels (level 0 clean).
        normalize: L2-normalise each embedding first (the reference does).

    Returns:
        ``(a, b)``, each ``(N, L - 1)``: ``a[:, k-1] = ||z_k - z_0||`` and
        ``b[:, k-1] = ||z_k - z_{k-1}||`` (Euclidean, in embedding units).
    """
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"embeddings must be a torch.Tensor (N, L, d); got {type(z).__name__}")
    if z.ndim != 3:
        raise ValueError(f"embeddings must have shape (points, levels, dim); got {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"embeddings must be a floating-point tensor; got {z.dtype}")
    if z.shape[1] < 3:
        raise ValueError(f"need at least 3 levels (two steps) per point; got {z.shape[1]}")
    if not torch.isfinite(z).all():
        raise ValueError("embeddings contain NaN or inf values")
    if normalize:
        z = F.normalize(z, dim=-1)
    a = (z[:, 1:] - z[:, :1]).norm(dim=-1)
    b = (z[:, 1:] - z[:, :-1]).norm(dim=-1)
    return a, b


def relative_changes(s: np.ndarray) -> np.ndarray:
    """Relative change ``(s_k - s_{k-1}) / s_{k-1}`` along the last axis.

    ``s`` has shape ``(N, m)``; the result ``(N, m - 1)``. A zero ``s_{k-1}`` gives
    ``inf`` (or ``nan`` for ``0 / 0``), kept so that callers can drop such points.
    """
    s = np.asarray(s, dtype=np.float64)
    if s.ndim < 1:
        raise ValueError("relative changes need a series (an array with at least one axis); got a scalar")
    with np.errstate(divide="ignore", invalid="ignore"):
        return (s[..., 1:] - s[..., :-1]) / s[..., :-1]


def point_statistics(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> pd.DataFrame:
    """Per-point statistics from the distance series.

    Args:
        a, b: ``(N, L - 1)`` distances from the original and step sizes (levels 1..L-1).

    Returns:
        A DataFrame with one row per point and columns ``A, B, S_a, S_b, total_a,
        total_b, spikes_a, spikes_b`` (``S``/``spikes`` are NaN where ``finite`` is
        False) and ``finite`` (all relative changes of both series are finite).
    """
    # via float64 tensors: numpy has no bfloat16
    a = np.asarray(a.detach().cpu().double() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    b = np.asarray(b.detach().cpu().double() if isinstance(b, torch.Tensor) else b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must both be (points, levels - 1); got {a.shape} and {b.shape}")
    if a.shape[1] < 2:
        raise ValueError("need at least two steps (three levels) to compute relative changes")
    if not (np.isfinite(a).all() and np.isfinite(b).all()) or (a < 0).any() or (b < 0).any():
        raise ValueError("distances a and b must be finite and >= 0")
    ra, rb = np.abs(relative_changes(a)), np.abs(relative_changes(b))
    finite = np.isfinite(ra).all(axis=1) & np.isfinite(rb).all(axis=1)
    nan = np.where(finite, 1.0, np.nan)
    return pd.DataFrame(
        {
            "A": a.mean(axis=1),
            "B": b.mean(axis=1),
            "S_a": ra.mean(axis=1) * nan,
            "S_b": rb.mean(axis=1) * nan,
            "total_a": a.sum(axis=1),
            "total_b": b.sum(axis=1),
            "spikes_a": ra.sum(axis=1) * nan,
            "spikes_b": rb.sum(axis=1) * nan,
            "finite": finite,
        }
    )


def rmqm_score(points: pd.DataFrame) -> dict[str, float]:
    """RMQM and its components over a set of points (rows of :func:`point_statistics`).

    ``RMQM = ln(1 + mean A + mean B + 1 / mean S_a + 1 / mean S_b)``, the S means over
    the points whose relative changes are all finite. If no point is finite, or a mean
    S is exactly 0 (a perfectly constant step), the score is ``inf``.

    Returns:
        ``{"rmqm", "mean_A", "mean_B", "mean_S_a", "mean_S_b", "inv_S_a", "inv_S_b",
        "n_points", "n_dropped"}``.
    """
    if len(points) == 0:
        raise ValueError("no points to score")
    kept = points[points["finite"]]
    mean_a, mean_b = float(points["A"].mean()), float(points["B"].mean())
    s_a = float(kept["S_a"].mean()) if len(kept) else float("nan")
    s_b = float(kept["S_b"].mean()) if len(kept) else float("nan")
    with np.errstate(divide="ignore"):
        inv_a = float(np.float64(1.0) / s_a) if len(kept) else float("inf")
        inv_b = float(np.float64(1.0) / s_b) if len(kept) else float("inf")
    return {
        "rmqm": float(np.log1p(mean_a + mean_b + inv_a + inv_b)),
        "mean_A": mean_a,
        "mean_B": mean_b,
        "mean_S_a": s_a,
        "mean_S_b": s_b,
        "inv_S_a": inv_a,
        "inv_S_b": inv_b,
        "n_points": int(len(points)),
        "n_dropped": int((~points["finite"]).sum()),
    }


def summarize(points: pd.DataFrame, by: str | None = "label") -> pd.DataFrame:
    """RMQM over all points, then per group of column ``by`` (e.g. per class).

    Returns a DataFrame with a ``scope`` column (``"all"`` or ``"<by>=<value>"``) and
    the entries of :func:`rmqm_score`.
    """
    rows = [{"scope": "all", **rmqm_score(points)}]
    if by is not None and by in points.columns:
        for value, group in points.groupby(by, sort=True):
            rows.append({"scope": f"{by}={value}", **rmqm_score(group)})
    return pd.DataFrame(rows)
