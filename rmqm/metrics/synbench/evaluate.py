"""evaluate_synbench: the whole SynBench protocol for one encoder."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike
from scipy import stats
from torch import nn
from tqdm import tqdm  # plain bars: tqdm.auto warns on import in a kernel without ipywidgets

from rmqm._utils.device import resolve_device
from rmqm._utils.validation import as_vector, check_confidence, check_int
from rmqm.metrics.synbench.curves import (
    DEFAULT_S_VALUES,
    DEFAULT_THRESHOLDS,
    accuracy_grid,
    check_thresholds,
    expected_bound_curve,
    synbench_scores,
)
from rmqm.metrics.synbench.mixture import (
    check_input_shape,
    expected_bound,
    mixture_direction,
    named_direction,
    raw_accuracy,
    sample_gaussian_mixture,
)
from rmqm.metrics.synbench.qcqp import (
    check_epsilons,
    class_statistics,
    correct_and_radius,
    robust_linear_rule,
)
from rmqm.metrics.synbench.width import corrected_scores, effective_scale
from rmqm.models.encoder import check_embeddings, evaluating_on

__all__ = ['SynBenchResult', 'evaluate_synbench']


@dataclass(frozen=True)
class SynBenchResult:
    """What :func:`evaluate_synbench` measured.

    Attributes:
        table: one row per mean scale and epsilon: ``s, epsilon, accuracy, bound``
            (test accuracy of the epsilon-robust linear classifier on the features and
            the mean normalised margin of its correct points) and ``effective_scale``
            (epsilon-free: the bias-corrected mean scale the train features keep,
            :func:`~rmqm.metrics.synbench.width.effective_scale`; NaN when ``n_train <= rank + 3``).
        scores: one row per threshold and epsilon: ``threshold, epsilon, score,
            ci_low, ci_high`` (percentile bootstrap interval over test samples; NaN
            without bootstrap) and ``corrected``: the width-corrected score of the effective
            scales (:func:`~rmqm.metrics.synbench.width.corrected_scores`; our extension, not the
            reference's score; epsilon-free, the same on every epsilon's rows).
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

    @property
    def score(self) -> float:
        """The headline score: at the first threshold and the first epsilon evaluated
        (threshold 0.6 and epsilon 0 by default); :meth:`score_at` reads any other."""
        return float(self.scores["score"].iloc[0])

    def score_at(self, threshold: float, epsilon: float = 0.0) -> float:
        """The score at one ``threshold`` and robustness budget ``epsilon`` (both as evaluated).

        Raises:
            ValueError: that pair was not evaluated (the message lists what was).
        """
        at = np.isclose(self.scores["threshold"], threshold) & np.isclose(self.scores["epsilon"], epsilon)
        rows = self.scores[at]
        if rows.empty:
            raise ValueError(
                f"no score at threshold={threshold}, epsilon={epsilon}; evaluated thresholds "
                f"{sorted(self.scores['threshold'].unique().tolist())} and epsilons "
                f"{sorted(self.scores['epsilon'].unique().tolist())}"
            )
        return float(rows["score"].iloc[0])

    def scores_table(
        self, thresholds: ArrayLike | None = None, epsilons: Sequence[float] | None = None
    ) -> pd.DataFrame:
        """Scores at any thresholds (recomputed from the stored curves, so thresholds need not have
        been evaluated, only lie on or above the accuracy grid's start) and evaluated epsilons.

        Args:
            thresholds: threshold accuracies (default: those evaluated), e.g. ``np.arange(0.6, 0.91, 0.05)``.
            epsilons: a subset of the evaluated budgets (default all).

        Returns:
            A tidy frame ``threshold, epsilon, score`` (no interval: the bootstrap ran at the
            evaluated thresholds only; read those from :attr:`scores`).

        Raises:
            ValueError: an epsilon not evaluated, or a threshold below the grid.
        """
        raw = self.curves[self.curves["source"] == "raw"]
        grid = raw["accuracy_threshold"].to_numpy()
        ts = check_thresholds(self.config["thresholds"] if thresholds is None else thresholds)
        if ts.min() < grid.min() - 1e-12:
            raise ValueError(f"thresholds below the accuracy grid's start {grid.min():.4f} need a new evaluation "
                             f"with those thresholds; got {ts.min()}")
        evaluated = self.config["epsilons"]
        chosen = list(evaluated) if epsilons is None else [float(e) for e in epsilons]
        frames = []
        for eps in chosen:
            rep = self.curves[(self.curves["source"] != "raw") & np.isclose(self.curves["epsilon"], eps)]
            if rep.empty:
                raise ValueError(f"epsilon={eps} was not evaluated; evaluated epsilons {evaluated}")
            score = synbench_scores(rep["expected_bound"].to_numpy(), raw["expected_bound"].to_numpy(), grid, ts)
            frames.append(pd.DataFrame({"threshold": ts, "epsilon": eps, "score": score}))
        return pd.concat(frames, ignore_index=True)


