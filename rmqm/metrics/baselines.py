"""Label-free baselines: RankMe and alpha-ReQ of an embedding matrix."""

from __future__ import annotations

from typing import Any

import numpy as np

from rmqm._utils.validation import as_features, check_real

__all__ = ['eigenspectrum', 'rankme', 'alpha_req', 'label_free_scores']


def eigenspectrum(z: Any) -> np.ndarray:
    """Eigenvalues ``(min(N, d),)`` of the covariance of ``z`` (``(N, d)``, rows are points), descending.

    Raises:
        ValueError: ``z`` not a finite ``(N, d)`` array with ``N >= 2``.
    """
    x = as_features(z)
    if len(x) < 2:
        raise ValueError(f"need at least 2 points for a covariance; got {len(x)}")
    x = x - x.mean(axis=0)
    s = np.linalg.svd(x, compute_uv=False)
    return s**2 / (len(x) - 1)


def rankme(z: Any, eps: float = 1e-7) -> float:
    """RankMe effective rank of embeddings ``z`` of shape ``(N, d)`` (Garrido et al. 2023, eq. 1).

    ``p_k = sigma_k / ||sigma||_1 + eps`` over the singular values ``sigma`` of ``z``
    (uncentred, as in the paper); RankMe = ``exp(-sum_k p_k log p_k)``. It is ``r`` for a
    rank-``r`` matrix with equal singular values and close to ``d`` for isotropic data.

    Raises:
        ValueError: ``z`` not a finite ``(N, d)`` array or all zero; ``eps < 0``.
    """
    x = as_features(z)
    if eps < 0:
        raise ValueError(f"eps must be non-negative; got {eps}")
    s = np.linalg.svd(x, compute_uv=False)
    total = s.sum()
    if total <= 0:
        raise ValueError("embeddings are all zero; RankMe is undefined")
    p = s / total + eps
    p = p[p > 0]  # 0 log 0 = 0
    return float(np.exp(-(p * np.log(p)).sum()))


def alpha_req(z: Any, fit_range: tuple[int, int] | None = None, rtol: float = 1e-10) -> float:
    """alpha-ReQ: decay exponent of the covariance eigenspectrum (Agrawal et al. 2022).

    Fits ``log lambda_i = c - alpha log i`` by least squares over the eigenvalue ranks
    ``i`` in ``fit_range`` (1-based, ``[lo, hi)``; default: every eigenvalue above
    ``rtol`` times the largest). Larger alpha = faster decay = lower effective dimension.

    Args:
        z: ``(N, d)`` embeddings.
        fit_range: ranks to fit, e.g. ``(1, 64)``.
        rtol: eigenvalues below ``rtol * lambda_1`` are numerically zero and left out.

    Raises:
        TypeError: ``rtol`` is not a number.
        ValueError: bad ``z``, ``rtol`` or ``fit_range``; fewer than 2 eigenvalues to fit.
    """
    check_real(rtol, "rtol", low=0.0)
    lam = eigenspectrum(z)
    ranks = np.arange(1, len(lam) + 1)
    keep = lam > rtol * lam[0] if lam[0] > 0 else np.zeros_like(lam, dtype=bool)
    if fit_range is not None:
        lo, hi = fit_range
        if not 1 <= lo < hi:
            raise ValueError(f"fit_range must be (lo, hi) with 1 <= lo < hi; got {fit_range}")
        keep &= (ranks >= lo) & (ranks < hi)
    if keep.sum() < 2:
        raise ValueError("need at least 2 non-zero eigenvalues in the fit range to fit a power law")
    slope, _ = np.polyfit(np.log(ranks[keep]), np.log(lam[keep]), 1)
    return float(-slope)


def label_free_scores(z: Any) -> dict[str, float]:
    """``{"rankme": ..., "alpha_req": ...}`` of raw embeddings ``z`` ``(N, d)`` (as both papers compute them).

    Raises:
        ValueError: as :func:`rankme` and :func:`alpha_req`.
    """
    x = as_features(z)
    return {"rankme": rankme(x), "alpha_req": alpha_req(x)}
