"""Inference for score-accuracy correlations over an encoder zoo: Fisher-z means over seeds,
crossed (configuration x seed label) bootstrap intervals, configuration-permutation p-values and
paired differences.

The unit of the zoo is an encoder *configuration* (e.g. ``(method, dim)``) trained under several
seed labels; a seed fixes the training subset and test points of *every* configuration, so seeds
are crossed with configurations. A correlation "over the zoo" is taken across the configurations
of one seed label, then averaged over seeds on the Fisher-z scale (``arctanh`` of ``|r|`` capped,
mean, ``tanh``; Fisher 1921). Resampling whole configurations with their seed labels intact
(:mod:`rmqm.stats.crossed`) carries the choice of encoders into the interval and keeps the
pairing that makes a seed's shared shift cancel; permuting configurations gives the p-value.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from rmqm._utils.validation import check_choice, check_columns, check_confidence, check_int
from rmqm.stats.crossed import (
    CrossedZoo,
    capped_z,
    chunked,
    crossed_statistic,
    crossed_zoo,
    permutation_indices,
    undefined_reason,
)

__all__ = [
    'METHODS', 'INTERVALS', 'FisherZMean', 'BootstrapResult', 'fisher_z', 'fisher_z_mean', 'crossed_bootstrap',
    'two_level_bootstrap', 'paired_bootstrap_difference', 'seed_means',
]

#: Coefficients the functions of this module take.
METHODS: tuple[str, ...] = ("spearman", "pearson")
#: Bootstrap intervals: percentile, or bias-corrected and accelerated (jackknife over configurations).
INTERVALS: tuple[str, ...] = ("percentile", "bca")


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
    """A crossed bootstrap estimate (see :func:`crossed_bootstrap`).

    ``estimate`` is the statistic on the data; ``low, high`` its ``interval`` (percentile or BCa)
    over ``n_resamples`` crossed resamples, ``n_valid`` of them defined and ``n_undefined`` with
    a constant vector under some seed (kept as "no association"); ``p_value`` the two-sided
    ``p_method`` p-value ("permutation": configurations permuted, ``exact`` or Monte Carlo with
    standard error ``p_se`` over ``n_permutations``); ``measurable`` False (with a ``reason``)
    when too many resamples are undefined; ``share_zero`` the share of scores exactly 0;
    ``n_dropped`` the rows left out (non-finite where a finite value is needed).
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
    p_se: float = float("nan")
    n_permutations: int = 0
    exact: bool = False
    p_method: str = "permutation"
    n_undefined: int = 0
    share_zero: float = float("nan")
    n_dropped: int = 0
    measurable: bool = True
    reason: str = ""


def fisher_z(r: float | np.ndarray) -> np.ndarray:
    """Fisher's ``z = arctanh(r)`` of correlation coefficients (element-wise); ``|r| = 1`` gives
    ``+/-inf`` and NaN stays NaN, without a warning."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.arctanh(np.asarray(r, dtype=np.float64))


def fisher_z_mean(rs: Sequence[float] | np.ndarray, confidence: float = 0.95,
                  n_items: int | None = None) -> FisherZMean:
    """Mean of correlation coefficients (one per seed) on the Fisher-z scale, with the Student-t
    interval of the mean of ``z = arctanh(r)`` mapped back by ``tanh`` (so it lies in ``(-1, 1)``
    without clipping).

    NaN coefficients (a constant column in one seed) are left out. With ``n_items`` (the
    configurations each coefficient is taken over) ``|r|`` is capped first at
    ``1 - 12 / (n (n^2 - 1))`` (:func:`rmqm.stats.crossed.capped_z`: the estimand of
    :func:`crossed_bootstrap`), so one perfect seed cannot make the mean exactly +1. Without it,
    coefficients of exactly ``+/-1`` have an infinite z: when every coefficient is the same the
    estimate and interval are that value; otherwise an infinite mean gives ``+/-1`` and an
    undefined (NaN) interval.

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
    if n_items is not None:
        r = np.tanh(capped_z(r, check_int(n_items, "n_items", low=3)))
    if np.all(r == r[0]):
        return FisherZMean(float(r[0]), *((float(r[0]),) * 2 if n > 1 else (float("nan"),) * 2), n, confidence)
    z = fisher_z(r)
    mean = float(np.mean(z))
    if n == 1 or not np.isfinite(z).all():
        return FisherZMean(float(np.tanh(mean)), float("nan"), float("nan"), n, confidence)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * z.std(ddof=1) / np.sqrt(n))
    return FisherZMean(float(np.tanh(mean)), float(np.tanh(mean - half)), float(np.tanh(mean + half)), n, confidence)


