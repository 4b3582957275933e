"""The epsilon-robust linear probe: LDA equivalence, exact certified radii, one-vs-rest."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from rmqm.metrics.robust_probe import RobustLinearProbe, evaluate_robust_probe


def gaussian_classes(n_per_class, means, seed=0, scales=(1.0, 0.3, 3.0, 1.0)):
    """Classes with shared anisotropic covariance: diag(scales)^2 in a rotated basis."""
    rng = np.random.default_rng(seed)
    means = np.asarray(means, dtype=float)
    d = means.shape[1]
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    noise = rng.normal(size=(n_per_class * len(means), d)) * np.asarray(scales[:d]) @ rotation.T
    labels = np.repeat(np.arange(len(means)), n_per_class)
    return means[labels] + noise, labels


def test_epsilon_zero_is_lda():
    X, y = gaussian_classes(300, [[0, 0, 0, 0], [1.5, -1.0, 0.5, 0.0]])
    probe = RobustLinearProbe().fit(X, y)
    lda = LinearDiscriminantAnalysis(solver="lsqr").fit(X, y)
    direction = probe.coef_[0] / np.linalg.norm(probe.coef_[0])
    reference = lda.coef_[0] / np.linalg.norm(lda.coef_[0])
    assert direction @ reference == pytest.approx(1.0, abs=1e-10)
    # decision is the margin normalised by |mu^T w|: +1 / -1 at the class mean projections
    means = np.stack([X[y == c].mean(0) for c in (0, 1)])
    np.testing.assert_allclose(probe.decision_function(means), [-1.0, 1.0], atol=1e-10)
    assert probe.score(X, y) > 0.85


def test_binary_certified_radius_is_the_distance_to_the_hyperplane():
    X, y = gaussian_classes(200, [[0, 0, 0], [2.0, 1.0, -1.0]], seed=1)
    probe = RobustLinearProbe(epsilon=0.3).fit(X, y)
    radius = probe.certified_radius(X)
    f = probe.decision_function(X)
    step = -np.sign(f)[:, None] * probe.coef_[0] / np.linalg.norm(probe.coef_[0])
    assert np.all(np.sign(probe.decision_function(X + 0.999 * radius[:, None] * step)) == np.sign(f))
    assert np.all(np.sign(probe.decision_function(X + 1.001 * radius[:, None] * step)) == -np.sign(f))


def test_multiclass_certified_radius_is_exact():
    rng = np.random.default_rng(2)
    X, y = gaussian_classes(150, [[0, 0, 0], [4, 0, 0], [0, 4, 0], [0, 0, 4]], seed=2, scales=(1.0, 0.5, 1.5))
    probe = RobustLinearProbe(epsilon=0.2).fit(X, y)
    assert probe.coef_.shape == (4, 3) and probe.score(X, y) > 0.9
    pred = probe.predict(X)
    radius = probe.certified_radius(X)
    scores = probe.decision_function(X)
    # no perturbation inside the radius changes the prediction (random directions)...
    for _ in range(20):
        v = rng.normal(size=X.shape)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        assert np.all(probe.predict(X + 0.999 * radius[:, None] * v) == pred)
    # ...and the worst direction just past it does
    gaps = scores[np.arange(len(X)), pred][:, None] - scores
    diffs = probe.coef_[pred][:, None, :] - probe.coef_[None, :, :]
    dist = np.where(gaps > 0, gaps / np.maximum(np.linalg.norm(diffs, axis=-1), 1e-300), np.inf)
    j = np.argmin(dist, axis=1)
    worst = -diffs[np.arange(len(X)), j]
    worst /= np.linalg.norm(worst, axis=1, keepdims=True)
    assert np.all(probe.predict(X + 1.001 * radius[:, None] * worst) != pred)
    correct = pred == y
    assert probe.mean_certified_margin(X, y) == pytest.approx(radius[correct].mean())


def test_scale_and_label_handling():
    X, y = gaussian_classes(120, [[0, 0], [1, 2], [3, -1]], seed=3, scales=(1.0, 0.5))
    names = np.array(["cat", "dog", "emu"])[y]
    probe = RobustLinearProbe(epsilon=0.1).fit(X, names)
    big = RobustLinearProbe(epsilon=0.1).fit(4 * X, names)
    assert list(probe.classes_) == ["cat", "dog", "emu"]
    assert np.array_equal(probe.predict(X), big.predict(4 * X))
    np.testing.assert_allclose(big.certified_radius(4 * X), 4 * probe.certified_radius(X), rtol=1e-8)
    assert clone(probe).get_params() == {"epsilon": 0.1, "eig_rtol": 1e-6, "allow_rank_deficient": False}


def test_robustness_budget_trades_accuracy_for_alignment_with_the_mean_gap():
    X, y = gaussian_classes(400, [[0, 0, 0, 0], [1.0, 1.0, 1.0, 1.0]], seed=4, scales=(1.0, 0.1, 3.0, 1.0))
    table = evaluate_robust_probe(X[::2], y[::2], X[1::2], y[1::2], epsilons=(0.0, 0.3, 0.8))
    assert list(table.columns) == ["epsilon", "accuracy", "mean_certified_margin"]
    assert list(table["epsilon"]) == [0.0, 0.3, 0.8]
    assert table["accuracy"].iloc[0] >= table["accuracy"].iloc[-1]
    gap = X[y == 1].mean(0) - X[y == 0].mean(0)
    cosines = [abs(RobustLinearProbe(epsilon=e).fit(X, y).coef_[0] @ gap) /
               np.linalg.norm(RobustLinearProbe(epsilon=e).fit(X, y).coef_[0]) for e in (0.0, 0.3, 0.8)]
    assert np.all(np.diff(cosines) > 0)


def test_bad_input_raises_clear_errors():
    X, y = gaussian_classes(30, [[0, 0, 0], [1, 1, 1]])
    with pytest.raises(ValueError, match="not fitted"):
        RobustLinearProbe().predict(X)
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        RobustLinearProbe(epsilon=-0.5).fit(X, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        RobustLinearProbe().fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="NaN or inf"):
        RobustLinearProbe().fit(np.where(X > 1, np.nan, X), y)
    with pytest.raises(ValueError, match=r"labels must have shape \(60,\)"):
        RobustLinearProbe().fit(X, y[:-1])
    with pytest.raises(ValueError, match=r"need at least d \+ 2 = 12"):
        RobustLinearProbe().fit(np.random.default_rng(0).normal(size=(10, 10)), np.arange(10) % 2)
    probe = RobustLinearProbe().fit(X, y)
    with pytest.raises(ValueError, match="fitted on 3"):
        probe.predict(X[:, :2])
