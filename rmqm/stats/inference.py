"""Inference for score-accuracy correlations over an encoder zoo: Fisher-z means over seeds,
two-level (configuration, seed) bootstrap intervals and p-values, paired differences, partial and
within-dimension correlations.

The unit of the zoo is an encoder *configuration* (e.g. ``(method, dim)``) trained with several
seeds; rows are ``configuration x seed``. A correlation "over the zoo" is taken across the
configurations of one seed, then averaged over seeds on the Fisher-z scale (``arctanh``, mean,
``tanh``; Fisher 1921). Resampling configurations *and* seeds within them (a two-level, or
hierarchical, bootstrap; Davison & Hinkley 1997, sec. 3.8) carries both the choice of encoders
and the run-to-run noise into the interval.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from rmqm._utils.validation import check_choice, check_columns, check_confidence, check_int

__all__ = [
    'METHODS', 'INTERVALS', 'FisherZMean', 'BootstrapResult', 'fisher_z', 'fisher_z_mean', 'two_level_bootstrap',
    'paired_bootstrap_difference', 'seed_means',
]

#: Coefficients the functions of this module take.
METHODS: tuple[str, ...] = ("spearman", "pearson")
#: Bootstrap intervals: percentile, or bias-corrected and accelerated (jackknife over configurations).
INTERVALS: tuple[str, ...] = ("percentile", "bca")
_CHUNK = 256  # resamples evaluated at once (bounds the memory of the (B, C, S) arrays)


@dataclass(frozen=True)
class FisherZMean:
    """Mean correlation over ``n`` seeds: ``tanh(mean(arctanh(r)))`` and the back-transformed
    Student-t interval of the z scale."""
    estimate: float
    low: float
    high: float
    n: int
    confidence: float


@dataclass(frozen=True)
class BootstrapResult:
    """A two-level bootstrap estimate (see :func:`two_level_bootstrap`).

    ``estimate`` is the statistic on the data; ``low, high`` its ``interval`` (percentile or BCa);
    ``p_value`` the two-sided bootstrap sign p-value for "statistic = 0"; ``n_valid`` the
    resamples with a defined statistic (of ``n_resamples``).
    """
    estimate: float
    low: float
    high: float
    p_value: float
    n_configs: int
    n_seeds: int
    n_resamples: int
    n_valid: int
    method: str
    confidence: float
    interval: str


def fisher_z(r: float | np.ndarray) -> np.ndarray:
    """Fisher's ``z = arctanh(r)`` of correlation coefficients (element-wise); ``|r| = 1`` gives
    ``+/-inf`` and NaN stays NaN, without a warning."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.arctanh(np.asarray(r, dtype=np.float64))


def fisher_z_mean(rs: Sequence[float] | np.ndarray, confidence: float = 0.95) -> FisherZMean:
    """Mean of correlation coefficients (one per seed) on the Fisher-z scale, with the Student-t
    interval of the mean of ``z = arctanh(r)`` mapped back by ``tanh`` (so it lies in ``(-1, 1)``
    without clipping).

    NaN coefficients (a constant column in one seed) are left out. Coefficients of exactly
    ``+/-1`` have an infinite z: when every coefficient is the same the estimate and interval
    are that value; otherwise an infinite mean gives ``+/-1`` and an undefined (NaN) interval.

    Returns:
        :class:`FisherZMean`; ``low = high = nan`` for fewer than 2 finite coefficients and
        ``estimate = nan`` for none.

    Raises:
        ValueError: a coefficient outside ``[-1, 1]`` or a bad ``confidence``.
    """
    confidence = check_confidence(confidence)
    r = np.asarray(rs, dtype=np.float64).ravel()
    r = r[~np.isnan(r)]
    if np.any(np.abs(r) > 1):
        raise ValueError(f"correlation coefficients must lie in [-1, 1]; got {r[np.abs(r) > 1].tolist()}")
    n = int(r.size)
    if n == 0:
        return FisherZMean(float("nan"), float("nan"), float("nan"), 0, confidence)
    if np.all(r == r[0]):
        return FisherZMean(float(r[0]), *((float(r[0]),) * 2 if n > 1 else (float("nan"),) * 2), n, confidence)
    z = fisher_z(r)
    mean = float(np.mean(z))
    if n == 1 or not np.isfinite(z).all():
        return FisherZMean(float(np.tanh(mean)), float("nan"), float("nan"), n, confidence)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * z.std(ddof=1) / np.sqrt(n))
    return FisherZMean(float(np.tanh(mean)), float(np.tanh(mean - half)), float(np.tanh(mean + half)), n, confidence)


# ---------------------------------------------------------------- the zoo as arrays


