"""Epsilon-robust linear probing of real features (SynBench's robust LDA as a classifier)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from rmqm._utils.validation import as_features, check_labels
from rmqm.metrics.synbench.qcqp import (
    LinearRule,
    check_epsilon,
    check_epsilons,
    class_statistics,
    robust_linear_rule,
)

__all__ = ['RobustLinearProbe', 'evaluate_robust_probe']


class RobustLinearProbe(ClassifierMixin, BaseEstimator):
    """Epsilon-robust LDA probe, binary or one-vs-rest.

    Each binary problem (class ``c`` against the rest; for two classes, ``classes_[1]``
    against ``classes_[0]``) uses the midpoint of the two group means, their pooled
    covariance with the relative eigenvalue cut, and the robust weight of
    :func:`rmqm.metrics.synbench.qcqp.robust_linear_rule`. Decision values are margins normalised by
    ``|mu^T w|`` (+1 at the group mean, -1 at the rest mean), so the one-vs-rest
    argmax compares rules on a common scale.

    Args:
        epsilon: robustness budget relative to ``||mu||``, in ``[0, 1)`` (0 = LDA).
        eig_rtol: relative eigenvalue cut of the pooled covariance.
        allow_rank_deficient: fit with fewer than ``d + 2`` samples (the eigenvalue
            cut then keeps at most ``n - 2`` directions); otherwise that raises.

    Attributes (after :meth:`fit`):
        classes_: ``(K,)`` sorted class labels.
        coef_: ``(1, d)`` for two classes, else ``(K, d)``.
        intercept_: ``(1,)`` or ``(K,)``; ``decision_function = X @ coef_.T + intercept_``.
        rules_: the fitted :class:`rmqm.metrics.synbench.qcqp.LinearRule` per binary problem.
        n_features_in_: ``d``.
    """

    def __init__(self, epsilon: float = 0.0, eig_rtol: float = 1e-6, allow_rank_deficient: bool = False) -> None:
        self.epsilon = epsilon
        self.eig_rtol = eig_rtol
        self.allow_rank_deficient = allow_rank_deficient

    def fit(self, X: Any, y: Any) -> RobustLinearProbe:
        """Fit on features ``X`` ``(n, d)`` and labels ``y`` ``(n,)`` (any hashable labels).

        Raises:
            ValueError: bad features, labels or ``epsilon``; fewer than 2 classes or 2 samples
                per class; too few samples for the dimension.
        """
        epsilon = check_epsilon(self.epsilon)
        h = as_features(X, "features")
        labels = check_labels(y, h.shape[0])
        classes = np.unique(labels)
        if classes.size < 2:
            raise ValueError(f"need at least 2 classes to fit a probe; got {classes.tolist()}")
        groups = [labels == classes[1]] if classes.size == 2 else [labels == c for c in classes]
        rules: list[LinearRule] = []
        for positive in groups:
            statistics = class_statistics(h, positive, eig_rtol=self.eig_rtol,
                                          allow_rank_deficient=self.allow_rank_deficient)
            rules.append(robust_linear_rule(statistics, epsilon))
        self.classes_ = classes
        self.rules_ = rules
        self.coef_ = np.stack([rule.weight / rule.scale for rule in rules])
        self.intercept_ = np.array([-(rule.center @ rule.weight) / rule.scale for rule in rules])
        self.n_features_in_ = h.shape[1]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Normalised margins: ``(n,)`` for two classes (> 0 means ``classes_[1]``), else ``(n, K)``."""
        h = self._features(X)
        scores = h @ self.coef_.T + self.intercept_
        return scores[:, 0] if self.classes_.size == 2 else scores

    def predict(self, X: Any) -> np.ndarray:
        """``(n,)`` predicted labels (``classes_[0]`` on an exact binary tie)."""
        scores = self.decision_function(X)
        if self.classes_.size == 2:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy on features ``X`` ``(n, d)`` and labels ``y`` ``(n,)`` (checked first)."""
        h = self._features(X)
        check_labels(y, h.shape[0])
        return super().score(h, y, sample_weight=sample_weight)

    def certified_radius(self, X: Any) -> np.ndarray:
        """``(n,)`` Euclidean distance from each point to the nearest change of prediction.

        With affine scores ``f_k(h) = a_k . h + b_k`` and prediction ``c = argmax f``,
        the radius is ``min_{j != c} (f_c - f_j)(h) / ||a_c - a_j||`` (exact; for two
        classes ``|f(h)| / ||a||``). Feature units.
        """
        h = self._features(X)
        scores = h @ self.coef_.T + self.intercept_
        if self.classes_.size == 2:
            return np.abs(scores[:, 0]) / np.linalg.norm(self.coef_[0])
        top = np.argmax(scores, axis=1)
        gaps = scores[np.arange(h.shape[0]), top][:, None] - scores  # (n, K) >= 0
        differences = np.linalg.norm(self.coef_[:, None, :] - self.coef_[None, :, :], axis=-1)  # (K, K)
        norms = differences[top]  # (n, K)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(norms > 0, gaps / norms, np.inf)
        ratio[np.arange(h.shape[0]), top] = np.inf
        return ratio.min(axis=1)

    def mean_certified_margin(self, X: Any, y: Any) -> float:
        """Mean :meth:`certified_radius` over the correctly classified points (NaN if none)."""
        h = self._features(X)
        labels = check_labels(y, h.shape[0])
        correct = self.predict(h) == labels
        if not correct.any():
            return float("nan")
        return float(self.certified_radius(h)[correct].mean())

    def _features(self, X: Any) -> np.ndarray:
        """``X`` as float64 ``(n, d)`` features of the fitted dimension (raises if unfitted)."""
        if not hasattr(self, "coef_"):
            raise ValueError("this RobustLinearProbe is not fitted yet; call fit(features, labels) first")
        h = as_features(X, "features")
        if h.shape[1] != self.n_features_in_:
            raise ValueError(f"features have dimension {h.shape[1]}; the probe was fitted on {self.n_features_in_}")
        return h


def evaluate_robust_probe(
    train_features: Any,
    train_labels: Any,
    test_features: Any,
    test_labels: Any,
    epsilons: Sequence[float] = (0.0, 0.2),
    **probe_options: Any,
) -> pd.DataFrame:
    """Fit one :class:`RobustLinearProbe` per epsilon; return a tidy table.

    Args:
        train_features, test_features: ``(n, d)`` and ``(m, d)`` features.
        train_labels, test_labels: ``(n,)`` and ``(m,)`` labels.
        epsilons: SynBench robustness budgets in ``[0, 1)``, relative to the class means.
        probe_options: further :class:`RobustLinearProbe` arguments.

    Returns:
        one row per epsilon: ``epsilon, accuracy, mean_certified_margin`` (test set).

    Raises:
        ValueError: bad features, labels or budgets.
    """
    test_h = as_features(test_features, "test features")
    check_labels(test_labels, test_h.shape[0])  # fail before fitting, with a named error
    rows = []
    for eps in check_epsilons(epsilons):
        probe = RobustLinearProbe(epsilon=eps, **probe_options).fit(train_features, train_labels)
        rows.append({
            "epsilon": eps,
            "accuracy": probe.score(test_features, test_labels),
            "mean_certified_margin": probe.mean_certified_margin(test_features, test_labels),
        })
    return pd.DataFrame(rows)

