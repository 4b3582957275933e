"""SynBench: task-agnostic benchmarking of a representation with synthetic Gaussian data.

Ko et al., "SynBench: Task-Agnostic Benchmarking of Pretrained Representations using
Synthetic Data" (arXiv 2210.02989, 2022). For each mean scale ``s`` a binary Gaussian
mixture is drawn in the encoder's input space,

    x | y=1 ~ N(0.5 + mu, I),   x | y=0 ~ N(0.5 - mu, I),   P(y=1) = 0.5,   ||mu|| = s,

(``mu`` along the all-ones direction by default; the samples are *not* clipped to
``[0, 1]``). On the raw data the Bayes classifier ``sign(mu . (x - 0.5))`` has accuracy
``a = Phi(s)`` and the expected normalised robustness radius of its correct points is

    E(a) = 1 + phi(Phi^-1(a)) / (a Phi^-1(a))                     (closed form).

In the representation ``h = f(x)`` the class means and pooled covariance
``Sigma = F D F^T`` of the train features define the epsilon-robust Bayes classifier
``w = D^-1 (mu - z*)`` with ``z* = argmin (mu - z)^T D^-1 (mu - z)`` s.t.
``||z|| <= epsilon ||mu||`` (epsilon = 0 is LDA). This QCQP is solved exactly through
its scalar Lagrange (secular) equation (:func:`solve_robust_qcqp`), not with a general
convex solver as in the reference code. Test accuracy ``a(s)`` and mean normalised
margin ``bound(s)`` give the curve ``E(a_t) = mean_s bound(s) [a(s) > a_t]`` over
threshold accuracies ``a_t``; the SynBench score at ``t`` is the ratio of the areas
under the representation and raw curves for ``a_t >= t``.

Entry point: :func:`evaluate_synbench`. The pieces (sampling, closed form, statistics,
QCQP, curves, scores) are public functions so they can be tested and reused, e.g. by
:mod:`rmqm.robust_probe` on real features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import optimize, special, stats
from torch import nn
from tqdm.auto import tqdm

from rmqm.data import check_real
from rmqm.models import check_embeddings
from rmqm.probes import as_features

__all__ = [
    "DEFAULT_S_VALUES",
    "DEFAULT_THRESHOLDS",
    "ACCURACY_GRID",
    "ClassStatistics",
    "QCQPSolution",
    "LinearRule",
    "SynBenchResult",
    "mixture_direction",
    "sample_gaussian_mixture",
    "raw_accuracy",
    "expected_bound",
    "class_statistics",
    "solve_robust_qcqp",
    "robust_linear_rule",
    "accuracy_and_bound",
    "expected_bound_curve",
    "accuracy_grid",
    "synbench_scores",
    "evaluate_synbench",
    "plot_synbench",
    "add_synbench_arguments",
    "synbench_command",
]

#: Mean scales ``s = ||mu||`` of the reference: 0.1, 0.2, ..., 4.9.
DEFAULT_S_VALUES: np.ndarray = np.round(np.arange(1, 50) * 0.1, 10)
#: Threshold accuracies at which the reference prints the score.
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)
#: Threshold-accuracy grid ``a_t`` of the reference curves.
ACCURACY_GRID: np.ndarray = np.linspace(0.6, 1.0, 100)
#: Smallest positive robustness budget: below it ``epsilon ||mu||`` leaves double precision.
MIN_POSITIVE_EPSILON: float = 1e-150


# --------------------------------------------------------------------------- sampling
def mixture_direction(
    input_shape: Sequence[int], direction: Any = None, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Unit mean direction ``u`` of the mixture, shaped like one input ``(C, H, W)``.

    Args:
        input_shape: ``(C, H, W)`` of one encoder input.
        direction: ``None`` for the all-ones direction of the reference, or any array
            with ``prod(input_shape)`` finite entries, not all zero (normalised here).

    Returns:
        float32 tensor of shape ``input_shape`` with unit Euclidean norm.
    """
    shape = _check_input_shape(input_shape)
    size = math.prod(shape)
    if direction is None:
        u = torch.ones(shape, dtype=torch.float64)
    else:
        if isinstance(direction, torch.Tensor):
            direction = direction.detach().cpu()
        u = torch.as_tensor(np.asarray(direction, dtype=np.float64))
        if u.numel() != size:
            raise ValueError(
                f"direction must have prod(input_shape) = {size} entries (shape {shape}); "
                f"got shape {tuple(u.shape)}"
            )
        u = u.reshape(shape)
        if not torch.isfinite(u).all():
            raise ValueError("direction contains NaN or inf")
    norm = torch.linalg.vector_norm(u)
    if norm == 0:
        raise ValueError("direction must not be the zero vector")
    return (u / norm).to(device=device, dtype=torch.float32)