def evaluate_synbench(
    encoder: nn.Module,
    input_shape: tuple[int, int, int],
    *,
    s_values: ArrayLike | None = None,
    epsilons: Sequence[float] = (0.0,),
    n_train: int = 2048,
    n_test: int = 2048,
    thresholds: ArrayLike | None = None,
    direction: Any = None,
    direction_seed: int = 0,
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
    Beside it, the width-corrected score (our extension, :mod:`rmqm.metrics.synbench.width`):
    the large-sample score of the bias-corrected class separation of the train features, which
    a lossless encoder keeps at about 1 at any width (the reference score falls with ``d / n_train``).

    Args:
        encoder: maps images ``(B, C, H, W)`` to ``(B, d)``. It gets the raw mixture
            samples (centred at 0.5, not clipped); an :class:`rmqm.models.encoder.Encoder`
            applies its own input normalisation. Run on ``device`` in eval mode, then
            given back on its own device and in its own train/eval mode.
        input_shape: ``(C, H, W)`` of one input.
        s_values: mean scales ``||mu||`` (default 0.1, 0.2, ..., 4.9).
        epsilons: SynBench robustness budgets in ``[0, 1)``, each relative to the class
            mean: the linear classifier is fitted against feature shifts of L2 norm up to
            ``epsilon * ||mu||`` (0 = LDA; the reference uses 0 and 0.2). Not a pixel
            radius: the ``epsilon`` of :func:`rmqm.metrics.rmqm.measure.measure_rmqm` is the
            PGD attack's L-infinity radius in pixel units. The names follow the two papers
            and are kept, as the study's configs and tables use them.
        n_train, n_test: samples per ``s`` (labels are Bernoulli(0.5) draws).
        thresholds: threshold accuracies in ``(0.5, 1)`` (default 0.6, 0.65, ..., 0.95, 0.99).
        direction: mean direction (default all-ones): any array of ``C*H*W`` entries, or a name,
            ``"all-ones"``, ``"random"`` or ``"random-zero-mean"`` (a seeded random unit direction,
            :func:`~rmqm.metrics.synbench.mixture.random_directions`).
        direction_seed: seeds a named random direction.
        batch_size: samples per encoder call.
        n_bootstrap: bootstrap replicates for the interval (0 disables it).
        confidence: level of the interval.
        seed: seeds the samples (``torch.Generator``) and the bootstrap.
        device: ``"cpu"``, ``"cuda[:N]"``, ``"auto"`` (CUDA when present) or a ``torch.device``.
        progress: show a tqdm bar over ``s``.
        eig_rtol: relative eigenvalue cut of the pooled covariance.
        allow_rank_deficient: allow ``n_train < d + 2`` (the eigenvalue cut then keeps
            at most ``n_train - 2`` directions).

    Returns:
        A :class:`SynBenchResult`.

    Raises:
        TypeError: ``encoder`` is not a module or returns a non-tensor; an integer
            parameter that is not an integer.
        ValueError: bad shapes or parameters, encoder output not ``(batch, dim)`` or
            NaN/inf, too few train samples for the feature dimension, an unavailable device.

    Example:
        An orthogonal map loses nothing, so its probe meets the Bayes-optimal trade-off of the
        raw data and the score (the ratio of areas under the two curves, paper Eq. 6) is about 1:

        >>> import torch
        >>> rotate = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 16, bias=False))
        >>> _ = torch.nn.init.orthogonal_(rotate[1].weight, generator=torch.Generator().manual_seed(0))
        >>> result = evaluate_synbench(rotate, (1, 4, 4), s_values=[0.7 * k for k in range(1, 8)],
        ...                            n_train=1024, n_test=1024, n_bootstrap=10, progress=False)
        >>> bool(abs(result.score_at(0.7) - 1) < 0.05), result.feature_dim
        (True, 16)
    """
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"encoder must be a torch.nn.Module; got {type(encoder).__name__}")
    shape = check_input_shape(input_shape)
    s_arr = _check_s_values(DEFAULT_S_VALUES if s_values is None else s_values)
    eps_list = check_epsilons(epsilons)
    ts = check_thresholds(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
    for name, value, low in (("n_train", n_train, 4), ("n_test", n_test, 1), ("batch_size", batch_size, 1),
                             ("n_bootstrap", n_bootstrap, 0)):
        check_int(value, name, low=low)
    check_confidence(confidence)
    device = torch.device(resolve_device(device))
    direction_label = "all-ones" if direction is None else "custom"
    if isinstance(direction, str):
        direction_label = direction if direction == "all-ones" else f"{direction}:seed={int(direction_seed)}"
        direction = named_direction(shape, direction, int(direction_seed))
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
    s_eff = np.zeros(s_arr.size)

    with evaluating_on(encoder, device), torch.inference_mode():
        for j, s in enumerate(tqdm(s_arr, desc="SynBench", unit="s", disable=not progress)):
            h_train, y_train = _embed_mixture(encoder, n_train, float(s), shape, u, generator, batch_size, device)
            feature_dim = h_train.shape[1]
            statistics = class_statistics(h_train, y_train == 1, eig_rtol=eig_rtol,
                                          allow_rank_deficient=allow_rank_deficient)
            n_pos = int((y_train == 1).sum())
            s_eff[j] = effective_scale(statistics, n_pos, y_train.size - n_pos)
            h_test, y_test = _embed_mixture(encoder, n_test, float(s), shape, u, generator, batch_size, device)
            for i, eps in enumerate(eps_list):
                rule = robust_linear_rule(statistics, eps)
                correct[i, j], radius[i, j] = correct_and_radius(rule, h_test, y_test == 1)
                accuracy[i, j] = correct[i, j].mean()
                n_correct = correct[i, j].sum()
                bound[i, j] = radius[i, j][correct[i, j]].mean() if n_correct else 0.0

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
        "effective_scale": np.tile(s_eff, n_eps),
    })
    corrected = corrected_scores(s_eff, s_arr, ts) if np.isfinite(s_eff).all() else np.full(ts.size, np.nan)
    score_table = pd.DataFrame({
        "threshold": np.tile(ts, n_eps),
        "epsilon": np.repeat(eps_list, ts.size),
        "score": scores.ravel(),
        "ci_low": ci_low.ravel(),
        "ci_high": ci_high.ravel(),
        "corrected": np.tile(corrected, n_eps),
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
        direction=direction_label, batch_size=int(batch_size),
        n_bootstrap=int(n_bootstrap), confidence=float(confidence), seed=int(seed), device=str(device),
        eig_rtol=float(eig_rtol), bound_average="plain mean over correct test points",
    )
    return SynBenchResult(table, score_table, raw, curves, int(feature_dim), config)


def _embed_mixture(
    encoder: nn.Module, n: int, s: float, shape: tuple[int, ...], u: torch.Tensor,
    generator: torch.Generator, batch_size: int, device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``n`` mixture points in batches and embed them: ``(n, d)`` float64, ``(n,)`` labels."""
    features: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        x, y = sample_gaussian_mixture(b, s, shape, direction=u, generator=generator, device=device)
        z = check_embeddings(encoder(x), b, where="encoder")
        if features and z.shape[1] != features[0].shape[1]:
            raise ValueError("encoder output dimension changed between batches: "
                             f"{features[0].shape[1]} then {z.shape[1]}")
        features.append(z.detach().to("cpu", torch.float64).numpy())
        labels.append(y.cpu().numpy())
    return np.concatenate(features), np.concatenate(labels)