# ---------------------------------------------------------------- crossed resampling (rmqm.stats.crossed)


def _evaluate(zoo: CrossedZoo, idx: np.ndarray, perm: np.ndarray | None, pair: tuple[int, int], method: str,
              stratified: bool, covariate: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The statistic of resampled zoos: configurations ``idx`` (``(B, C)``, each with all its
    seeds) and, for a permutation, the score column taken from configurations ``perm[b]``."""
    v = zoo.values[idx]  # (B, C, S, k)
    x = v[..., pair[0]] if perm is None else zoo.values[idx[np.arange(len(idx))[:, None], perm], :, pair[0]]
    strata = zoo.strata[idx] if stratified else None
    cov = None if covariate is None else v[..., covariate]
    return crossed_statistic(x, v[..., pair[1]], method=method, strata=strata, covariate=cov)


def _chunk(zoo: CrossedZoo, idx: np.ndarray, perm: np.ndarray | None, pair: tuple[int, int], method: str,
           stratified: bool, covariate: int | None, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_evaluate` of resamples ``start:stop``."""
    return _evaluate(zoo, idx[start:stop], None if perm is None else perm[start:stop], pair, method, stratified,
                     covariate)


def _bootstrap_draws(zoo: CrossedZoo, pairs: Sequence[tuple[int, int]], method: str, n: int, rng: np.random.Generator,
                     stratified: bool, covariate: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(n, len(pairs))`` statistics of crossed bootstrap resamples (configurations with
    replacement, within strata when ``stratified``) and ``(n,)`` undefined flags (any pair)."""
    c = len(zoo.configs)
    idx = rng.integers(0, c, size=(n, c))
    if stratified:  # draw each configuration from its own stratum
        for g in np.unique(zoo.strata):
            members = np.flatnonzero(zoo.strata == g)
            idx[:, members] = members[rng.integers(0, len(members), size=(n, len(members)))]
    stats_, undefined = [], np.zeros(n, dtype=bool)
    for pair in pairs:
        t, u = chunked(functools.partial(_chunk, zoo, idx, None, pair, method, stratified, covariate), n)
        stats_.append(np.where(np.isfinite(t), t, 0.0))
        undefined |= u | ~np.isfinite(t)
    return np.column_stack(stats_), undefined


def _permutation_p(zoo: CrossedZoo, estimate: float, method: str, n: int, rng: np.random.Generator, stratified: bool,
                   covariate: int | None) -> tuple[float, float, int, bool]:
    """Two-sided permutation p-value of the statistic of columns ``(0, 1)``: ``#{|T*| >= |T|} / P``
    over all permutations (exact; the identity among them) or ``(1 + #) / (P + 1)`` over ``P``
    random ones with its standard error ``sqrt(p (1 - p) / P)``."""
    strata = zoo.strata if stratified else np.zeros(len(zoo.configs), dtype=np.int64)
    perm, exact = permutation_indices(strata, n, rng)
    idx = np.tile(np.arange(len(zoo.configs)), (len(perm), 1))
    t, _ = chunked(functools.partial(_chunk, zoo, idx, perm, (0, 1), method, stratified, covariate), len(perm))
    t = np.where(np.isfinite(t), t, 0.0)
    hits = int(np.sum(np.abs(t) >= abs(estimate) - 1e-12))
    if exact:
        return hits / len(perm), 0.0, len(perm), True
    p = (1 + hits) / (len(perm) + 1)
    return float(p), float(np.sqrt(p * (1 - p) / len(perm))), len(perm), False


def _interval(estimate: float, boot: np.ndarray, jack: np.ndarray | None, confidence: float) -> tuple[float, float]:
    """Percentile interval of ``boot``, or BCa (Efron 1987) when ``jack`` (the
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


def _jackknife(zoo: CrossedZoo, pairs: Sequence[tuple[int, int]], method: str, stratified: bool,
               covariate: int | None) -> np.ndarray:
    """``(C, len(pairs))`` statistics with configuration ``c`` (all its seeds) left out."""
    c = len(zoo.configs)
    idx = np.array([np.delete(np.arange(c), i) for i in range(c)])
    return np.column_stack([_evaluate(zoo, idx, None, pair, method, stratified, covariate)[0] for pair in pairs])


def _sign_p(boot: np.ndarray) -> float:
    """Two-sided bootstrap sign p-value, ``min(1, 2 min((1 + #{t* <= 0}), (1 + #{t* >= 0})) / (B + 1))``
    (Davison & Hinkley 1997, eq. 4.11): the inverted percentile interval, not a test of a null."""
    below, above = (1 + np.sum(boot <= 0)) / (boot.size + 1), (1 + np.sum(boot >= 0)) / (boot.size + 1)
    return float(min(1.0, 2 * min(below, above)))


def _check_bootstrap(method: str, n_resamples: int, confidence: float, interval: str) -> float:
    check_choice(method, METHODS, "method")
    check_choice(interval, INTERVALS, "interval")
    check_int(n_resamples, "n_resamples", low=1)
    return check_confidence(confidence)


def _result(zoo: CrossedZoo, estimate: float, point_undefined: bool, boot: np.ndarray, undefined: np.ndarray,
            jack: np.ndarray | None, p: tuple[float, float, int, bool, str], method: str, confidence: float,
            interval: str, max_undefined: float) -> BootstrapResult:
    n = boot.size
    low, high = _interval(estimate, boot, jack, confidence) if np.isfinite(estimate) else (float("nan"),) * 2
    n_undefined = int(undefined.sum())
    measurable = bool(np.isfinite(estimate) and not point_undefined and n_undefined <= max_undefined * n)
    reason = "" if measurable else ("no seed with 3 configurations" if not np.isfinite(estimate) else
                                    ("the data have a constant vector under a seed; " if point_undefined else "")
                                    + undefined_reason(n_undefined, n, zoo.share_zero))
    present = ~np.isnan(zoo.values[..., 0])
    return BootstrapResult(float(estimate), low, high, p[0], len(zoo.configs), int(present.sum(axis=1).max()), n,
                           n - n_undefined, method, confidence, interval, p_se=p[1], n_permutations=p[2], exact=p[3],
                           p_method=p[4], n_undefined=n_undefined, share_zero=zoo.share_zero,
                           n_dropped=zoo.n_dropped, measurable=measurable, reason=reason)


def crossed_bootstrap(
    table: pd.DataFrame,
    score: str,
    target: str,
    *,
    config_cols: Sequence[str] = ("method", "dim"),
    seed_col: str = "seed",
    method: str = "spearman",
    n_resamples: int = 2000,
    n_permutations: int | None = None,
    confidence: float = 0.95,
    interval: str = "percentile",
    random_state: int = 0,
    strata_col: str | None = None,
    covariate: str | None = None,
    max_undefined: float = 0.05,
) -> BootstrapResult:
    """Seed-label-wise correlation of ``score`` with ``target`` across configurations (the
    estimand of :mod:`rmqm.stats.crossed`), with a crossed bootstrap interval and a
    configuration-permutation p-value.

    Statistic: per seed label, the ``method`` correlation across the configurations that have
    it (within each stratum of ``strata_col``, pooled with weights ``n - 3``; partial on
    ``covariate`` when given), ``|r|`` capped before Fisher z, mean over seeds, ``tanh``.
    Interval: configurations resampled with replacement (within strata), each keeping all its
    seeds under their labels; percentile, or BCa with a jackknife over configurations.
    ``p_value``: the score permuted across configurations (within strata), the same permutation
    for every seed label; exact when the permutations number at most ``n_permutations``
    (default ``n_resamples``), else Monte Carlo with standard error ``p_se``.

    Undefined resamples (a constant vector under some seed, e.g. many SynBench scores of 0) are
    kept with ``z = 0`` for that seed and counted in ``n_undefined`` (``n_valid`` the others);
    more than ``max_undefined`` of them, or an undefined estimate, make the row not
    ``measurable``, with the ``reason``. NaN rows are left out; ``+/-inf`` are ranked for
    Spearman and counted in ``n_dropped`` for Pearson.

    Raises:
        ValueError: a missing column (named), a repeated (configuration, seed) row, fewer than
            3 configurations with values, an unknown ``method``, a bad ``confidence``.
        TypeError: a non-integer ``n_resamples``.
    """
    confidence = _check_bootstrap(method, n_resamples, confidence, interval)
    n_perm = check_int(n_resamples if n_permutations is None else n_permutations, "n_permutations", low=1)
    columns = [score, target, *([covariate] if covariate else [])]
    zoo = crossed_zoo(table, columns, config_cols, seed_col, allow_inf=method == "spearman", strata_col=strata_col)
    stratified, cov = strata_col is not None, (2 if covariate else None)
    every = np.arange(len(zoo.configs))[None]
    point, point_undefined = _evaluate(zoo, every, None, (0, 1), method, stratified, cov)
    rng = np.random.default_rng(random_state)
    boot, undefined = _bootstrap_draws(zoo, [(0, 1)], method, n_resamples, rng, stratified, cov)
    jack = _jackknife(zoo, [(0, 1)], method, stratified, cov)[:, 0] if interval == "bca" else None
    estimate = float(point[0])
    p = ((*_permutation_p(zoo, estimate, method, n_perm, rng, stratified, cov), "permutation")
         if np.isfinite(estimate) else (float("nan"), float("nan"), 0, False, "permutation"))
    return _result(zoo, estimate, bool(point_undefined[0]), boot[:, 0], undefined, jack, p, method, confidence,
                   interval, max_undefined)


#: The crossed bootstrap under its former name (the nested two-level resampler it replaces broke
#: the seed pairing of the crossed design).
two_level_bootstrap = crossed_bootstrap


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
    max_undefined: float = 0.05,
) -> BootstrapResult:
    """``r(score, target) - r(baseline, target)`` (each as in :func:`crossed_bootstrap`) on the
    same encoders, with a percentile (or BCa) interval from the *same* crossed resamples for
    both coefficients (so their covariance is kept). There is no permutation null for a
    difference of two correlations, so ``p_value`` is the bootstrap sign p-value
    (``p_method = "bootstrap sign"``: the inverted percentile interval), for exploratory use.
    Rows where any of the three columns is NaN are left out of both.

    Raises:
        ValueError: as :func:`crossed_bootstrap`.
    """
    confidence = _check_bootstrap(method, n_resamples, confidence, interval)
    zoo = crossed_zoo(table, [score, baseline, target], config_cols, seed_col, allow_inf=method == "spearman")
    pairs = [(0, 2), (1, 2)]
    every = np.arange(len(zoo.configs))[None]
    point = [_evaluate(zoo, every, None, pair, method, False, None) for pair in pairs]
    boot, undefined = _bootstrap_draws(zoo, pairs, method, n_resamples, np.random.default_rng(random_state), False,
                                       None)
    diff = boot[:, 0] - boot[:, 1]
    estimate = float(point[0][0][0] - point[1][0][0])
    jack = _jackknife(zoo, pairs, method, False, None) if interval == "bca" else None
    p = (_sign_p(diff) if np.isfinite(estimate) else float("nan"), float("nan"), 0, False, "bootstrap sign")
    return _result(zoo, estimate, bool(point[0][1][0] or point[1][1][0]), diff, undefined,
                   None if jack is None else jack[:, 0] - jack[:, 1], p, method, confidence, interval, max_undefined)


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
