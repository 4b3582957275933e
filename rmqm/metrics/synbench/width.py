"""Width-aware SynBench: the finite-sample penalty of wide features, and a score corrected for it.

The reference (IBM/synbench, ``evaluate_synbench.py``) fits its linear probe on ``n = 2048``
samples per mean scale whatever the feature width ``p``. Plug-in LDA then loses accuracy through
estimation alone (Raudys & Young 2004, the Deev/Raudys asymptotics): a *lossless* encoder (the
identity, any invertible map) keeps all of the raw mixture's separation yet scores well below 1
when ``p / n`` is not small, so the reference score ranks encoders partly by their width.

This module:

* :func:`separation_estimate`: the bias-corrected (unbiased) estimate of the squared Mahalanobis
  distance between the class means (Lachenbruch & Mickey 1968; Anderson, *An Introduction to
  Multivariate Statistical Analysis*, Sec. 6.6): with the plug-in ``D^2 = (m_1 - m_0)^T S^-1
  (m_1 - m_0)`` (``S`` the pooled covariance on ``n - 2`` degrees of freedom) and ``p`` kept
  directions, ``E D^2 = (n - 2) / (n - p - 3) (Delta^2 + p (1/n_1 + 1/n_0))`` for Gaussian classes, so
  ``Delta^2_hat = (n - p - 3) / (n - 2) D^2 - p (1/n_1 + 1/n_0)`` is unbiased. Half its square root
  (clipped at 0) is the *effective mean scale* ``s_eff``: the raw mixture's ``s`` at which the
  features' best linear rule would be as accurate (``Phi(s_eff)``; ``s_eff = s`` when lossless).
* :func:`corrected_scores`: the SynBench score of those effective scales with the large-sample
  LDA's accuracy ``Phi(s_eff)`` and bound ``E(Phi(s_eff))`` (:func:`expected_bound`): what the
  reference's score converges to as ``n -> infinity`` for Gaussian features, so it does not depend
  on the width through ``n``. It is an extension of the reference, not its score.
* :func:`lossless_probe` and :func:`width_penalty`: the reference score and the corrected one of
  a lossless encoder of width ``p`` (the raw mixture drawn directly in ``p`` dimensions: no
  encoder pass), test accuracy and bound in closed form for the fitted rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from rmqm._utils.validation import check_int
from rmqm.metrics.synbench.curves import (
    DEFAULT_S_VALUES,
    DEFAULT_THRESHOLDS,
    accuracy_grid,
    check_thresholds,
    expected_bound_curve,
    synbench_scores,
)
from rmqm.metrics.synbench.mixture import expected_bound, raw_accuracy
from rmqm.metrics.synbench.qcqp import ClassStatistics, robust_linear_rule

__all__ = ["separation_estimate", "effective_scale", "corrected_scores", "lossless_probe", "width_penalty",
           "WIDTHS", "SAMPLE_SIZES"]

#: Feature widths of the penalty figure: the study's LeNet dims, a ViT-B's 768 and EfficientNet-Lite's 1280.
WIDTHS: tuple[int, ...] = (16, 64, 256, 768, 1280)
#: Train sample sizes per mean scale of the penalty figure (the reference uses 2048).
SAMPLE_SIZES: tuple[int, ...] = (1000, 2000, 4000, 8000, 16000)


def separation_estimate(statistics: ClassStatistics, n_pos: int, n_neg: int) -> tuple[float, float]:
    """Plug-in and bias-corrected squared Mahalanobis distance of the class means.

    Args:
        statistics: :func:`~rmqm.metrics.synbench.qcqp.class_statistics` of the train features
            (pooled covariance on ``n - 2`` degrees of freedom; its ``rank`` kept directions are ``p``).
        n_pos, n_neg: class sizes ``n_1, n_0`` it was computed from.

    Returns:
        ``(D2, Delta2_hat)``: the plug-in ``D^2 = 4 sum mu_k^2 / lambda_k`` and the unbiased
        ``(n - p - 3) / (n - 2) D^2 - p (1/n_1 + 1/n_0)`` (may be negative; NaN when ``n <= p + 3``,
        where the plug-in has no finite mean).

    Raises:
        ValueError: a class with fewer than 2 samples.
    """
    n1, n0 = int(n_pos), int(n_neg)
    if min(n1, n0) < 2:
        raise ValueError(f"each class needs at least 2 samples; got {n1} and {n0}")
    n, p = n1 + n0, statistics.rank
    d2 = float(4.0 * np.sum(statistics.mu**2 / statistics.eigenvalues))
    if n <= p + 3:
        return d2, float("nan")
    return d2, (n - p - 3) / (n - 2) * d2 - p * (1.0 / n1 + 1.0 / n0)


def effective_scale(statistics: ClassStatistics, n_pos: int, n_neg: int) -> float:
    """``s_eff = sqrt(max(Delta2_hat, 0)) / 2`` (:func:`separation_estimate`): the raw mixture's
    mean scale the features keep (NaN when the estimate is undefined)."""
    _, delta2 = separation_estimate(statistics, n_pos, n_neg)
    return float(np.sqrt(max(delta2, 0.0)) / 2) if np.isfinite(delta2) else float("nan")


def corrected_scores(s_eff: ArrayLike, s_values: ArrayLike, thresholds: ArrayLike | None = None) -> np.ndarray:
    """The width-corrected SynBench score per threshold from effective mean scales.

    Per mean scale, the large-sample LDA of Gaussian features with separation ``2 s_eff`` has
    accuracy ``Phi(s_eff)`` and expected normalised bound ``E(Phi(s_eff))`` (0 below accuracy
    0.5); the score is the reference's ratio of areas (:func:`synbench_scores`) against the raw
    curve of ``s_values``.

    Args:
        s_eff: ``(..., S)`` effective scales (>= 0; NaN raises).
        s_values: ``(S,)`` the mixture's mean scales.
        thresholds: default 0.6, 0.65, ..., 0.99.

    Returns:
        ``(..., T)`` scores.
    """
    s_eff = np.asarray(s_eff, dtype=np.float64)
    s = np.asarray(s_values, dtype=np.float64)
    if s_eff.shape[-1:] != s.shape or not np.isfinite(s_eff).all() or (s_eff < 0).any():
        raise ValueError(f"s_eff must be finite, >= 0 and end in the {s.size} mean scales; got shape {s_eff.shape}")
    ts = check_thresholds(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
    grid = accuracy_grid(ts)
    raw_acc = raw_accuracy(s)
    raw_curve = expected_bound_curve(raw_acc, expected_bound(raw_acc), grid)
    acc = raw_accuracy(s_eff)
    bound = np.where(acc > 0.5, expected_bound(np.clip(acc, 0.5 + 1e-12, 1.0)), 0.0)
    return synbench_scores(expected_bound_curve(acc, bound, grid), raw_curve, grid, ts)


def _closed_form_test(rule_weight: np.ndarray, center: np.ndarray, scale: float, s: float) -> tuple[float, float]:
    """Expected test accuracy and bound of a linear rule on the identity encoder's mixture
    ``x = +-s e_1 + N(0, I)`` (centred: the 0.5 offset cancels in ``x - center``), balanced classes.

    For class ``+``: margin ``m ~ N(a, sigma^2)`` with ``a = (s e_1 - center) . W`` and
    ``sigma = ||W||``; correct iff ``m > 0``, with probability ``Phi(a / sigma)`` and
    ``E[m; m > 0] = a Phi(a/sigma) + sigma phi(a/sigma)``; class ``-`` by symmetry.
    """
    sigma = float(np.linalg.norm(rule_weight))
    a_pos = (s * rule_weight[0]) - float(center @ rule_weight)
    a_neg = -(-s * rule_weight[0] - float(center @ rule_weight))  # the negative class's margin, sign flipped
    probs, masses = [], []
    for a in (a_pos, a_neg):
        z = a / sigma
        probs.append(stats.norm.cdf(z))
        masses.append(a * stats.norm.cdf(z) + sigma * stats.norm.pdf(z))
    p_correct = float(np.mean(probs))
    bound = float(np.sum(masses) / np.sum(probs) / scale) if p_correct > 0 else 0.0
    return p_correct, bound


def _pooled_covariance(width: int, dof: int, rng: np.random.Generator,
                       eig_rtol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Kept eigenvalues and eigenvectors of a pooled covariance ``W / dof`` of identity-covariance
    Gaussian classes, ``W ~ Wishart(dof, I_width)`` drawn directly (Bartlett's decomposition when
    ``dof >= width``, else ``G G^T`` of a ``width x dof`` Gaussian): the sufficient statistic the
    reference's probe reads, in ``O(width^3)`` instead of ``O(n width^2)``; independent of the
    class means (Gaussian sampling theory). Relative eigenvalue cut as
    :func:`~rmqm.metrics.synbench.qcqp.class_statistics`."""
    if dof >= width:
        a = np.tril(rng.standard_normal((width, width)), -1)
        a[np.diag_indices(width)] = np.sqrt(rng.chisquare(dof - np.arange(width)))
    else:
        a = rng.standard_normal((width, dof))
    eigenvalues, vectors = np.linalg.eigh(a @ a.T / dof)
    keep = eigenvalues > eig_rtol * eigenvalues[-1]
    return eigenvalues[keep], vectors[:, keep]