def _bootstrap_scores(
    correct: np.ndarray, radius: np.ndarray, raw_curve: np.ndarray, grid: np.ndarray,
    thresholds: np.ndarray, n_bootstrap: int, seed: int,
) -> np.ndarray:
    """``(B, E, T)`` scores with the test points resampled independently per ``s``.

    A stratified bootstrap, one stratum (sample) per mean scale: :func:`scipy.stats.bootstrap`
    resamples the test-point indices of each ``s`` (``paired=False``), the classifiers stay
    fixed. All ``S * B * n_test`` indices are drawn at once (one batch), in ``s`` order.

    Args:
        correct, radius: ``(E, S, n_test)`` hits and normalised radii of the test points.
        raw_curve, grid, thresholds: as in :func:`synbench_scores`.
        n_bootstrap: replicates ``B >= 1``.
        seed: seeds ``default_rng([seed, 4])``.
    """
    n_eps, n_s, n_test = correct.shape
    hit_radius = radius * correct

    def statistic(*indices: np.ndarray, axis: int = -1) -> np.ndarray:
        """Scores ``(E, T, B)`` of the resampled test points: ``indices[j]`` is ``(B, n_test)`` for ``s_j``."""
        acc = np.empty((n_bootstrap, n_eps, n_s))
        bnd = np.empty((n_bootstrap, n_eps, n_s))
        for j, idx in enumerate(indices):
            n_correct = correct[:, j][:, idx].sum(axis=-1)  # (E, B)
            total = hit_radius[:, j][:, idx].sum(axis=-1)
            acc[:, :, j] = (n_correct / n_test).T
            with np.errstate(invalid="ignore", divide="ignore"):
                bnd[:, :, j] = np.where(n_correct > 0, total / np.maximum(n_correct, 1), 0.0).T
        scores = synbench_scores(expected_bound_curve(acc, bnd, grid), raw_curve, grid, thresholds)
        return np.moveaxis(scores, 0, -1)

    rng = np.random.default_rng([int(seed), 4])
    if n_test < 2:  # scipy needs two observations; one test point resamples to itself
        return np.moveaxis(statistic(*[np.zeros((n_bootstrap, n_test), dtype=np.int64)] * n_s), -1, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's standard error of a single replicate
        result = stats.bootstrap(
            [np.arange(n_test)] * n_s, statistic, n_resamples=n_bootstrap, vectorized=True, paired=False,
            method="percentile", rng=rng,
        )
    return np.moveaxis(result.bootstrap_distribution, -1, 0)


def _check_s_values(s_values: ArrayLike) -> np.ndarray:
    """``s_values`` as a non-empty 1-D float64 array of finite values > 0 (else ValueError)."""
    s = as_vector(s_values, "s_values")
    if not (np.isfinite(s).all() and (s > 0).all()):
        raise ValueError(f"s_values must be finite and > 0; got {s.tolist()}")
    return s
