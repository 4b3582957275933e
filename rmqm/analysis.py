"""Analysis helpers of the study notebooks: cached tables, distance-curve bands,
correlations with bootstrap confidence intervals, and summaries over training seeds.

Every headline number of the book is computed once per seed (a seed fixes an encoder's
initialisation and training data, the measured points and the noise draws) and reported as
the mean over seeds with a Student-t confidence interval (:func:`t_interval`,
:func:`rmqm.sweep.summarize_seeds`); a claim is *supported* only when that interval
excludes the null value (:func:`interval_verdict`).

These are the few pieces of the notebooks that are neither measurement (``rmqm.measure``,
``rmqm.synbench``) nor training (``rmqm.zoo``): summaries across a zoo of encoders.
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "CORRELATIONS",
    "cached_table",
    "cached_rmqm",
    "cached_synbench",
    "alteration_settings",
    "ZooRMQM",
    "level_bands",
    "relative_change_table",
    "correlation",
    "bootstrap_correlations",
    "rank_agreement",
    "check_bounds",
    "t_interval",
    "t_errorbar",
    "per_seed",
    "seed_correlations",
    "family_contrast",
    "interval_verdict",
    "format_interval",
]

#: Correlation coefficients :func:`bootstrap_correlations` reports.
CORRELATIONS: tuple[str, ...] = ("pearson", "spearman", "kendall")


def cached_table(store: Any, config: Mapping[str, Any], compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """``store.get(config)`` if the store holds it, else ``compute()``, stored first.

    Args:
        store: a :class:`rmqm.store.ResultsStore`.
        config: the full, JSON-like description of the computation (its cache key).
        compute: returns the table (a non-empty DataFrame) when it is not cached.
    """
    if store.has(config):
        return store.get(config)
    start = time.perf_counter()
    table = compute()
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"compute() must return a pandas DataFrame; got {type(table).__name__}")
    store.put(config, table, wall_time_s=time.perf_counter() - start)
    return store.get(config)


def _cached_tables(store: Any, base: Mapping[str, Any], tables: Sequence[str],
                   compute: Callable[[], Mapping[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    keys = {t: {**base, "table": t} for t in tables}
    if all(store.has(k) for k in keys.values()):
        return {t: store.get(k) for t, k in keys.items()}
    start = time.perf_counter()
    computed = compute()
    wall = time.perf_counter() - start
    for t, k in keys.items():
        store.put(k, computed[t], wall_time_s=wall)
    return {t: store.get(k) for t, k in keys.items()}


def cached_rmqm(
    store: Any, model: str, encoder: Any, data: Any, data_config: Mapping[str, Any], **measure_kwargs: Any
) -> dict[str, pd.DataFrame]:
    """:func:`rmqm.measure.measure_rmqm` of one encoder, cached in a results store.

    Args:
        store: a :class:`rmqm.store.ResultsStore`.
        model: the encoder's unique name (e.g. a zoo model name).
        encoder, data: passed to ``measure_rmqm``.
        data_config: JSON-like description of ``data`` (part of the cache key).
        **measure_kwargs: keyword arguments of ``measure_rmqm`` (JSON-like values; they are
            part of the key and must include ``seed``). ``head`` and ``augment`` are passed
            on but only their presence enters the key.

    Returns:
        ``{"summary", "points", "levels"}`` tables of the :class:`~rmqm.measure.RMQMResult`.
    """
    from rmqm.measure import measure_rmqm

    if "seed" not in measure_kwargs:
        raise ValueError("give the measurement's seed explicitly (it is part of the cache key)")
    objects = {k: measure_kwargs.pop(k) for k in ("head", "augment") if k in measure_kwargs}
    base = {"kind": "rmqm", "model": model, "data": dict(data_config), **measure_kwargs,
            **{k: v is not None for k, v in objects.items()}}

    def compute() -> dict[str, pd.DataFrame]:
        res = measure_rmqm(encoder, data, progress=False, **measure_kwargs, **objects)
        return {"summary": res.summary, "points": res.points, "levels": res.levels}

    return _cached_tables(store, base, ("summary", "points", "levels"), compute)


def cached_synbench(
    store: Any, model: str, encoder: Any, input_shape: Sequence[int], **synbench_kwargs: Any
) -> dict[str, pd.DataFrame]:
    """:func:`rmqm.synbench.evaluate_synbench` of one encoder, cached in a results store.

    Returns:
        ``{"table", "scores", "raw", "curves"}`` of the :class:`~rmqm.synbench.SynBenchResult`.
    """
    from rmqm.synbench import evaluate_synbench

    if "seed" not in synbench_kwargs:
        raise ValueError("give the measurement's seed explicitly (it is part of the cache key)")
    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in synbench_kwargs.items()}
    base = {"kind": "synbench", "model": model, "input_shape": list(input_shape), **kwargs}

    def compute() -> dict[str, pd.DataFrame]:
        res = evaluate_synbench(encoder, tuple(input_shape), progress=False, **synbench_kwargs)
        return {"table": res.table, "scores": res.scores, "raw": res.raw, "curves": res.curves}

    return _cached_tables(store, base, ("table", "scores", "raw", "curves"), compute)


def alteration_settings(
    n_noise_levels: int,
    noise_sigma_max: float,
    n_pgd_levels: int,
    pgd_step_size: float,
    pgd_epsilon: float,
    attack_loss: str = "displacement",
) -> dict[str, dict[str, Any]]:
    """The study's two alteration settings as :func:`rmqm.measure.measure_rmqm` keywords:
    ``"noise"`` (fresh white noise per level, the reference's choice) and ``"pgd"``."""
    return {
        "noise": dict(perturbation="noise", n_levels=n_noise_levels, sigma_max=noise_sigma_max, nested=False),
        "pgd": dict(perturbation="pgd", n_levels=n_pgd_levels, step_size=pgd_step_size, epsilon=pgd_epsilon,
                    attack_loss=attack_loss),
    }


@dataclass
class ZooRMQM:
    """RMQM of zoo models, each measured with its own seed, cached in a results store.

    A zoo seed is one replicate of the study: the model trained with seed ``s`` is measured
    on the ``n_points`` test images of ``dataset`` drawn with seed ``s``, with alteration
    noise seeded by ``s`` too. Calling the object returns the cached tables of
    :func:`cached_rmqm` (the dataset of each seed is loaded once).

    Args:
        store: a :class:`rmqm.store.ResultsStore`.
        zoo_dir: folder of the zoo's checkpoints (:func:`rmqm.zoo.load_model`).
        dataset: name of the measured dataset (:func:`rmqm.data.load_dataset`), its test split.
        n_points: test images per seed.
        settings: alteration name -> ``measure_rmqm`` keywords (:func:`alteration_settings`).
        batch_size, device: passed to ``measure_rmqm``.
    """

    store: Any
    zoo_dir: str | os.PathLike
    dataset: str
    n_points: int
    settings: Mapping[str, Mapping[str, Any]]
    batch_size: int = 256
    device: str = "cpu"
    _data: dict[int, Any] = field(default_factory=dict, init=False, repr=False)

    def data(self, seed: int) -> Any:
        """The ``n_points`` test images measured for seed ``seed``."""
        from rmqm.data import load_dataset

        if seed not in self._data:
            self._data[seed] = load_dataset(self.dataset, split="test", n=self.n_points, seed=seed)
        return self._data[seed]

    def __call__(self, name: str, seed: int, setting: str, **extra: Any) -> dict[str, pd.DataFrame]:
        """Tables of zoo model ``name`` (trained with ``seed``) under alteration ``setting``;
        ``extra`` overrides or adds ``measure_rmqm`` keywords (e.g. ``nested=True``, an
        ``attack_loss`` with its ``head`` or ``augment``)."""
        from rmqm.zoo import load_model

        if setting not in self.settings:
            raise ValueError(f"unknown alteration setting {setting!r}; have {sorted(self.settings)}")
        seed = int(seed)
        model = load_model(name, Path(self.zoo_dir))
        data_config = {"name": self.dataset, "split": "test", "n": self.n_points, "seed": seed}
        kwargs = {**self.settings[setting], **extra, "batch_size": self.batch_size, "seed": seed,
                  "device": self.device}
        return cached_rmqm(self.store, name, model.encoder, self.data(seed), data_config, **kwargs)


def level_bands(
    levels: pd.DataFrame,
    by: Sequence[str] = (),
    series: Sequence[str] = ("a", "b"),
    quantiles: tuple[float, float] = (0.1, 0.9),
) -> pd.DataFrame:
    """Median and a quantile band of per-point distance curves at each level.

    Args:
        levels: long table with columns ``level``, ``strength``, the ``series`` columns
            (e.g. :attr:`rmqm.measure.RMQMResult.levels` with extra grouping columns).
        by: grouping columns (e.g. ``("method",)``); each group gets its own curves.
        series: value columns to summarise (``a`` distance from the original, ``b`` step).
        quantiles: lower and upper quantile of the band, in ``[0, 1]``.

    Returns:
        Long table: ``*by, level, strength, series, low, median, high, n``.
    """
    lo, hi = quantiles
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"quantiles must satisfy 0 <= low <= high <= 1; got {quantiles}")
    missing = [c for c in (*by, "level", "strength", *series) if c not in levels.columns]
    if missing:
        raise ValueError(f"levels table lacks column(s) {missing}; has {list(levels.columns)}")
    keys = [*by, "level", "strength"]
    long = levels.melt(id_vars=keys, value_vars=list(series), var_name="series", value_name="value")
    grouped = long.groupby([*by, "level", "strength", "series"], sort=True)["value"]
    out = grouped.agg(
        low=lambda v: v.quantile(lo), median="median", high=lambda v: v.quantile(hi), n="size"
    ).reset_index()
    return out