def lossless_probe(width: int, n_train: int, s_values: ArrayLike | None = None, *, epsilons: Sequence[float] = (0.0,),
                   thresholds: ArrayLike | None = None, seed: int = 0) -> pd.DataFrame:
    """Reference and corrected SynBench scores of a lossless encoder of ``width`` features.

    The identity encoder on the mixture drawn in ``width`` dimensions (any invertible linear map
    gives the same rule up to the map), without drawing the samples: the probe of the reference
    reads only the class means and the pooled covariance, whose joint law is drawn directly
    (class sizes ``Binomial(n_train, 1/2)``, means ``N(+-s e_1, I / n_c)``, pooled scatter
    ``Wishart(n_train - 2, I)``, eigenvalue cut as :func:`~rmqm.metrics.synbench.qcqp.class_statistics` with
    ``allow_rank_deficient``, as the study runs wide encoders). One covariance draw serves every
    mean scale (common random numbers). The fitted rule's test accuracy and bound are in closed
    form (an infinite test set); the effective scale of :func:`effective_scale` gives the corrected
    score.

    Returns:
        one row per epsilon and threshold: ``width, n_train, epsilon, threshold, reference,
        corrected`` (``corrected`` is epsilon-free: the same on every epsilon's rows; NaN when
        ``n_train <= width + 3``).
    """
    check_int(width, "width", low=1)
    check_int(n_train, "n_train", low=8)
    s = np.asarray(DEFAULT_S_VALUES if s_values is None else s_values, dtype=np.float64)
    ts = check_thresholds(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
    grid = accuracy_grid(ts)
    raw_acc = raw_accuracy(s)
    raw_curve = expected_bound_curve(raw_acc, expected_bound(raw_acc), grid)
    rng = np.random.default_rng(seed)
    n1 = int(np.clip(rng.binomial(n_train, 0.5), 2, n_train - 2))
    n0 = n_train - n1
    eigenvalues, basis = _pooled_covariance(width, n_train - 2, rng)
    acc = np.zeros((len(epsilons), s.size))
    bnd = np.zeros_like(acc)
    s_eff = np.zeros(s.size)
    for j, scale in enumerate(s):
        m1 = rng.standard_normal(width) / np.sqrt(n1)
        m0 = rng.standard_normal(width) / np.sqrt(n0)
        m1[0] += scale
        m0[0] -= scale
        statistics = ClassStatistics(center=(m1 + m0) / 2, mu=basis.T @ (m1 - m0) / 2, eigenvalues=eigenvalues,
                                     basis=basis)
        s_eff[j] = effective_scale(statistics, n1, n0)
        for i, eps in enumerate(epsilons):
            rule = robust_linear_rule(statistics, float(eps))
            acc[i, j], bnd[i, j] = _closed_form_test(rule.weight, rule.center, rule.scale, float(scale))
    reference = synbench_scores(expected_bound_curve(acc, bnd, grid), raw_curve, grid, ts)
    corrected = corrected_scores(s_eff, s, ts) if np.isfinite(s_eff).all() else np.full(ts.size, np.nan)
    return pd.DataFrame({"width": int(width), "n_train": int(n_train), "epsilon": np.repeat(list(epsilons), ts.size),
                         "threshold": np.tile(ts, len(epsilons)), "reference": reference.ravel(),
                         "corrected": np.tile(corrected, len(epsilons))})


def width_penalty(widths: Sequence[int] = WIDTHS, sample_sizes: Sequence[int] = SAMPLE_SIZES,
                  s_values: ArrayLike | None = None, *, epsilons: Sequence[float] = (0.0,),
                  thresholds: ArrayLike | None = None, seed: int = 0) -> pd.DataFrame:
    """:func:`lossless_probe` over every width and train sample size (seeded per cell from
    ``seed``): the finite-sample penalty of the reference score and the corrected score beside it.

    Returns:
        the stacked :func:`lossless_probe` rows.
    """
    seeds = np.random.SeedSequence(seed).spawn(len(widths) * len(sample_sizes))
    rows = [lossless_probe(int(w), int(n), s_values, epsilons=epsilons, thresholds=thresholds,
                           seed=int(seeds[i * len(sample_sizes) + k].generate_state(1)[0]))
            for i, w in enumerate(widths) for k, n in enumerate(sample_sizes)]
    return pd.concat(rows, ignore_index=True)
