"""Inference that matches the zoo's *crossed* design: configurations x seed labels.

A seed of the study fixes one training subset and one set of test points for *every* encoder
(``training/zoo.py``, ``experiments/cache.py``), so seeds are crossed with configurations, not
nested in them. The statistic is computed within each seed label (across the configurations that
have it) and the seed labels are then combined; the resampling keeps that pairing:

- **bootstrap**: configurations are drawn with replacement and each keeps *all* its seeds under
  their labels, so a shift shared by every encoder of one seed stays shared (it cancels in a
  within-seed correlation instead of becoming noise);
- **permutation test**: the score vector is permuted across configurations with the *same*
  permutation for every seed label (within strata, e.g. dimensions, when given); exact
  (every permutation) when ``C!`` is at most the number asked for, otherwise Monte Carlo with
  its standard error.

The estimand of every row: per seed (and stratum) the correlation, ``|r|`` capped at the
one-adjacent-swap value ``1 - 12 / (n (n^2 - 1))`` before Fisher's ``z = arctanh r`` (so one
perfect seed cannot make the mean exactly +1), strata pooled with weights ``n - 3``, the mean of
``z`` over seeds mapped back by ``tanh``. A seed whose score or target is constant (e.g. every
SynBench score 0) enters as ``z = 0`` ("no association"), never left out, and the resample is
counted as *undefined*. Scores of ``+/-inf`` are ranked (first/last) by Spearman; Pearson cannot
use them and counts them in ``n_dropped``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from rmqm._utils.validation import NotMeasurable, check_columns

__all__ = ['CrossedZoo', 'crossed_zoo', 'capped_z', 'crossed_statistic', 'permutation_indices', 'undefined_reason']

_CHUNK = 256  # resamples evaluated at once (bounds the memory of the (B, C, S) arrays)


@dataclass(frozen=True)
class CrossedZoo:
    """A zoo as arrays: ``values[c, s, k]`` column ``k`` of configuration ``c`` under seed label
    ``seeds[s]`` (NaN where that cell is missing), ``strata[c]`` an integer stratum per
    configuration (all 0 without strata), ``n_dropped`` rows left out (non-finite where a
    finite value is needed), ``share_zero`` the share of present cells whose first column is 0."""
    values: np.ndarray
    configs: tuple[tuple[object, ...], ...]
    seeds: tuple[object, ...]
    strata: np.ndarray
    n_dropped: int
    share_zero: float


def crossed_zoo(table: pd.DataFrame, columns: Sequence[str], config_cols: Sequence[str], seed_col: str, *,
                allow_inf: bool = True, strata_col: str | None = None) -> CrossedZoo:
    """Pack ``table`` (one row per configuration x seed) into a :class:`CrossedZoo`.

    A row is kept when none of ``columns`` is NaN and, unless ``allow_inf``, none is infinite;
    ``+/-inf`` kept (Spearman) rank first or last within their seed.

    Raises:
        ValueError: a missing column, a repeated (configuration, seed) row, fewer than 3
            configurations with a kept row, or a configuration in two strata.
    """
    config_cols = list(config_cols)
    check_columns(table, [*columns, *config_cols, seed_col, *([strata_col] if strata_col else [])])
    keys = [*config_cols, seed_col]
    repeated = table.duplicated(subset=keys)
    if repeated.any():
        raise ValueError(f"{int(repeated.sum())} rows repeat a ({', '.join(keys)}) combination; "
                         "give each configuration x seed one row (add the column that tells them apart to config_cols)")
    values = table[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    keep = ~np.isnan(values).any(axis=1) if allow_inf else np.isfinite(values).all(axis=1)
    rows = table.loc[keep].reset_index(drop=True)
    rows[config_cols] = rows[config_cols].astype(object).where(rows[config_cols].notna(), "<NA>")  # NaN != NaN
    values = values[keep]
    configs = sorted(set(map(tuple, rows[config_cols].itertuples(index=False, name=None))), key=repr)
    if len(configs) < 3:
        raise NotMeasurable(f"need at least 3 configurations ({', '.join(config_cols)}) with values of "
                            f"{list(columns)}; got {len(configs)}")
    seeds = tuple(sorted(rows[seed_col].unique().tolist()))
    c_of = {c: i for i, c in enumerate(configs)}
    s_of = {s: i for i, s in enumerate(seeds)}
    packed = np.full((len(configs), len(seeds), len(columns)), np.nan)
    ci = np.array([c_of[tuple(r)] for r in rows[config_cols].itertuples(index=False, name=None)], dtype=np.int64)
    si = np.array([s_of[s] for s in rows[seed_col]], dtype=np.int64)
    packed[ci, si] = values
    strata = np.zeros(len(configs), dtype=np.int64)
    if strata_col:
        per = rows.groupby(config_cols, sort=False)[strata_col].nunique()
        if (per > 1).any():
            raise ValueError(f"a configuration lies in more than one {strata_col!r}; add it to config_cols")
        labels = {s: i for i, s in enumerate(sorted(rows[strata_col].unique().tolist()))}
        first = rows.drop_duplicates(config_cols)
        for cfg, label in zip(first[config_cols].itertuples(index=False, name=None), first[strata_col], strict=True):
            strata[c_of[tuple(cfg)]] = labels[label]
    first_col = values[:, 0]
    share_zero = float(np.mean(first_col == 0)) if first_col.size else float("nan")
    return CrossedZoo(packed, tuple(configs), seeds, strata, int((~keep).sum()), share_zero)


def capped_z(r: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """Fisher's ``arctanh(r)`` with ``|r|`` capped at ``1 - 12 / (n (n^2 - 1))``, the Spearman
    coefficient of ``n`` points one adjacent swap from perfect (``n >= 3``), so that ``|r| = 1``
    of a few points gives a finite, not infinite, z. NaN stays NaN."""
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        cap = 1 - 12 / (n * (n * n - 1))
        return np.arctanh(np.clip(np.asarray(r, dtype=np.float64), -cap, cap))


def _rank(x: np.ndarray) -> np.ndarray:
    """Average ranks along axis 1, NaN cells left NaN (ranks among the others); ``inf`` ranks last."""
    return stats.rankdata(x, axis=1, nan_policy="omit")


def _masked_corr(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pearson correlation along axis 1 over the cells of ``mask`` (``(B, C, S)`` arrays);
    returns ``r`` (NaN with fewer than 3 cells), ``n`` (cells) and ``constant`` (3+ cells but
    ``x`` or ``y`` constant: ``r`` set to 0)."""
    n = mask.sum(axis=1)
    w = mask.astype(np.float64)
    x, y = np.where(mask, x, 0.0), np.where(mask, y, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = (x - (x * w).sum(axis=1, keepdims=True) / n[:, None]) * w
        yc = (y - (y * w).sum(axis=1, keepdims=True) / n[:, None]) * w
        sxx, syy = (xc * xc).sum(axis=1), (yc * yc).sum(axis=1)
        scale = np.maximum(np.abs(x).max(axis=1), np.abs(y).max(axis=1)) + 1e-300
        constant = (n >= 3) & ((sxx <= 1e-24 * scale ** 2 * n) | (syy <= 1e-24 * scale ** 2 * n))
        r = np.clip((xc * yc).sum(axis=1) / np.sqrt(sxx * syy), -1.0, 1.0)
    r = np.where(constant, 0.0, r)
    return np.where(n >= 3, r, np.nan), n, constant


def crossed_statistic(x: np.ndarray, y: np.ndarray, *, method: str = "spearman", strata: np.ndarray | None = None,
                      covariate: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The crossed statistic of ``B`` zoos at once.

    Args:
        x, y: ``(B, C, S)``: score and target of ``C`` configurations under ``S`` seed labels
            (NaN: missing cell; ``+/-inf`` allowed for Spearman).
        method: ``"spearman"`` (ranks within each seed and stratum) or ``"pearson"``.
        strata: ``(B, C)`` integer stratum of each configuration (e.g. its dimension); the
            per-stratum z are pooled with weights ``n - 3`` (strata of 3 or fewer left out).
        covariate: ``(B, C, S)``: a covariate to partial out (one; ranked for Spearman): the
            partial ``(r_xy - r_xc r_yc) / sqrt((1 - r_xc^2)(1 - r_yc^2))`` per seed.

    Returns:
        ``(estimate, undefined)``, each ``(B,)``: ``tanh`` of the mean over seeds of the
        (pooled, capped) z; ``undefined`` when a seed (or stratum) had a constant vector, which
        entered as ``z = 0``. NaN estimate when no seed has 3 configurations.
    """
    present = ~np.isnan(x) & ~np.isnan(y) & (np.ones_like(x, dtype=bool) if covariate is None else ~np.isnan(covariate))
    groups = [None] if strata is None else list(np.unique(strata))
    num = np.zeros(x.shape[::2])
    den = np.zeros(x.shape[::2])
    undefined = np.zeros(x.shape[0], dtype=bool)
    for g in groups:
        mask = present if g is None else present & (strata == g)[..., None]
        cols = [np.where(mask, v, np.nan) for v in (x, y, *(() if covariate is None else (covariate,)))]
        if method == "spearman":
            cols = [_rank(v) for v in cols]
        r, n, constant = _masked_corr(cols[0], cols[1], mask)
        if covariate is not None:
            rxc, _, cx = _masked_corr(cols[0], cols[2], mask)
            ryc, _, cy = _masked_corr(cols[1], cols[2], mask)
            with np.errstate(divide="ignore", invalid="ignore"):
                part = (r - rxc * ryc) / np.sqrt((1 - rxc ** 2) * (1 - ryc ** 2))
            gone = constant | cx | cy | ~np.isfinite(part)  # covariate explains a column: no association left
            constant = gone & (n >= 3)
            r = np.where(n >= 3, np.where(gone, 0.0, np.clip(part, -1, 1)), np.nan)
        z = capped_z(r, np.maximum(n, 3))
        weight = np.where(np.isfinite(z), 1.0 if strata is None else np.maximum(n - 3, 0), 0.0)
        num += np.where(weight > 0, z, 0.0) * weight
        den += weight
        undefined |= (constant & (weight > 0)).any(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z_seed = np.where(den > 0, num / den, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        return np.tanh(np.nanmean(z_seed, axis=1)), undefined


def permutation_indices(strata: np.ndarray, n_permutations: int, rng: np.random.Generator
                        ) -> tuple[np.ndarray, bool]:
    """Permutations of the ``C`` configurations (within ``strata``), ``(P, C)``: all of them,
    in order and with the identity first, when their count is at most ``n_permutations``
    (``exact = True``), else ``n_permutations`` uniform random ones."""
    groups = [np.flatnonzero(strata == g) for g in np.unique(strata)]
    total = math.prod(math.factorial(len(g)) for g in groups)
    if total <= n_permutations:
        out = []
        for combo in itertools.product(*(itertools.permutations(g) for g in groups)):
            perm = np.arange(len(strata))
            for g, p in zip(groups, combo, strict=True):
                perm[g] = p
            out.append(perm)
        return np.array(out, dtype=np.int64), True
    perm = np.tile(np.arange(len(strata)), (n_permutations, 1))
    for g in groups:
        perm[:, g] = g[rng.permuted(np.tile(np.arange(len(g)), (n_permutations, 1)), axis=1)]
    return perm, False


def chunked(fn: Callable[[int, int], tuple[np.ndarray, np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """``fn(start, stop)`` over chunks of ``_CHUNK`` of ``range(n)``, concatenated (two arrays)."""
    parts = [fn(start, min(start + _CHUNK, n)) for start in range(0, n, _CHUNK)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def undefined_reason(n_undefined: int, n_resamples: int, share_zero: float) -> str:
    """``"31% of resamples undefined (a constant score or target under some seed); 83% of scores are 0"``."""
    return (f"{n_undefined / max(n_resamples, 1):.0%} of resamples undefined (a constant score or target under some "
            f"seed); "
            f"{share_zero:.0%} of scores are exactly 0")
