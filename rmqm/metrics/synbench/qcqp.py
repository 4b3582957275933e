"""The epsilon-robust Bayes linear rule: class statistics and the exact secular QCQP solution."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special

from rmqm._utils.validation import as_features, check_labels

__all__ = [
    'MIN_POSITIVE_EPSILON', 'NEWTON_MIN_EPSILON',
    'ClassStatistics', 'class_statistics', 'QCQPSolution', 'solve_robust_qcqp', 'LinearRule',
    'robust_linear_rule', 'correct_and_radius', 'accuracy_and_bound', 'check_binary_labels', 'check_epsilon',
    'check_epsilons',
]


#: Smallest positive robustness budget: below it ``epsilon ||mu||`` leaves double precision.
MIN_POSITIVE_EPSILON: float = 1e-150


@dataclass(frozen=True)
class ClassStatistics:
    """Two-class statistics of features in the eigenbasis of their pooled covariance.

    Attributes:
        center: ``(d,)`` midpoint ``(mu_1 + mu_0) / 2`` of the class means.
        mu: ``(k,)`` half mean difference ``F^T (mu_1 - mu_0) / 2`` in the kept basis.
        eigenvalues: ``(k,)`` kept eigenvalues ``D`` of the pooled covariance (> 0).
        basis: ``(d, k)`` orthonormal eigenvectors ``F`` (columns) of the kept eigenvalues.
    """

    center: np.ndarray
    mu: np.ndarray
    eigenvalues: np.ndarray
    basis: np.ndarray

    @property
    def rank(self) -> int:
        """Number of eigen-directions kept by the eigenvalue cut."""
        return int(self.eigenvalues.shape[0])


def class_statistics(
    features: Any,
    positive: Any,
    *,
    eig_rtol: float = 1e-6,
    allow_rank_deficient: bool = False,
) -> ClassStatistics:
    """Class means and pooled covariance of two classes, with the eigenvalue cut.

    The pooled covariance is the unbiased one of the reference,
    ``Sigma = (S_1 + S_0) / (n - 2)`` with ``S_c`` the class scatter matrices.
    Eigen-directions whose eigenvalue is ``<= eig_rtol * max eigenvalue`` are dropped.
    The reference cuts at an absolute ``1e-6``; the relative cut makes the classifier
    invariant to the scale of the features.

    Args:
        features: ``(n, d)`` finite features.
        positive: ``(n,)`` booleans (or 0/1), ``True`` for class ``y = 1``.
        eig_rtol: relative eigenvalue cut.
        allow_rank_deficient: accept ``n < d + 2`` (covariance necessarily singular,
            only the eigenvalue cut keeps the classifier defined); otherwise raise.

    Raises:
        ValueError: wrong shapes, NaN/inf, a class with fewer than 2 samples, too few
            samples for the dimension, or features with zero variance.
    """
    h = as_features(features, "features")
    pos = check_binary_labels(positive, h.shape[0])
    n, d = h.shape
    n_pos = int(pos.sum())
    if min(n_pos, n - n_pos) < 2:
        raise ValueError(
            f"each class needs at least 2 samples to estimate the covariance; got "
            f"{n_pos} positive and {n - n_pos} negative"
        )
    if n < d + 2 and not allow_rank_deficient:
        raise ValueError(
            f"{n} samples give a singular pooled covariance for feature dimension d={d}: "
            f"need at least d + 2 = {d + 2} samples (more for a stable estimate), or pass "
            f"allow_rank_deficient=True to rely on the eigenvalue cut as the reference does"
        )
    if not eig_rtol >= 0:
        raise ValueError(f"eig_rtol must be >= 0; got {eig_rtol}")
    mean_pos = h[pos].mean(axis=0)
    mean_neg = h[~pos].mean(axis=0)
    centred = np.where(pos[:, None], h - mean_pos, h - mean_neg)
    sigma = centred.T @ centred / (n - 2)
    eigenvalues, vectors = np.linalg.eigh(sigma)
    top = eigenvalues[-1]
    if not top > 0:
        raise ValueError("features have zero variance: the encoder output does not depend on its input")
    keep = eigenvalues > eig_rtol * top
    basis = vectors[:, keep]
    return ClassStatistics(
        center=(mean_pos + mean_neg) / 2,
        mu=basis.T @ (mean_pos - mean_neg) / 2,
        eigenvalues=eigenvalues[keep],
        basis=basis,
    )


@dataclass(frozen=True)
class QCQPSolution:
    """Solution of ``min (mu - z)^T D^-1 (mu - z)`` s.t. ``||z|| <= epsilon ||mu||``.

    Attributes:
        z: ``(k,)`` optimal shift ``z*``.
        weight: ``(k,)`` robust classifier ``w = D^-1 (mu - z*) = (D + gamma I)^-1 mu``.
        multiplier: Lagrange multiplier ``lambda`` of ``||z||^2 <= r^2`` (``inf`` at
            epsilon = 0, where ``z* = 0`` and Slater's condition fails).
        ridge: ``gamma = 1 / lambda`` (0 at epsilon = 0): the robust classifier is
            LDA with ``gamma`` added to the covariance eigenvalues.
        objective: ``(mu - z*)^T D^-1 (mu - z*)``.
    """

    z: np.ndarray
    weight: np.ndarray
    multiplier: float
    ridge: float
    objective: float


def solve_robust_qcqp(mu: Any, eigenvalues: Any, epsilon: float) -> QCQPSolution:
    """Solve the epsilon-robust Bayes QCQP exactly for a diagonal ``D``.

    ``min_z (mu - z)^T D^-1 (mu - z)`` subject to ``||z||_2 <= epsilon ||mu||_2``.
    Stationarity ``D^-1 (z - mu) + lambda z = 0`` gives
    ``z_i = mu_i gamma / (gamma + d_i)`` with ``gamma = 1/lambda``; for
    ``0 < epsilon < 1`` the constraint is active and ``gamma`` is the unique root of the
    secular equation ``||z(gamma)|| = epsilon ||mu||`` (``||z(gamma)||`` increases from
    0 to ``||mu||``). The root lies in ``[eps d_min / (1-eps), eps d_max / (1-eps)]``
    and is found on ``log gamma`` (relative precision at any feature scale) by safeguarded
    Newton steps (:func:`scipy.optimize.brentq` in log space for budgets below
    :data:`NEWTON_MIN_EPSILON`), see ``_secular_root``.

    Args:
        mu: ``(k,)`` half mean difference.
        eigenvalues: ``(k,)`` positive diagonal of ``D``.
        epsilon: robustness budget relative to ``||mu||``: 0 or in
            ``[MIN_POSITIVE_EPSILON, 1)`` (a smaller positive budget raises).
    """
    mu = np.asarray(mu, dtype=np.float64)
    dvals = np.asarray(eigenvalues, dtype=np.float64)
    if mu.ndim != 1 or dvals.shape != mu.shape or mu.size == 0:
        raise ValueError(f"mu and eigenvalues must be 1-D of equal length; got {mu.shape} and {dvals.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(dvals).all()):
        raise ValueError("mu and eigenvalues must be finite")
    if not (dvals > 0).all():
        raise ValueError("eigenvalues must be positive (apply the eigenvalue cut first)")
    epsilon = check_epsilon(epsilon)
    largest = float(np.abs(mu).max())
    if epsilon == 0.0 or largest == 0.0:
        weight = mu / dvals
        return QCQPSolution(np.zeros_like(mu), weight, math.inf, 0.0, float(mu @ weight))

    log_gamma = _secular_root(mu, dvals, epsilon, largest)
    gamma = math.exp(log_gamma)
    weight = mu / (dvals + gamma)  # = D^-1 (mu - z), computed without cancellation
    z = mu * gamma / (dvals + gamma)
    residual = mu - z
    multiplier = 1.0 / gamma if gamma > 0 else math.inf
    return QCQPSolution(z, weight, multiplier, gamma, float(residual @ (residual / dvals)))


#: Below this budget the root is searched in log space (``||z|| / ||mu||`` may leave double range).
NEWTON_MIN_EPSILON: float = 1e-100


def _secular_root(mu: np.ndarray, dvals: np.ndarray, epsilon: float, largest: float) -> float:
    """``log gamma`` with ``||z(gamma)|| = epsilon ||mu||``, ``z_i = mu_i gamma / (gamma + d_i)``.

    ``F(t) = 0.5 log sum_i w_i r_i^2 - log epsilon`` (``t = log gamma``, ``w_i = mu_i^2 / ||mu||^2``,
    ``r_i = gamma / (gamma + d_i)``) increases in ``t`` and its root lies in
    ``[log(eps d_min / (1 - eps)), log(eps d_max / (1 - eps))]``. For ``epsilon >= NEWTON_MIN_EPSILON``
    a Newton iteration on ``F`` (``F' = sum w_i r_i^2 (1 - r_i) / sum w_i r_i^2``) safeguarded by
    bisection of that bracket converges in a handful of steps to machine precision; smaller budgets
    use Brent's method with every quantity in log space (no underflow).
    """
    target = math.log(epsilon)
    log_ratio = target - math.log1p(-epsilon)
    lo = log_ratio + math.log(dvals.min()) - 1e-9
    hi = log_ratio + math.log(dvals.max()) + 1e-9
    if epsilon >= NEWTON_MIN_EPSILON:
        scaled = mu / largest
        w = scaled * scaled
        w = w / w.sum()

        def value_and_slope(t: float) -> tuple[float, float]:
            r = 1.0 / (1.0 + dvals * math.exp(-t))  # gamma / (gamma + d_i), no overflow
            wr2 = w * r * r
            total = float(wr2.sum())
            if not total > 0:  # every share underflowed: far below the root
                return -math.inf, 1.0
            return 0.5 * math.log(total) - target, float((wr2 * (1.0 - r)).sum()) / total

        f_lo, _ = value_and_slope(lo)
        f_hi, _ = value_and_slope(hi)
        if f_lo >= 0:
            return lo
        if f_hi <= 0:
            return hi
        t = 0.5 * (lo + hi)
        for _ in range(200):
            f, slope = value_and_slope(t)
            if f == 0:
                return t
            if f < 0:
                lo = t
            else:
                hi = t
            step = f / slope if slope > 0 else math.inf
            candidate = t - step
            if not lo < candidate < hi:  # Newton left the bracket: bisect instead
                candidate = 0.5 * (lo + hi)
            tolerance = 4 * np.finfo(float).eps * max(1.0, abs(t))
            if abs(candidate - t) <= tolerance or hi - lo <= tolerance:
                return candidate
            t = candidate
        return t

    # Everything in log space: ||z(gamma)|| / ||mu|| can lie far below the smallest double
    # (tiny epsilon, widely spread eigenvalues) although its logarithm is harmless.
    nonzero = mu != 0
    scaled = mu[nonzero] / largest
    log_share = np.log(np.abs(scaled)) - math.log(float(np.linalg.norm(scaled)))  # log |mu_i| / ||mu||
    log_d = np.log(dvals[nonzero])

    def secular(log_gamma: float) -> float:
        log_shrink = -np.logaddexp(0.0, log_d - log_gamma)  # log gamma / (gamma + d_i)
        return 0.5 * float(special.logsumexp(2.0 * (log_share + log_shrink))) - target

    f_lo, f_hi = secular(lo), secular(hi)
    if f_lo >= 0:
        return lo
    if f_hi <= 0:
        return hi
    return float(optimize.brentq(secular, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=200))


@dataclass(frozen=True)
class LinearRule:
    """A linear two-class rule in feature space: predict ``y = 1`` iff margin > 0.

    Attributes:
        weight: ``(d,)`` ``W = F w``.
        center: ``(d,)`` the midpoint of the class means.
        scale: ``|mu^T w| > 0``, the normaliser of the SynBench bound.
        epsilon: the robustness budget the rule was fitted with.
    """

    weight: np.ndarray
    center: np.ndarray
    scale: float
    epsilon: float

    def margin(self, features: Any) -> np.ndarray:
        """``(n,)`` margins ``(h - center) . W`` of features ``(n, d)`` (feature units times ``|W|``).

        Raises:
            ValueError: features not a finite ``(n, d)`` array of the fitted dimension.
        """
        h = as_features(features, "features")
        if h.shape[1] != self.weight.shape[0]:
            raise ValueError(f"features have dimension {h.shape[1]}; the rule was fitted on {self.weight.shape[0]}")
        return (h - self.center) @ self.weight


def robust_linear_rule(statistics: ClassStatistics, epsilon: float) -> LinearRule:
    """The epsilon-robust Bayes classifier of :func:`solve_robust_qcqp` in feature space.

    Raises:
        ValueError: a bad ``epsilon``, or class means that coincide in the kept subspace.
    """
    solution = solve_robust_qcqp(statistics.mu, statistics.eigenvalues, epsilon)
    scale = abs(float(statistics.mu @ solution.weight))
    if scale == 0:
        raise ValueError("the class means coincide in the kept feature subspace; no linear rule separates them")
    return LinearRule(statistics.basis @ solution.weight, statistics.center, scale, float(epsilon))


def correct_and_radius(rule: LinearRule, features: Any, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which points ``rule`` classifies correctly and their normalised radius ``|margin| / |mu^T w|``.

    Args:
        features: ``(n, d)`` features.
        positive: ``(n,)`` booleans, ``True`` for class ``y = 1`` (checked by the caller).

    Returns:
        ``(correct, radius)``, both ``(n,)``: booleans and non-negative floats.
    """
    margin = rule.margin(features)
    correct = ((margin > 0) & positive) | ((margin < 0) & ~positive)
    return correct, np.abs(margin) / rule.scale


def accuracy_and_bound(rule: LinearRule, features: Any, positive: Any) -> tuple[float, float]:
    """Test accuracy and SynBench bound of ``rule``.

    The bound is the plain mean of ``|margin| / |mu^T w|`` over all correctly
    classified points (the reference averages per-batch means over full batches of
    256; the plain mean is the estimator of the same expectation without the batching
    artefact). It is 0 when no point is correct.

    Returns:
        ``(accuracy, bound)``: accuracy in ``[0, 1]``, bound ``>= 0``.

    Raises:
        ValueError: bad features or labels.
    """
    h = as_features(features, "features")
    pos = check_binary_labels(positive, h.shape[0])
    correct, radius = correct_and_radius(rule, h, pos)
    n_correct = int(correct.sum())
    bound = float(radius[correct].mean()) if n_correct else 0.0
    return n_correct / h.shape[0], bound


def check_binary_labels(positive: Any, n: int) -> np.ndarray:
    """``positive`` (booleans or 0/1, a tensor or array) as an ``(n,)`` boolean array.

    Raises:
        ValueError: shape other than ``(n,)``, or values other than booleans and 0/1.
    """
    pos = check_labels(positive, n)
    if pos.dtype != bool:
        if not np.isin(pos, (0, 1)).all():
            raise ValueError("binary labels must be booleans or 0/1")
        pos = pos.astype(bool)
    return pos


def check_epsilon(epsilon: float) -> float:
    """The SynBench robustness budget (relative to ``||mu||``) as a float: 0 or in
    ``[MIN_POSITIVE_EPSILON, 1)``.

    Raises:
        TypeError: not a number.
        ValueError: negative, NaN/inf, positive but below :data:`MIN_POSITIVE_EPSILON`, or ``>= 1``.
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.integer, np.floating)):
        raise TypeError(f"epsilon must be a number; got {type(epsilon).__name__}")
    epsilon = float(epsilon)
    if not math.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be >= 0; got {epsilon}")
    if 0 < epsilon < MIN_POSITIVE_EPSILON:
        raise ValueError(
            f"epsilon must be 0 or at least {MIN_POSITIVE_EPSILON:g}; got {epsilon:g}: a smaller budget "
            f"underflows double precision (and gives LDA to machine precision: use epsilon=0)"
        )
    if epsilon >= 1:
        raise ValueError(
            f"epsilon must be < 1; got {epsilon}: a budget of ||mu|| or more covers the class "
            f"mean and the robust classifier is zero"
        )
    return epsilon


def check_epsilons(epsilons: Sequence[float]) -> list[float]:
    """A non-empty list of distinct budgets, each checked by :func:`check_epsilon` (a scalar is one budget).

    Raises:
        TypeError, ValueError: as :func:`check_epsilon`; an empty or repeated list.
    """
    if np.isscalar(epsilons):
        epsilons = [epsilons]  # type: ignore[list-item]
    eps_list = [check_epsilon(e) for e in epsilons]
    if not eps_list:
        raise ValueError("epsilons must not be empty")
    if len(set(eps_list)) != len(eps_list):
        raise ValueError(f"epsilons must be distinct; got {eps_list}")
    return eps_list
