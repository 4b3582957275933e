"""RMQM's statistics of embedding trajectories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

__all__ = ['DROP_RULES', 'distance_series', 'relative_changes', 'point_statistics', 'rmqm_score', 'summarize']


#: How :func:`point_statistics` drops points with a non-finite relative change from the S statistics.
DROP_RULES: tuple[str, ...] = ("per-series", "joint")


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


def point_statistics(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor,
                     drop: str = "per-series") -> pd.DataFrame:
    """Per-point statistics from the distance series.

    A relative change is non-finite where the distance before it is zero (``inf`` or ``nan``);
    such a point is dropped from the S statistics (``S_a, S_b, spikes_a, spikes_b`` set to NaN),
    never from ``A``, ``B`` and the totals:

    - ``drop="per-series"`` (default): from the statistics of that series only, as the reference
      notebook does (pandas ``dropna`` on each series separately): ``S_a`` is NaN where some
      ``r^a`` is non-finite, ``S_b`` where some ``r^b`` is.
    - ``drop="joint"``: a point with any non-finite relative change in either series loses both
      (the library's rule before the per-series default; one reading of the reference notebook's
      row-wise ``dropna``).

    Args:
        a, b: ``(N, L - 1)`` distances from the original and step sizes (levels 1..L-1).
        drop: one of :data:`DROP_RULES`.

    Returns:
        A DataFrame with one row per point and columns ``A, B, S_a, S_b, total_a,
        total_b, spikes_a, spikes_b`` and ``finite_a``, ``finite_b`` (all relative changes of
        that series are finite) and ``finite`` (both).
    """
    if drop not in DROP_RULES:
        raise ValueError(f"unknown drop rule {drop!r}; choose one of {list(DROP_RULES)}")
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
    finite_a, finite_b = np.isfinite(ra).all(axis=1), np.isfinite(rb).all(axis=1)
    finite = finite_a & finite_b
    keep_a, keep_b = (finite_a, finite_b) if drop == "per-series" else (finite, finite)
    with np.errstate(invalid="ignore"):  # inf * nan
        return pd.DataFrame(
            {
                "A": a.mean(axis=1),
                "B": b.mean(axis=1),
                "S_a": np.where(keep_a, ra.mean(axis=1), np.nan),
                "S_b": np.where(keep_b, rb.mean(axis=1), np.nan),
                "total_a": a.sum(axis=1),
                "total_b": b.sum(axis=1),
                "spikes_a": np.where(keep_a, ra.sum(axis=1), np.nan),
                "spikes_b": np.where(keep_b, rb.sum(axis=1), np.nan),
                "finite_a": finite_a,
                "finite_b": finite_b,
                "finite": finite,
            }
        )


def rmqm_score(points: pd.DataFrame) -> dict[str, float]:
    """RMQM and its components over a set of points (rows of :func:`point_statistics`).

    ``RMQM = ln(1 + mean A + mean B + 1 / mean S_a + 1 / mean S_b)``, each S mean over the
    points where that S is defined (not NaN: the drop rule of :func:`point_statistics` decides).
    If no point has a defined ``S_a`` (``S_b``), or its mean is exactly 0 (a perfectly constant
    step), its inverse and the score are ``inf``.

    Returns:
        ``{"rmqm", "mean_A", "mean_B", "mean_S_a", "mean_S_b", "inv_S_a", "inv_S_b",
        "n_points", "n_dropped", "n_dropped_a", "n_dropped_b"}``: ``n_dropped_a`` (``_b``) points
        left out of ``mean_S_a`` (``mean_S_b``), ``n_dropped`` points left out of either.
    """
    if len(points) == 0:
        raise ValueError("no points to score")
    mean_a, mean_b = float(points["A"].mean()), float(points["B"].mean())
    kept_a, kept_b = points["S_a"].dropna(), points["S_b"].dropna()
    s_a = float(kept_a.mean()) if len(kept_a) else float("nan")
    s_b = float(kept_b.mean()) if len(kept_b) else float("nan")
    with np.errstate(divide="ignore"):
        inv_a = float(np.float64(1.0) / s_a) if len(kept_a) else float("inf")
        inv_b = float(np.float64(1.0) / s_b) if len(kept_b) else float("inf")
    dropped_a, dropped_b = points["S_a"].isna().to_numpy(), points["S_b"].isna().to_numpy()
    return {
        "rmqm": float(np.log1p(mean_a + mean_b + inv_a + inv_b)),
        "mean_A": mean_a,
        "mean_B": mean_b,
        "mean_S_a": s_a,
        "mean_S_b": s_b,
        "inv_S_a": inv_a,
        "inv_S_b": inv_b,
        "n_points": int(len(points)),
        "n_dropped": int((dropped_a | dropped_b).sum()),
        "n_dropped_a": int(dropped_a.sum()),
        "n_dropped_b": int(dropped_b.sum()),
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