def sample_gaussian_mixture(
    n: int,
    s: float,
    input_shape: Sequence[int],
    *,
    direction: Any = None,
    prior: float = 0.5,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` samples of the SynBench mixture in one vectorised call.

    ``y ~ Bernoulli(prior)`` and ``x = 0.5 + (2y - 1) s u + N(0, I)``, so ``||mu|| = s``.

    Args:
        n: number of samples.
        s: mean scale ``||mu||`` (>= 0).
        input_shape: ``(C, H, W)``.
        direction: mean direction (default all-ones); normalised to unit length.
        prior: class prior ``P(y = 1)``.
        generator: a ``torch.Generator`` on ``device`` (seeds the draw).

    Returns:
        ``x`` float32 ``(n, C, H, W)`` (not clipped) and ``y`` int64 ``(n,)`` in {0, 1}.
    """
    shape = _check_input_shape(input_shape)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    if not (math.isfinite(s) and s >= 0):
        raise ValueError(f"s must be finite and >= 0; got {s}")
    if not 0 < prior < 1:
        raise ValueError(f"prior must lie in (0, 1); got {prior}")
    u = mixture_direction(shape, direction, device=device)
    y = torch.bernoulli(torch.full((int(n),), float(prior), device=device), generator=generator)
    x = torch.randn((int(n), *shape), generator=generator, device=device)
    sign = (2.0 * y - 1.0).reshape(-1, *([1] * len(shape)))
    x = x.add_(sign * (float(s) * u)).add_(0.5)
    return x, y.long()


# ----------------------------------------------------------------------- closed form
def raw_accuracy(s: Any) -> np.ndarray:
    """Bayes accuracy ``Phi(s)`` of the raw mixture with ``||mu|| = s``."""
    return stats.norm.cdf(np.asarray(s, dtype=np.float64))


def expected_bound(a: Any) -> np.ndarray:
    """Closed-form expected normalised radius of correct raw points at accuracy ``a``.

    ``E(a) = 1 + phi(q) / (a q)`` with ``q = Phi^-1(a)``: the mean of ``N(s, 1)``
    truncated to ``> 0``, divided by ``s = q`` (SynBench, Sec. 3). ``E(1) = 1``.

    Args:
        a: accuracies in ``(0.5, 1]`` (any shape).
    """
    a = np.asarray(a, dtype=np.float64)
    if not np.all((a > 0.5) & (a <= 1.0)):
        raise ValueError("expected_bound needs accuracies in (0.5, 1]")
    q = stats.norm.ppf(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = 1.0 + stats.norm.pdf(q) / (a * q)
    return np.where(np.isinf(q), 1.0, out)


# ------------------------------------------------------------------ representations
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
    pos = _check_binary_labels(positive, h.shape[0])
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
    and is found by :func:`scipy.optimize.brentq` on ``log gamma`` (relative precision
    at any feature scale).

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
    epsilon = _check_epsilon(epsilon)
    largest = float(np.abs(mu).max())
    if epsilon == 0.0 or largest == 0.0:
        weight = mu / dvals
        return QCQPSolution(np.zeros_like(mu), weight, math.inf, 0.0, float(mu @ weight))

    # Everything in log space: ||z(gamma)|| / ||mu|| can lie far below the smallest double
    # (tiny epsilon, widely spread eigenvalues) although its logarithm is harmless.
    target = math.log(epsilon)
    nonzero = mu != 0
    scaled = mu[nonzero] / largest
    log_share = np.log(np.abs(scaled)) - math.log(float(np.linalg.norm(scaled)))  # log |mu_i| / ||mu||
    log_d = np.log(dvals[nonzero])

    def secular(log_gamma: float) -> float:
        log_shrink = -np.logaddexp(0.0, log_d - log_gamma)  # log gamma / (gamma + d_i)
        return 0.5 * float(special.logsumexp(2.0 * (log_share + log_shrink))) - target

    log_ratio = target - math.log1p(-epsilon)
    lo = log_ratio + math.log(dvals.min()) - 1e-9
    hi = log_ratio + math.log(dvals.max()) + 1e-9
    f_lo, f_hi = secular(lo), secular(hi)
    if f_lo >= 0:
        log_gamma = lo
    elif f_hi <= 0:
        log_gamma = hi
    else:
        log_gamma = optimize.brentq(secular, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=200)
    gamma = math.exp(log_gamma)
    weight = mu / (dvals + gamma)  # = D^-1 (mu - z), computed without cancellation
    z = mu * gamma / (dvals + gamma)
    residual = mu - z
    multiplier = 1.0 / gamma if gamma > 0 else math.inf
    return QCQPSolution(z, weight, multiplier, gamma, float(residual @ (residual / dvals)))


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
        """``(n,)`` margins ``(h - center) . W``."""
        h = as_features(features, "features")
        if h.shape[1] != self.weight.shape[0]:
            raise ValueError(f"features have dimension {h.shape[1]}; the rule was fitted on {self.weight.shape[0]}")
        return (h - self.center) @ self.weight

    def normalized_margin(self, features: Any) -> np.ndarray:
        """``(n,)`` margins divided by ``|mu^T w|`` (+1 at the class-1 mean projection)."""
        return self.margin(features) / self.scale


def robust_linear_rule(statistics: ClassStatistics, epsilon: float) -> LinearRule:
    """The epsilon-robust Bayes classifier of :func:`solve_robust_qcqp` in feature space."""
    solution = solve_robust_qcqp(statistics.mu, statistics.eigenvalues, epsilon)
    scale = abs(float(statistics.mu @ solution.weight))
    if scale == 0:
        raise ValueError("the class means coincide in the kept feature subspace; no linear rule separates them")
    return LinearRule(statistics.basis @ solution.weight, statistics.center, scale, float(epsilon))


def _correct_and_radius(rule: LinearRule, features: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    margin = rule.margin(features)
    correct = ((margin > 0) & positive) | ((margin < 0) & ~positive)
    return correct, np.abs(margin) / rule.scale


def accuracy_and_bound(rule: LinearRule, features: Any, positive: Any) -> tuple[float, float]:
    """Test accuracy and SynBench bound of ``rule``.

    The bound is the plain mean of ``|margin| / |mu^T w|`` over all correctly
    classified points (the reference averages per-batch means over full batches of
    256; the plain mean is the estimator of the same expectation without the batching
    artefact). It is 0 when no point is correct.
    """
    h = as_features(features, "features")
    pos = _check_binary_labels(positive, h.shape[0])
    correct, radius = _correct_and_radius(rule, h, pos)
    n_correct = int(correct.sum())
    bound = float(radius[correct].mean()) if n_correct else 0.0
    return n_correct / h.shape[0], bound


# ---------------------------------------------------------------------- curves, score
def accuracy_grid(thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> np.ndarray:
    """The reference grid ``linspace(0.6, 1, 100)`` of ``a_t``, extended downwards with
    the same spacing when a threshold lies below 0.6 (scores at ``t >= 0.6`` unchanged).

    Args:
        thresholds: non-empty threshold accuracies in ``(0.5, 1)``.
    """
    t_min = float(_check_thresholds(thresholds).min())
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


def synbench_scores(rep_curve: Any, raw_curve: Any, grid: Any, thresholds: Sequence[float]) -> np.ndarray:
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
    ts = _check_thresholds(thresholds)
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


# ------------------------------------------------------------------------- results
@dataclass(frozen=True)
class SynBenchResult:
    """What :func:`evaluate_synbench` measured.

    Attributes:
        table: one row per mean scale and epsilon: ``s, epsilon, accuracy, bound``
            (test accuracy of the epsilon-robust linear classifier on the features and
            the mean normalised margin of its correct points).
        scores: one row per threshold and epsilon: ``threshold, epsilon, score,
            ci_low, ci_high`` (percentile bootstrap interval over test samples; NaN
            without bootstrap).
        raw: closed-form raw-data reference per mean scale: ``s, accuracy, bound``.
        curves: ``accuracy_threshold, source, epsilon, expected_bound`` with
            ``source`` ``"raw"`` (epsilon NaN) or ``"epsilon=<eps>"``.
        feature_dim: dimension ``d`` of the encoder output.
        config: the parameters of the run (enough to repeat it).
    """

    table: pd.DataFrame
    scores: pd.DataFrame
    raw: pd.DataFrame
    curves: pd.DataFrame
    feature_dim: int
    config: dict[str, Any] = field(default_factory=dict)

    def score(self, threshold: float = 0.6, epsilon: float = 0.0) -> float:
        """The score at one ``threshold`` and ``epsilon`` (both as evaluated)."""
        rows = self.scores[np.isclose(self.scores["threshold"], threshold) & np.isclose(self.scores["epsilon"], epsilon)]
        if rows.empty:
            raise ValueError(
                f"no score at threshold={threshold}, epsilon={epsilon}; evaluated thresholds "
                f"{sorted(self.scores['threshold'].unique().tolist())} and epsilons "
                f"{sorted(self.scores['epsilon'].unique().tolist())}"
            )
        return float(rows["score"].iloc[0])


def evaluate_synbench(
    encoder: nn.Module,
    input_shape: tuple[int, int, int],
    *,
    s_values: Sequence[float] | None = None,
    epsilons: Sequence[float] = (0.0,),
    n_train: int = 2048,
    n_test: int = 2048,
    thresholds: Sequence[float] | None = None,
    direction: Any = None,
    batch_size: int = 256,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    eig_rtol: float = 1e-6,
    allow_rank_deficient: bool = False,
) -> SynBenchResult:
    """SynBench score of ``encoder`` (Ko et al. 2022).

    For each mean scale ``s``: draw ``n_train`` + ``n_test`` samples of the mixture
    (:func:`sample_gaussian_mixture`, in batches of ``batch_size`` so memory stays
    bounded), embed them, fit the epsilon-robust linear Bayes classifier on the train
    features (:func:`class_statistics`, :func:`robust_linear_rule`) and measure test
    accuracy and bound (:func:`accuracy_and_bound`). **Bound averaging:** the plain
    mean of ``|margin| / |mu^T w|`` over all correct test points (not the reference's
    mean of per-batch means). The score per threshold is :func:`synbench_scores`
    against the closed-form raw curve. Its confidence interval (our extension) is the
    percentile bootstrap over test samples, resampled independently per ``s`` with the
    fitted classifiers held fixed (train-set noise is not included).

    Args:
        encoder: maps images ``(B, C, H, W)`` to ``(B, d)``. It gets the raw mixture
            samples (centred at 0.5, not clipped); an :class:`rmqm.models.Encoder`
            applies its own input normalisation. Moved to ``device`` and run in eval
            mode (its training mode is restored afterwards).
        input_shape: ``(C, H, W)`` of one input.
        s_values: mean scales ``||mu||`` (default 0.1, 0.2, ..., 4.9).
        epsilons: robustness budgets in ``[0, 1)`` (0 = LDA; the reference uses 0 and 0.2).
        n_train, n_test: samples per ``s`` (labels are Bernoulli(0.5) draws).
        thresholds: threshold accuracies in ``(0.5, 1)`` (default 0.6, 0.65, ..., 0.95, 0.99).
        direction: mean direction (default all-ones), any array of ``C*H*W`` entries.
        batch_size: samples per encoder call.
        n_bootstrap: bootstrap replicates for the interval (0 disables it).
        confidence: level of the interval.
        seed: seeds the samples (``torch.Generator``) and the bootstrap.
        device: ``"cpu"`` or ``"cuda"``.
        progress: show a tqdm bar over ``s``.
        eig_rtol: relative eigenvalue cut of the pooled covariance.
        allow_rank_deficient: allow ``n_train < d + 2`` (the eigenvalue cut then keeps
            at most ``n_train - 2`` directions).

    Raises:
        TypeError: ``encoder`` is not a module or returns a non-tensor.
        ValueError: bad shapes or parameters, encoder output not ``(batch, dim)`` or
            NaN/inf, too few train samples for the feature dimension.
    """
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"encoder must be a torch.nn.Module; got {type(encoder).__name__}")
    shape = _check_input_shape(input_shape)
    s_arr = _check_s_values(DEFAULT_S_VALUES if s_values is None else s_values)
    eps_list = _check_epsilons(epsilons)
    ts = _check_thresholds(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
    for name, value, low in (("n_train", n_train, 4), ("n_test", n_test, 1), ("batch_size", batch_size, 1),
                             ("n_bootstrap", n_bootstrap, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    check_real(confidence, "confidence", low=0.0, high=1.0, low_open=True, high_open=True)
    device = torch.device(device)
    u = mixture_direction(shape, direction, device=device)

    grid = accuracy_grid(ts)
    raw_acc = raw_accuracy(s_arr)
    raw_bnd = expected_bound(raw_acc)
    raw_curve = expected_bound_curve(raw_acc, raw_bnd, grid)
    synbench_scores(raw_curve, raw_curve, grid, ts)  # fails early if a threshold has no raw area

    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    n_eps = len(eps_list)
    accuracy = np.zeros((n_eps, s_arr.size))
    bound = np.zeros((n_eps, s_arr.size))
    correct = np.zeros((n_eps, s_arr.size, n_test), dtype=bool)
    radius = np.zeros((n_eps, s_arr.size, n_test))
    feature_dim = -1

    was_training = encoder.training
    encoder.to(device).eval()
    try:
        with torch.inference_mode():
            for j, s in enumerate(tqdm(s_arr, desc="SynBench", unit="s", disable=not progress)):
                h_train, y_train = _embed_mixture(encoder, n_train, float(s), shape, u, generator, batch_size, device)
                feature_dim = h_train.shape[1]
                statistics = class_statistics(h_train, y_train == 1, eig_rtol=eig_rtol,
                                              allow_rank_deficient=allow_rank_deficient)
                h_test, y_test = _embed_mixture(encoder, n_test, float(s), shape, u, generator, batch_size, device)
                for i, eps in enumerate(eps_list):
                    rule = robust_linear_rule(statistics, eps)
                    correct[i, j], radius[i, j] = _correct_and_radius(rule, h_test, y_test == 1)
                    accuracy[i, j] = correct[i, j].mean()
                    n_correct = correct[i, j].sum()
                    bound[i, j] = radius[i, j][correct[i, j]].mean() if n_correct else 0.0
    finally:
        encoder.train(was_training)

    rep_curves = expected_bound_curve(accuracy, bound, grid)  # (E, G)
    scores = synbench_scores(rep_curves, raw_curve, grid, ts)  # (E, T)
    ci_low = np.full_like(scores, np.nan)
    ci_high = np.full_like(scores, np.nan)
    if n_bootstrap > 0:
        boot = _bootstrap_scores(correct, radius, raw_curve, grid, ts, n_bootstrap, seed)  # (B, E, T)
        alpha = (1 - confidence) / 2
        ci_low, ci_high = np.quantile(boot, [alpha, 1 - alpha], axis=0)

    table = pd.DataFrame({
        "s": np.tile(s_arr, n_eps),
        "epsilon": np.repeat(eps_list, s_arr.size),
        "accuracy": accuracy.ravel(),
        "bound": bound.ravel(),
    })
    score_table = pd.DataFrame({
        "threshold": np.tile(ts, n_eps),
        "epsilon": np.repeat(eps_list, ts.size),
        "score": scores.ravel(),
        "ci_low": ci_low.ravel(),
        "ci_high": ci_high.ravel(),
    })
    raw = pd.DataFrame({"s": s_arr, "accuracy": raw_acc, "bound": raw_bnd})
    curves = pd.concat(
        [pd.DataFrame({"accuracy_threshold": grid, "source": "raw", "epsilon": np.nan, "expected_bound": raw_curve})]
        + [pd.DataFrame({"accuracy_threshold": grid, "source": f"epsilon={eps:g}", "epsilon": eps,
                         "expected_bound": rep_curves[i]}) for i, eps in enumerate(eps_list)],
        ignore_index=True,
    )
    config = dict(
        encoder=getattr(encoder, "name", type(encoder).__name__), input_shape=shape, s_values=s_arr.tolist(),
        epsilons=eps_list, n_train=int(n_train), n_test=int(n_test), thresholds=ts.tolist(),
        direction="all-ones" if direction is None else "custom", batch_size=int(batch_size),
        n_bootstrap=int(n_bootstrap), confidence=float(confidence), seed=int(seed), device=str(device),
        eig_rtol=float(eig_rtol), bound_average="plain mean over correct test points",
    )
    return SynBenchResult(table, score_table, raw, curves, int(feature_dim), config)


def plot_synbench(result: SynBenchResult, ax: Any = None, title: str | None = None) -> Any:
    """Expected bound against threshold accuracy: raw reference vs each epsilon.

    Returns:
        the matplotlib ``Axes`` drawn on (a new figure when ``ax`` is ``None``).
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    if not isinstance(result, SynBenchResult):
        raise TypeError(f"plot_synbench needs a SynBenchResult; got {type(result).__name__}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4))
    data = result.curves.assign(
        source=lambda df: np.where(df["source"] == "raw", "raw data (closed form)",
                                   "representation, " + df["source"].str.replace("epsilon", "ε"))
    )
    sns.lineplot(data=data, x="accuracy_threshold", y="expected_bound", hue="source", style="source", ax=ax)
    ax.set_xlabel("threshold accuracy $a_t$")
    ax.set_ylabel(r"expected bound $E(a_t)$")
    ax.set_ylim(bottom=0)
    ax.grid(True, linestyle="-.", alpha=0.5)
    ax.legend(title=None, fontsize="small")
    if title is None:
        title = f"SynBench: {result.config.get('encoder', 'encoder')}"
    ax.set_title(title)
    return ax


# ------------------------------------------------------------------------------ CLI
def add_synbench_arguments(parser: Any) -> Any:
    """Add the ``synbench`` options to an ``argparse`` parser (used by ``rmqm synbench``).

    The encoder options are those of ``rmqm rmqm`` (the cached default encoder or a zoo
    checkpoint); the rest are :func:`evaluate_synbench`'s.
    """
    from rmqm.cli import _add_encoder_options

    _add_encoder_options(parser)
    g = parser.add_argument_group("SynBench")
    g.add_argument("--s-values", type=float, nargs="+", default=None,
                   help="mean scales ||mu|| (default 0.1 ... 4.9, step 0.1)")
    g.add_argument("--epsilons", type=float, nargs="+", default=[0.0, 0.2],
                   help="robustness budgets in [0, 1) (default: %(default)s, as the reference)")
    g.add_argument("--n-train", type=int, default=2048, help="train samples per s (default: %(default)s)")
    g.add_argument("--n-test", type=int, default=2048, help="test samples per s (default: %(default)s)")
    g.add_argument("--thresholds", type=float, nargs="+", default=None,
                   help="threshold accuracies in (0.5, 1) (default 0.6, 0.65, ..., 0.95, 0.99)")
    g.add_argument("--n-bootstrap", type=int, default=200, help="bootstrap replicates (0: no interval)")
    g.add_argument("--batch-size", type=int, default=128,
                   help="samples per encoder call (default: %(default)s; larger CPU batches of the 28x28 CNN "
                        "spend ~25%% more time in page faults)")
    g.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads for this run; 0 keeps torch's choice (default: %(default)s: on a "
                        "shared 2-core machine more threads oversubscribe and run 2-3x slower)")
    g.add_argument("--out", default=None, help="save the score table (.csv or .parquet)")
    g.add_argument("--figure", default=None, help="save the expected-bound figure (.png, .pdf, .svg)")
    parser.set_defaults(func=synbench_command)
    return parser


def synbench_command(args: Any) -> pd.DataFrame:
    """``rmqm synbench``: print (and optionally save) the SynBench scores of an encoder."""
    import time

    from rmqm.cli import _save_table, load_encoder, resolve_device
    from rmqm.data import load_dataset

    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0 (0: torch's choice); got {args.threads}")
    start = time.perf_counter()
    model = load_encoder(args)
    device = resolve_device(args.device)
    input_shape = load_dataset(model.config.get("data", args.data), split="test", n=2, seed=args.seed).input_shape
    threads = torch.get_num_threads()
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        result = evaluate_synbench(
            model.encoder, input_shape, s_values=args.s_values, epsilons=args.epsilons, n_train=args.n_train,
            n_test=args.n_test, thresholds=args.thresholds, batch_size=args.batch_size,
            n_bootstrap=args.n_bootstrap, seed=args.seed, device=device, progress=not args.no_progress,
        )
    finally:
        torch.set_num_threads(threads)
    n_s = len(result.config["s_values"])
    print(f"\nSynBench of {model.name} (input {tuple(input_shape)}, d={result.feature_dim}; {n_s} values of s "
          f"x {args.n_train}+{args.n_test} samples; {time.perf_counter() - start:.1f} s, device {device})")
    with pd.option_context("display.width", 160, "display.float_format", "{:.4f}".format):
        print(result.scores.to_string(index=False))
    if args.out:
        _save_table(result.scores.assign(model=model.name), Path(args.out))
    if args.figure:
        import matplotlib.pyplot as plt

        ax = plot_synbench(result, title=f"SynBench: {model.name}")
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        ax.figure.savefig(args.figure, bbox_inches="tight", dpi=150)
        plt.close(ax.figure)
        print(f"saved {args.figure}")
    return result.scores


# ----------------------------------------------------------------------- internals
def _embed_mixture(
    encoder: nn.Module, n: int, s: float, shape: tuple[int, ...], u: torch.Tensor,
    generator: torch.Generator, batch_size: int, device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``n`` mixture points in batches and embed them: ``(n, d)`` float64, ``(n,)`` labels."""
    features, labels = [], []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        x, y = sample_gaussian_mixture(b, s, shape, direction=u, generator=generator, device=device)
        z = check_embeddings(encoder(x), b, where="encoder")
        if features and z.shape[1] != features[0].shape[1]:
            raise ValueError(f"encoder output dimension changed between batches: {features[0].shape[1]} then {z.shape[1]}")
        features.append(z.detach().to("cpu", torch.float64).numpy())
        labels.append(y.cpu().numpy())
    return np.concatenate(features), np.concatenate(labels)


def _bootstrap_scores(
    correct: np.ndarray, radius: np.ndarray, raw_curve: np.ndarray, grid: np.ndarray,
    thresholds: np.ndarray, n_bootstrap: int, seed: int,
) -> np.ndarray:
    """``(B, E, T)`` scores with test points resampled independently per ``s``."""
    rng = np.random.default_rng([int(seed), 4])
    n_eps, n_s, n_test = correct.shape
    acc = np.empty((n_bootstrap, n_eps, n_s))
    bnd = np.empty((n_bootstrap, n_eps, n_s))
    hit_radius = radius * correct
    for j in range(n_s):
        idx = rng.integers(0, n_test, size=(n_bootstrap, n_test))
        n_correct = correct[:, j][:, idx].sum(axis=-1)  # (E, B)
        total = hit_radius[:, j][:, idx].sum(axis=-1)
        acc[:, :, j] = (n_correct / n_test).T
        with np.errstate(invalid="ignore", divide="ignore"):
            bnd[:, :, j] = np.where(n_correct > 0, total / np.maximum(n_correct, 1), 0.0).T
    return synbench_scores(expected_bound_curve(acc, bnd, grid), raw_curve, grid, thresholds)


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be a tuple (C, H, W); got {input_shape!r}") from None
    if len(shape) != 3 or min(shape) < 1 or any(int(v) != v for v in input_shape):
        raise ValueError(f"input_shape must be (C, H, W) with positive integers; got {tuple(input_shape)}")
    return shape


def _check_binary_labels(positive: Any, n: int) -> np.ndarray:
    if isinstance(positive, torch.Tensor):
        positive = positive.detach().cpu().numpy()
    pos = np.asarray(positive)
    if pos.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the features; got {pos.shape}")
    if pos.dtype != bool:
        if not np.isin(pos, (0, 1)).all():
            raise ValueError("binary labels must be booleans or 0/1")
        pos = pos.astype(bool)
    return pos


def _check_epsilon(epsilon: float) -> float:
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


def _check_epsilons(epsilons: Sequence[float]) -> list[float]:
    if np.isscalar(epsilons):
        epsilons = [epsilons]  # type: ignore[list-item]
    eps_list = [_check_epsilon(e) for e in epsilons]
    if not eps_list:
        raise ValueError("epsilons must not be empty")
    if len(set(eps_list)) != len(eps_list):
        raise ValueError(f"epsilons must be distinct; got {eps_list}")
    return eps_list


def _check_thresholds(thresholds: Sequence[float]) -> np.ndarray:
    ts = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError("thresholds must be a non-empty 1-D sequence")
    if not np.all((ts > 0.5) & (ts < 1.0)):
        raise ValueError(f"thresholds must lie in (0.5, 1); got {ts.tolist()}")
    return ts


def _check_s_values(s_values: Sequence[float]) -> np.ndarray:
    s = np.atleast_1d(np.asarray(s_values, dtype=np.float64))
    if s.ndim != 1 or s.size == 0:
        raise ValueError("s_values must be a non-empty 1-D sequence")
    if not (np.isfinite(s).all() and (s > 0).all()):
        raise ValueError(f"s_values must be finite and > 0; got {s.tolist()}")
    return s
