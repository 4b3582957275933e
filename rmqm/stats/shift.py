"""Tests of a mean shift over independent replicates, for the families whose unit is a seed
(chapter 2's step claims: a self-supervised minus supervised contrast per seed) or an encoder
(SynBench's claim 2: each encoder's gain over a random epsilon, its seeds averaged first).

:func:`mean_shift_test` returns the estimate, an interval, a two-sided p-value and the smallest
shift the same test detects with 80 % power at the level the row is judged at (for the first
step of Holm over a family of ``m`` rows: ``alpha / m``), in one :class:`ShiftTest`; the
family files of :mod:`rmqm.study.chapters.summary` take its fields as they are.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from rmqm._utils.validation import check_columns, check_confidence, check_real
from rmqm.stats.verdicts import family_contrast

__all__ = ["TESTS", "STEP_CLAIMS", "ShiftTest", "mean_shift_test", "detectable_shift", "step_family"]

#: Chapter 2's two step claims: (label, column of the per-point table, sign that favours the paper).
#: Steadier steps are a *smaller* relative change ``S_b``, so its contrast is flipped.
STEP_CLAIMS: tuple[tuple[str, str, float], ...] = (("larger steps", "B", 1.0), ("steadier steps", "S_b", -1.0))

#: ``"t"``: Student-t over the replicates (interval and p, normal replicates assumed);
#: ``"sign-flip"``: the exact (``2^n`` flips, or Monte-Carlo beyond ``max_exact``) sign-flip
#: p-value of the mean, distribution-free for replicates symmetric about 0 under the null.
TESTS: tuple[str, ...] = ("t", "sign-flip")


@dataclass(frozen=True)
class ShiftTest:
    """A mean shift over ``n_valid`` replicates (of ``n_resamples`` given; NaN ones left out).

    ``estimate`` the mean, ``ci_low, ci_high`` its Student-t interval (NaN below 2 replicates),
    ``p_value`` two-sided with its Monte-Carlo error ``p_se`` (0 when exact) and ``p_method``,
    ``p_floor`` the smallest p the test can give on ``n_valid`` replicates (0 for the t-test),
    ``detectable`` the smallest ``|shift|`` detected with ``power`` at two-sided ``alpha``
    (NaN where the replicates have no spread or ``p_floor > alpha``: no shift is detectable),
    ``measurable``/``reason`` whether a test could run at all."""
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    p_se: float
    p_method: str
    p_floor: float
    detectable: float
    alpha: float
    power: float
    n_valid: int
    n_resamples: int
    measurable: bool
    reason: str

    def row(self) -> dict[str, Any]:
        """The fields as a dict (a row of a family file)."""
        return asdict(self)


def detectable_shift(sd: float, n: int, alpha: float, power: float = 0.8) -> float:
    """The smallest mean shift a two-sided one-sample t-test on ``n`` replicates of standard
    deviation ``sd`` detects with ``power`` at level ``alpha`` (non-central t, ``n - 1`` dof).

    NaN when ``n < 2`` or ``sd`` is not a positive finite number.

    >>> round(detectable_shift(1.0, 10, 0.05), 3)  # about 1 sd for 10 replicates
    0.996
    """
    alpha = check_real(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    power = check_real(power, "power", low=0.0, high=1.0, low_open=True, high_open=True)
    if n < 2 or not np.isfinite(sd) or sd <= 0:
        return float("nan")
    dof, crit = n - 1, float(stats.t.ppf(1 - alpha / 2, n - 1))

    def shortfall(delta: float) -> float:
        nc = delta * np.sqrt(n) / sd
        # the lower tail through symmetry: nct.cdf(-crit, dof, nc) is NaN for a large nc
        return float(stats.nct.sf(crit, dof, nc) + stats.nct.sf(crit, dof, -nc)) - power

    high = sd
    while shortfall(high) < 0:
        high *= 2
    return float(optimize.brentq(shortfall, 0.0, high, xtol=1e-10 * sd))


def _sign_flip(values: np.ndarray, max_exact: int, n_monte_carlo: int, seed: int) -> tuple[float, float, str]:
    """Two-sided sign-flip p of the mean: exact over all ``2^n`` flips when ``2^n <= max_exact``."""
    n, observed = values.size, abs(float(values.mean()))
    if 2 ** n <= max_exact:
        flips = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        return float(np.mean(np.abs(flips @ values / n) >= observed - 1e-12)), 0.0, "sign-flip (exact)"
    signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(n_monte_carlo, n))
    hits = np.abs(signs @ values / n) >= observed - 1e-12
    p = (1.0 + hits.sum()) / (1.0 + n_monte_carlo)  # the observed flip counted (Phipson & Smyth 2010)
    return float(p), float(np.sqrt(p * (1 - p) / n_monte_carlo)), f"sign-flip (Monte Carlo, {n_monte_carlo})"


def mean_shift_test(values: Any, *, test: str = "t", confidence: float = 0.95, alpha: float = 0.05,
                    power: float = 0.8, max_exact: int = 2 ** 16, n_monte_carlo: int = 20000,
                    seed: int = 0) -> ShiftTest:
    """Is the mean of independent replicates ``values`` (one per seed, or per encoder) other than 0?

    Args:
        values: ``(n,)`` replicates; NaN ones are left out and counted (``n_valid``).
        test: one of :data:`TESTS`.
        confidence: of the Student-t interval.
        alpha: the level the row is judged at, for ``detectable`` only (the verdict is Holm's).
        power: of ``detectable``.
        max_exact, n_monte_carlo, seed: the sign-flip enumeration limit and its Monte-Carlo fallback.

    Returns:
        a :class:`ShiftTest`; not measurable (with the reason) below 2 valid replicates.

    Raises:
        ValueError: an unknown ``test``, a ``values`` that is not 1-D, an infinite value, or a
            bad ``confidence``/``alpha``/``power``.

    >>> r = mean_shift_test([0.9, 1.1, 1.0, 1.2, 0.8])
    >>> round(r.estimate, 3), r.p_value < 0.001, r.p_method
    (1.0, True, 't over 5 replicates')
    >>> mean_shift_test([0.9, 1.1, 1.0, 1.2, 0.8], test="sign-flip").p_value  # 2 of 32 flips: the floor
    0.0625
    """
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")
    confidence = check_confidence(confidence)
    alpha = check_real(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"values must be 1-D (one per replicate); got shape {x.shape}")
    if np.isinf(x).any():
        raise ValueError("values holds an infinite replicate; a mean shift is undefined there")
    total, x = x.size, x[np.isfinite(x)]
    n = x.size
    nan = float("nan")
    if n < 2:
        return ShiftTest(float(x.mean()) if n else nan, nan, nan, nan, nan, "", nan, nan, alpha, power, n, total,
                         False, f"{n} valid replicate{'s' * (n != 1)} of {total}: a test needs 2")
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sd / np.sqrt(n)
    if test == "t":
        if sd > 0:
            p = float(2 * stats.t.sf(abs(mean) / (sd / np.sqrt(n)), n - 1))
        else:  # identical replicates: certain of a nonzero mean, no evidence against a zero one
            p = 1.0 if mean == 0 else 0.0
        p_se, method, floor = 0.0, f"t over {n} replicates", 0.0
    else:
        p, p_se, method = _sign_flip(x, max_exact, n_monte_carlo, seed)
        floor = 2.0 / 2 ** n if 2 ** n <= max_exact else 1.0 / (1.0 + n_monte_carlo)
    detect = detectable_shift(sd, n, alpha, power) if floor <= alpha else nan
    return ShiftTest(mean, mean - half, mean + half, p, p_se, method, floor, detect, alpha, power, n, total, True, "")


def step_family(points: pd.DataFrame, *, alpha: float = 0.05, confidence: float = 0.95,
                seed_col: str = "seed", dim_col: str = "dim", setting_col: str = "perturbation") -> pd.DataFrame:
    """The RMQM step claims as a confirmatory family: per alteration and claim of
    :data:`STEP_CLAIMS`, the self-supervised minus supervised median (of ``B``; of ``S_b`` with its
    sign flipped, so positive favours the paper, Sec. 4 of the RMQM paper) per seed and dimension
    (:func:`rmqm.stats.verdicts.family_contrast`), averaged over dimensions within each seed (the
    seed is the replicate: it fixes every encoder's data), then tested with Student t over seeds
    (:func:`mean_shift_test`; ``detectable`` at ``alpha / m``, Holm's first step over the ``m`` rows).

    Returns:
        one row per alteration and claim: ``label, perturbation, claim, estimate, ci_low, ci_high,
        p_value, p_se, p_method, p_floor, n_valid, n_resamples, measurable, reason, detectable``
        (text), ``detectable_shift`` and ``dims`` (the dimensions averaged).

    Raises:
        ValueError: a missing column, or no rows of either training family.
    """
    check_columns(points, [seed_col, dim_col, setting_col, "family", *(c for _, c, _ in STEP_CLAIMS)], "points")
    contrast = family_contrast(points, [c for _, c, _ in STEP_CLAIMS], by=[setting_col, dim_col, seed_col])
    present = set(contrast[setting_col])  # in the points' order, not the groupby's sorted one
    settings = [s for s in dict.fromkeys(points[setting_col]) if s in present]
    m = len(settings) * len(STEP_CLAIMS)
    rows = []
    for setting in settings:
        part = contrast[contrast[setting_col] == setting]
        for claim, column, sign in STEP_CLAIMS:
            per_seed = (sign * part[f"{column}_diff"]).groupby(part[seed_col]).mean()
            test = mean_shift_test(per_seed.to_numpy(), test="t", confidence=confidence, alpha=alpha / m)
            detectable = (f"|shift| >= {test.detectable:.4f} (80 % power)" if np.isfinite(test.detectable)
                          else "not simulated (no spread over seeds)")
            rows.append({"label": f"{setting}: {claim}", setting_col: setting, "claim": claim,
                         **{k: v for k, v in test.row().items() if k not in ("alpha", "power", "detectable")},
                         "detectable": detectable, "detectable_shift": test.detectable,
                         "dims": ", ".join(str(d) for d in sorted(part[dim_col].unique()))})
    return pd.DataFrame(rows)