def relative_change_table(levels: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Absolute relative changes ``|r_k| = |s_k - s_{k-1}| / s_{k-1}`` of each point's
    ``a`` and ``b`` series (methods page, eq. relchange), one row per point and level.

    Args:
        levels: long table with ``point``, ``level``, ``strength``, ``a``, ``b`` and the
            ``by`` columns; levels of a point must be consecutive integers.

    Returns:
        ``*by, point, level, strength, series, abs_rel_change`` (``inf`` where the
        previous distance is 0, kept so callers can count such points).
    """
    missing = [c for c in (*by, "point", "level", "strength", "a", "b") if c not in levels.columns]
    if missing:
        raise ValueError(f"levels table lacks column(s) {missing}")
    keys = [*by, "point"]
    df = levels.sort_values([*keys, "level"])
    parts = []
    for s in ("a", "b"):
        prev = df.groupby(keys, sort=False)[s].shift(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (df[s] - prev).abs() / prev
        part = df[[*keys, "level", "strength"]].assign(series=s, abs_rel_change=r)
        parts.append(part[prev.notna()])
    return pd.concat(parts, ignore_index=True)


def correlation(x: Any, y: Any, method: str = "pearson") -> tuple[float, float]:
    """Correlation coefficient and two-sided p-value of ``x`` and ``y`` (scipy).

    Returns ``(nan, nan)`` when either input is constant.
    """
    if method not in CORRELATIONS:
        raise ValueError(f"unknown correlation {method!r}; choose one of {list(CORRELATIONS)}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length; got {x.shape} and {y.shape}")
    if x.size < 3:
        raise ValueError(f"need at least 3 pairs for a correlation; got {x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    fn = {"pearson": stats.pearsonr, "spearman": stats.spearmanr, "kendall": stats.kendalltau}[method]
    res = fn(x, y)
    return float(res[0]), float(res[1])


def _finite_pairs(table: pd.DataFrame, x: str, y: str) -> np.ndarray:
    """``(n, 2)`` float array of the rows where columns ``x`` and ``y`` are both finite."""
    pair = table[[x, y]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    return pair[np.isfinite(pair).all(axis=1)]


def bootstrap_correlations(
    table: pd.DataFrame,
    scores: Sequence[str],
    targets: Sequence[str],
    *,
    methods: Sequence[str] = CORRELATIONS,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Correlation of each score with each target across the rows (encoders) of ``table``,
    with a percentile-bootstrap confidence interval (rows resampled with replacement).

    Rows where a score or target is not finite are left out of that pair. A bootstrap
    replicate in which either column is constant gives no coefficient and is skipped;
    ``n_boot_valid`` says how many were used. Each (score, target) pair draws its own
    seeded resamples, so adding columns leaves the other intervals unchanged.

    Returns:
        ``score, target, method, n, r, p_value, ci_low, ci_high, n_boot_valid``.
    """
    _check_confidence(confidence)
    if int(n_boot) != n_boot or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer; got {n_boot}")
    missing = [c for c in (*scores, *targets) if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; has {list(table.columns)}")
    for m in methods:
        if m not in CORRELATIONS:
            raise ValueError(f"unknown correlation {m!r}; choose one of {list(CORRELATIONS)}")
    alpha = (1.0 - confidence) / 2
    rows = []
    for score in scores:
        for target in targets:
            pair = _finite_pairs(table, score, target)
            n = pair.shape[0]
            # one stream per (score, target): a pair's interval does not depend on the others
            rng = np.random.default_rng([int(seed), zlib.crc32(f"{score}|{target}".encode())])
            idx = rng.integers(0, n, size=(int(n_boot), n)) if n >= 3 else np.empty((0, n), dtype=int)
            for method in methods:
                r, p = correlation(pair[:, 0], pair[:, 1], method) if n >= 3 else (np.nan, np.nan)
                boot = []
                for sample in idx:
                    x, y = pair[sample, 0], pair[sample, 1]
                    if np.ptp(x) > 0 and np.ptp(y) > 0:
                        boot.append(correlation(x, y, method)[0])
                boot_arr = np.asarray(boot, dtype=np.float64)
                boot_arr = boot_arr[np.isfinite(boot_arr)]
                low, high = (np.quantile(boot_arr, [alpha, 1 - alpha]) if boot_arr.size else (np.nan, np.nan))
                rows.append({
                    "score": score, "target": target, "method": method, "n": n, "r": r, "p_value": p,
                    "ci_low": float(low), "ci_high": float(high), "n_boot_valid": int(boot_arr.size),
                })
    return pd.DataFrame(rows)


def rank_agreement(x: Any, y: Any) -> dict[str, float]:
    """How alike two scores rank the same items: Spearman rho and Kendall tau (with p-values)."""
    rho, p_rho = correlation(x, y, "spearman")
    tau, p_tau = correlation(x, y, "kendall")
    return {"spearman": rho, "spearman_p": p_rho, "kendall": tau, "kendall_p": p_tau}


# ------------------------------------------------------------------ summaries over seeds


def _check_confidence(confidence: float) -> float:
    from rmqm.data import check_real

    return check_real(confidence, "confidence", low=0.0, high=1.0, low_open=True, high_open=True)


def check_bounds(bounds: Any) -> tuple[float, float] | None:
    """``None`` or a ``(low, high)`` pair of numbers with ``low < high`` (not NaN)."""
    if bounds is None:
        return None
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be None or a (low, high) pair of numbers; got {bounds!r}") from None
    if not low < high:
        raise ValueError(f"bounds must be (low, high) with low < high; got {bounds!r}")
    return low, high


def t_interval(
    values: Any, confidence: float = 0.95, bounds: tuple[float, float] | None = None
) -> tuple[float, float, float]:
    """Mean of the finite ``values`` and its two-sided Student-t confidence interval.

    ``mean -/+ t_{(1+c)/2, n-1} * s / sqrt(n)`` with ``s`` the sample standard deviation
    (ddof 1) of the ``n`` finite values; non-finite values (an undefined coefficient of one
    seed) are left out. ``bounds`` clips the interval to the quantity's range (e.g.
    ``(-1, 1)`` for a correlation, ``(0, 1)`` for an accuracy): with few seeds the
    symmetric interval can otherwise reach values the quantity cannot take.

    Returns:
        ``(mean, low, high)``; ``low = high = nan`` with fewer than 2 finite values and
        ``mean = nan`` with none.
    """
    confidence = _check_confidence(confidence)
    bounds = check_bounds(bounds)
    x = pd.to_numeric(pd.Series(np.ravel(np.asarray(values, dtype=object))), errors="raise").to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if n == 1:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    low, high = mean - half, mean + half
    if bounds is not None:
        if not bounds[0] <= mean <= bounds[1]:
            raise ValueError(f"the mean {mean} lies outside bounds {bounds!r}")
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return mean, low, high


def t_errorbar(
    confidence: float = 0.95, bounds: tuple[float, float] | None = None
) -> Callable[[Any], tuple[float, float]]:
    """A seaborn ``errorbar=`` callable drawing :func:`t_interval` (no bar for one value)."""
    confidence = _check_confidence(confidence)
    bounds = check_bounds(bounds)  # fails now rather than inside a plot

    def interval(values: Any) -> tuple[float, float]:
        mean, low, high = t_interval(values, confidence, bounds)
        return (mean, mean) if np.isnan(low) else (low, high)

    return interval


def per_seed(
    table: pd.DataFrame, fn: Callable[[pd.DataFrame], Any], seed_column: str = "seed"
) -> pd.DataFrame:
    """Apply ``fn`` to the rows of each seed and stack the results with a seed column.

    Args:
        table: rows of several seeds (e.g. one row per encoder and seed).
        fn: maps one seed's rows to a DataFrame, a dict (one row) or a scalar (column ``value``).
        seed_column: the column holding the seed.

    Returns:
        ``seed_column`` followed by ``fn``'s columns, seeds in ascending order.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame; got {type(table).__name__}")
    if seed_column not in table.columns:
        raise ValueError(f"table has no seed column {seed_column!r}; it has {list(table.columns)}")
    if table.empty:
        raise ValueError("table is empty: there is no seed to summarise")
    parts = []
    for seed, rows in table.groupby(seed_column, sort=True):
        out = fn(rows)
        if isinstance(out, pd.DataFrame):
            out = out.copy()
        elif isinstance(out, Mapping):
            out = pd.DataFrame([dict(out)])
        else:
            out = pd.DataFrame({"value": [out]})
        if seed_column in out.columns:
            out = out.drop(columns=seed_column)
        out.insert(0, seed_column, seed)
        parts.append(out)
    return pd.concat(parts, ignore_index=True)


def seed_correlations(
    table: pd.DataFrame,
    scores: Sequence[str],
    targets: Sequence[str],
    *,
    methods: Sequence[str] = CORRELATIONS,
    seed_column: str = "seed",
) -> pd.DataFrame:
    """Correlation of each score with each target across the encoders of each seed.

    One coefficient per seed: the encoders trained (and measured) with seed ``s`` form one
    replicate of the whole zoo, so the spread of the coefficient over seeds is the
    run-to-run uncertainty of the study's answer. Summarise it with
    :func:`rmqm.sweep.summarize_seeds` (``values="r", by=["score", "target", "method"]``).
    Rows with a non-finite score or target are left out of that pair; fewer than 3 pairs
    or a constant column give ``r = nan``.

    Returns:
        ``seed, score, target, method, n, r, p_value``.
    """
    for m in methods:
        if m not in CORRELATIONS:
            raise ValueError(f"unknown correlation {m!r}; choose one of {list(CORRELATIONS)}")
    missing = [c for c in (*scores, *targets) if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; has {list(table.columns)}")

    def one_seed(rows: pd.DataFrame) -> pd.DataFrame:
        out = []
        for score in scores:
            for target in targets:
                pair = _finite_pairs(rows, score, target)
                for method in methods:
                    r, p = correlation(pair[:, 0], pair[:, 1], method) if len(pair) >= 3 else (np.nan, np.nan)
                    out.append({"score": score, "target": target, "method": method, "n": len(pair),
                                "r": r, "p_value": p})
        return pd.DataFrame(out)

    return per_seed(table, one_seed, seed_column)


def family_contrast(
    table: pd.DataFrame,
    values: str | Sequence[str],
    by: Sequence[str],
    first: str = "self-supervised",
    second: str = "supervised",
    *,
    family_column: str = "family",
    statistic: str = "median",
) -> pd.DataFrame:
    """Difference of a statistic of ``values`` between two families, per group.

    For each group of ``by`` (e.g. perturbation, dim and seed), ``statistic`` (``"median"``
    or ``"mean"``) of each value column over the rows of family ``first`` minus the same
    over the rows of family ``second``. A group that lacks either family is left out.

    Returns:
        ``*by, <value>_<first>, <value>_<second>, <value>_diff`` for each value column.
    """
    values = [values] if isinstance(values, str) else list(values)
    by = list(by)
    if statistic not in ("median", "mean"):
        raise ValueError(f"statistic must be 'median' or 'mean'; got {statistic!r}")
    missing = [c for c in (*values, *by, family_column) if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; has {list(table.columns)}")
    sub = table[table[family_column].isin([first, second])]
    stat = sub.groupby([*by, family_column])[values].agg(statistic).unstack(family_column)
    out = pd.DataFrame(index=stat.index)
    for v in values:
        if (v, first) not in stat.columns or (v, second) not in stat.columns:
            raise ValueError(f"table has no rows of family {first!r} or {second!r} to compare")
        out[f"{v}_{first}"] = stat[(v, first)]
        out[f"{v}_{second}"] = stat[(v, second)]
        out[f"{v}_diff"] = stat[(v, first)] - stat[(v, second)]
    return out.dropna().reset_index()


def interval_verdict(low: float, high: float, null: float = 0.0, expected: str = "positive") -> str:
    """What a confidence interval says about a claim of an effect of sign ``expected``.

    ``"supported: <sign>"`` when the interval lies entirely on the ``expected`` side of
    ``null``, ``"contradicted: <sign>"`` when it lies entirely on the other side (``<sign>``
    is the side it lies on), ``"inconclusive"`` when it contains ``null``, and ``"no
    interval"`` when it is undefined (fewer than two seeds).
    """
    if expected not in ("positive", "negative"):
        raise ValueError(f"expected must be 'positive' or 'negative'; got {expected!r}")
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no interval"
    if low > high:
        raise ValueError(f"interval low {low} exceeds high {high}")
    if low > null or high < null:
        side = "positive" if low > null else "negative"
        return f"{'supported' if side == expected else 'contradicted'}: {side}"
    return "inconclusive"


def format_interval(mean: float, low: float, high: float, digits: int = 2, signed: bool = True) -> str:
    """``"+0.96 [+0.94, +0.98]"``; the bracket is left out when the interval is undefined."""
    spec = f"{'+' if signed else ''}.{int(digits)}f"
    text = format(mean, spec)
    if np.isfinite(low) and np.isfinite(high):
        text += f" [{format(low, spec)}, {format(high, spec)}]"
    return text