@dataclass(frozen=True)
class _Zoo:
    """Finite rows of a zoo: ``packed[c, j, k]`` the ``k``-th column of the ``j``-th seed of
    configuration ``c`` (NaN past ``counts[c]``), ``seed_of[c, j]`` that seed's label."""
    packed: np.ndarray
    counts: np.ndarray
    seed_of: np.ndarray


def _zoo(table: pd.DataFrame, columns: Sequence[str], config_cols: Sequence[str], seed_col: str) -> _Zoo:
    """Check ``table`` and pack the rows where every one of ``columns`` is finite.

    Raises:
        ValueError: a missing column, a repeated (configuration, seed) row, or fewer than 3
            configurations with a finite row.
    """
    config_cols = list(config_cols)
    check_columns(table, [*columns, *config_cols, seed_col])
    keys = [*config_cols, seed_col]
    repeated = table.duplicated(subset=keys)
    if repeated.any():
        raise ValueError(f"{int(repeated.sum())} rows repeat a ({', '.join(keys)}) combination; "
                         "give each configuration x seed one row (add the column that tells them apart to config_cols)")
    values = table[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    keep = np.isfinite(values).all(axis=1)
    rows = table.loc[keep, keys].reset_index(drop=True)
    values = values[keep]
    groups = list(rows.groupby(config_cols, sort=True).indices.values()) if len(rows) else []
    if len(groups) < 3:
        raise ValueError(f"need at least 3 configurations ({', '.join(config_cols)}) with finite {list(columns)}; "
                         f"got {len(groups)}")
    counts = np.array([len(g) for g in groups])
    packed = np.full((len(groups), counts.max(), len(columns)), np.nan)
    seed_of = np.empty((len(groups), counts.max()), dtype=object)
    for c, g in enumerate(groups):
        g = g[np.argsort(rows[seed_col].to_numpy()[g], kind="stable")]
        packed[c, :len(g)] = values[g]
        seed_of[c, :len(g)] = rows[seed_col].to_numpy()[g]
    return _Zoo(packed, counts, seed_of)


def _corr(x: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    """Correlation along axis 1 of ``(B, C, ...)`` arrays; NaN where a column is constant."""
    if method == "spearman":
        x, y = stats.rankdata(x, axis=1), stats.rankdata(y, axis=1)
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (xc * yc).sum(axis=1) / np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
    r = np.clip(r, -1.0, 1.0)  # rounding only: |r| <= 1 exactly in exact arithmetic
    return np.where((np.ptp(x, axis=1) == 0) | (np.ptp(y, axis=1) == 0), np.nan, r)


def _fisher(r: np.ndarray) -> np.ndarray:
    """Fisher-z mean over the last axis, NaN coefficients left out; NaN when none is left
    or when ``+1`` and ``-1`` both occur."""
    z = fisher_z(r)
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        return np.tanh(np.nanmean(z, axis=-1))


def _seed_statistic(zoo: _Zoo, pairs: Sequence[tuple[int, int]], method: str) -> np.ndarray:
    """The statistic on the data, one per ``(x, y)`` column pair: the correlation across the
    configurations that have each seed (at least 3), Fisher-z averaged over seeds."""
    seeds = pd.unique(zoo.seed_of[~pd.isna(zoo.seed_of)].ravel())
    per_seed = np.full((len(pairs), len(seeds)), np.nan)
    for s, seed in enumerate(seeds):
        c, j = np.nonzero(zoo.seed_of == seed)
        if len(c) < 3:
            continue
        v = zoo.packed[c, j][None]  # (1, C_s, k)
        for p, (a, b) in enumerate(pairs):
            per_seed[p, s] = _corr(v[..., a], v[..., b], method)[0]
    return _fisher(per_seed)


def _bootstrap(zoo: _Zoo, pairs: Sequence[tuple[int, int]], method: str, n_resamples: int,
               rng: np.random.Generator) -> np.ndarray:
    """``(n_resamples, len(pairs))`` statistics of two-level resamples: configurations drawn with
    replacement, then for each drawn configuration ``S`` seeds drawn with replacement from its
    own (``S`` the most seeds of any configuration); replicate ``j`` takes the ``j``-th drawn
    seed of every configuration, its correlation runs across configurations, and the
    replicates are Fisher-z averaged. Every pair uses the same resamples."""
    n_configs, n_seeds = zoo.packed.shape[:2]
    out = np.empty((n_resamples, len(pairs)))
    for start in range(0, n_resamples, _CHUNK):
        b = min(_CHUNK, n_resamples - start)
        configs = rng.integers(0, n_configs, size=(b, n_configs))
        seeds = (rng.random((b, n_configs, n_seeds)) * zoo.counts[configs][..., None]).astype(np.int64)
        v = zoo.packed[configs[..., None], seeds]  # (b, C, S, k)
        for p, (a, c) in enumerate(pairs):
            out[start:start + b, p] = _fisher(_corr(v[..., a], v[..., c], method))
    return out


def _jackknife(zoo: _Zoo, pairs: Sequence[tuple[int, int]], method: str) -> np.ndarray:
    """``(C, len(pairs))`` statistics of the zoo with configuration ``c`` (all its seeds) left out."""
    keep = np.ones(len(zoo.counts), dtype=bool)
    out = np.empty((len(zoo.counts), len(pairs)))
    for c in range(len(zoo.counts)):
        keep[c] = False
        out[c] = _seed_statistic(_Zoo(zoo.packed[keep], zoo.counts[keep], zoo.seed_of[keep]), pairs, method)
        keep[c] = True
    return out


def _interval(estimate: float, boot: np.ndarray, jack: np.ndarray | None, confidence: float) -> tuple[float, float]:
    """Percentile interval of ``boot`` (finite), or BCa (Efron 1987) when ``jack`` (the
    leave-one-configuration-out statistics) is given: bias ``z0 = Phi^-1((#{t* < t} + #{t* = t} / 2) / B)``,
    acceleration ``a = sum d^3 / (6 (sum d^2)^1.5)`` with ``d = mean(jack) - jack`` (0 when all
    ``d`` vanish), quantiles ``Phi(z0 + (z0 + z) / (1 - a (z0 + z)))``."""
    alpha = np.array([(1 - confidence) / 2, (1 + confidence) / 2])
    if jack is not None:
        z0 = stats.norm.ppf((np.sum(boot < estimate) + 0.5 * np.sum(boot == estimate)) / boot.size)
        d = np.mean(jack[np.isfinite(jack)]) - jack[np.isfinite(jack)]
        denominator = 6 * np.sum(d * d) ** 1.5
        a = float(np.sum(d ** 3) / denominator) if denominator > 0 else 0.0
        z = stats.norm.ppf(alpha)
        alpha = stats.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
        if not np.isfinite(alpha).all():  # every resample on one side of the estimate
            return float("nan"), float("nan")
    low, high = np.quantile(boot, alpha)
    return float(low), float(high)


def _summary(estimate: float, boot: np.ndarray, jack: np.ndarray | None,
             confidence: float) -> tuple[float, float, float, int]:
    """Interval ``(low, high)`` (:func:`_interval`), the two-sided sign p-value and the number of
    finite resamples. ``p = min(1, 2 min((1 + #{t* <= 0}) / (B + 1), (1 + #{t* >= 0}) / (B + 1)))``:
    twice the smaller share of resamples on either side of 0, with the +1 that keeps a
    Monte-Carlo p-value above 0 (Davison & Hinkley 1997, eq. 4.11); it cannot fall below
    ``2 / (B + 1)``, so ``n_resamples`` must be large when many tests are Holm-adjusted."""
    boot = boot[np.isfinite(boot)]
    if boot.size == 0 or not np.isfinite(estimate):
        return float("nan"), float("nan"), float("nan"), int(boot.size)
    low, high = _interval(estimate, boot, jack, confidence)
    below, above = (1 + np.sum(boot <= 0)) / (boot.size + 1), (1 + np.sum(boot >= 0)) / (boot.size + 1)
    return low, high, float(min(1.0, 2 * min(below, above))), int(boot.size)


def _check_bootstrap(method: str, n_resamples: int, confidence: float, interval: str) -> float:
    check_choice(method, METHODS, "method")
    check_choice(interval, INTERVALS, "interval")
    check_int(n_resamples, "n_resamples", low=1)
    return check_confidence(confidence)


def two_level_bootstrap(
    table: pd.DataFrame,
    score: str,
    target: str,
    *,
    config_cols: Sequence[str] = ("method", "dim"),
    seed_col: str = "seed",
    method: str = "spearman",
    n_resamples: int = 2000,
    confidence: float = 0.95,
    interval: str = "percentile",
    random_state: int = 0,
) -> BootstrapResult:
    """Seed-averaged correlation of ``score`` with ``target`` across configurations, with a
    two-level bootstrap interval and p-value.

    Statistic: for each seed, the ``method`` correlation across the configurations that have
    that seed; then the Fisher-z mean over seeds (:func:`fisher_z_mean`). Resampling:
    configurations with replacement, then seeds with replacement within each drawn
    configuration (see ``_bootstrap``; with one seed per configuration this is the ordinary
    paired bootstrap of rows). Seeds of different configurations are treated as exchangeable.
    Resampling both levels with replacement makes the interval, if anything, a little wide
    (Davison & Hinkley 1997, sec. 3.8). ``interval="percentile"`` takes the quantiles of the
    resampled statistics; ``"bca"`` corrects them for bias and skewness (Efron 1987) with a
    jackknife over configurations, which matters for Spearman coefficients near +/-1, whose
    resamples (with tied, repeated configurations) lie mostly below the estimate.
    ``p_value`` is the two-sided bootstrap sign p-value for "correlation = 0": twice the
    smaller share of resampled statistics on either side of 0 (+1 corrected), not a
    permutation test.

    NaN handling: rows where ``score`` or ``target`` is not a finite number are left out; a
    resample whose statistic is undefined (a constant column in every replicate) is skipped
    (``n_valid`` counts the others).

    Raises:
        ValueError: a missing column (named), a repeated (configuration, seed) row, fewer than
            3 configurations with finite values, an unknown ``method``, a bad ``confidence``.
        TypeError: a non-integer ``n_resamples``.
    """
    confidence = _check_bootstrap(method, n_resamples, confidence, interval)
    zoo = _zoo(table, [score, target], config_cols, seed_col)
    estimate = float(_seed_statistic(zoo, [(0, 1)], method)[0])
    boot = _bootstrap(zoo, [(0, 1)], method, n_resamples, np.random.default_rng(random_state))[:, 0]
    jack = _jackknife(zoo, [(0, 1)], method)[:, 0] if interval == "bca" else None
    low, high, p, valid = _summary(estimate, boot, jack, confidence)
    return BootstrapResult(estimate, low, high, p, len(zoo.counts), int(zoo.counts.max()), int(n_resamples), valid,
                           method, confidence, interval)


def paired_bootstrap_difference(
    table: pd.DataFrame,
    score: str,
    baseline: str,
    target: str,
    *,
    config_cols: Sequence[str] = ("method", "dim"),
    seed_col: str = "seed",
    method: str = "spearman",
    n_resamples: int = 2000,
    confidence: float = 0.95,
    interval: str = "percentile",
    random_state: int = 0,
) -> BootstrapResult:
    """``r(score, target) - r(baseline, target)`` (each as in :func:`two_level_bootstrap`) on
    the same encoders, with a percentile (or BCa) interval and two-sided sign p-value for "difference
    = 0" from the *same* two-level resamples for both coefficients (so their covariance is
    kept). Rows where any of the three columns is not finite are left out of both.

    With one seed per configuration this is :func:`scipy.stats.bootstrap` with
    ``paired=True``; with several it needs the two-level resampling scipy does not do, so
    the resampling is this module's own in both cases (one code path, one random stream).

    Raises:
        ValueError: as :func:`two_level_bootstrap`.
    """
    confidence = _check_bootstrap(method, n_resamples, confidence, interval)
    zoo = _zoo(table, [score, baseline, target], config_cols, seed_col)
    pairs = [(0, 2), (1, 2)]
    point = _seed_statistic(zoo, pairs, method)
    boot = _bootstrap(zoo, pairs, method, n_resamples, np.random.default_rng(random_state))
    estimate = float(point[0] - point[1])
    jack = _jackknife(zoo, pairs, method) if interval == "bca" else None
    low, high, p, valid = _summary(estimate, boot[:, 0] - boot[:, 1], None if jack is None else jack[:, 0] - jack[:, 1],
                                   confidence)
    return BootstrapResult(estimate, low, high, p, len(zoo.counts), int(zoo.counts.max()), int(n_resamples), valid,
                           method, confidence, interval)


# ---------------------------------------------------------------- one row per configuration


def seed_means(table: pd.DataFrame, columns: Sequence[str], *, config_cols: Sequence[str] = ("method", "dim"),
               seed_col: str | None = "seed") -> pd.DataFrame:
    """One row per configuration: the mean over its seeds of each of ``columns`` (non-finite
    values left out), with ``n_seeds`` (seeds that gave a finite value of every column).
    ``seed_col=None`` returns the finite rows unchanged (with ``n_seeds = 1``).

    Returns:
        ``*config_cols, *columns, n_seeds``.
    """
    config_cols = list(config_cols)
    check_columns(table, [*columns, *config_cols, *([seed_col] if seed_col else [])])
    values = table[list(columns)].apply(pd.to_numeric, errors="coerce")
    finite = table[config_cols].join(values)[np.isfinite(values.to_numpy(dtype=np.float64)).all(axis=1)]
    if seed_col is None:
        return finite.assign(n_seeds=1).reset_index(drop=True)
    out = finite.groupby(config_cols, sort=True)[list(columns)].mean()
    return out.assign(n_seeds=finite.groupby(config_cols, sort=True).size()).reset_index()
