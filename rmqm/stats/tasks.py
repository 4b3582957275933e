"""Score-accuracy correlations per transfer task: the reference notebook's pooled statistic, and
the per-task table with crossed bootstrap intervals, permutation p-values and Holm-adjusted p-values that replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from rmqm._utils.validation import NotMeasurable, check_choice, check_columns, check_confidence, check_int, check_real
from rmqm.stats.inference import METHODS, crossed_bootstrap
from rmqm.stats.verdicts import holm

__all__ = ['AGGREGATE', 'ReferencePooled', 'reference_pooled_correlation', 'chance_normalised_mean',
           'per_task_correlations']

#: Name of the optional aggregate target of :func:`per_task_correlations`.
AGGREGATE = "mean_chance_normalised"


@dataclass(frozen=True)
class ReferencePooled:
    """The reference notebook's pooled Pearson r over tasks (see :func:`reference_pooled_correlation`)."""
    r: float
    p_value: float
    n: int
    tasks: tuple[str, ...]


def _task_columns(table: pd.DataFrame, tasks: Sequence[str], acc_suffix: str) -> list[str]:
    """``<task><acc_suffix>`` for each task, checked to be in ``table``."""
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    if not tasks:
        raise ValueError("name at least one task")
    columns = [f"{t}{acc_suffix}" for t in tasks]
    check_columns(table, columns)
    return columns


def reference_pooled_correlation(
    table: pd.DataFrame,
    score: str,
    tasks: Sequence[str],
    *,
    acc_suffix: str = "_1nn",
    min_dim: int = 4,
    dim_col: str = "dim",
) -> ReferencePooled:
    """The correlation statistic of the reference notebook ("Performance vs MQM"): one Pearson
    r between ``score`` and accuracy over the encoders of all ``tasks`` pooled.

    Only rows with ``dim >= min_dim`` (the reference's ``d > 3``) are kept; each task's
    accuracy column ``<task><acc_suffix>`` is divided by its largest value over the kept rows,
    then the ``(score, accuracy / max)`` pairs of every task are stacked (an encoder appears
    once per task) and one :func:`scipy.stats.pearsonr` is taken. Rows where the score or that
    task's accuracy is not finite are left out of that task.

    Kept for comparison only: it pools tasks whose accuracies differ in scale and difficulty
    (dividing by the maximum does not align them), the reference ran one seed, and it
    reported no test; its p-value treats the stacked pairs as independent (the same encoder
    counts once per task), so it says little. Pass one seed's rows to reproduce it.

    Raises:
        ValueError: a missing column (named), no task, fewer than 3 pooled pairs, or a task whose
            largest kept accuracy is not positive.
    """
    columns = _task_columns(table, tasks, acc_suffix)
    check_columns(table, [score, dim_col])
    min_dim = check_int(min_dim, "min_dim")
    kept = table[pd.to_numeric(table[dim_col], errors="coerce") >= min_dim]
    xs, ys = [], []
    for column in columns:
        pair = kept[[score, column]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        pair = pair[np.isfinite(pair).all(axis=1)]
        if pair.size == 0:
            continue
        top = pair[:, 1].max()
        if not top > 0:
            raise ValueError(f"the largest {column} over encoders with {dim_col} >= {min_dim} is {top}; "
                             "cannot divide by it")
        xs.append(pair[:, 0])
        ys.append(pair[:, 1] / top)
    x, y = (np.concatenate(v) if v else np.empty(0) for v in (xs, ys))
    if x.size < 3:
        raise NotMeasurable(f"need at least 3 pooled (encoder, task) pairs with {dim_col} >= {min_dim}; got {x.size}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        r, p = float("nan"), float("nan")
    else:
        r, p = (float(v) for v in stats.pearsonr(x, y))
    return ReferencePooled(r, p, int(x.size), tuple([tasks] if isinstance(tasks, str) else tasks))


def chance_normalised_mean(
    table: pd.DataFrame, tasks: Sequence[str], chance: Mapping[str, float], *, acc_suffix: str = "_1nn"
) -> pd.Series:
    """Per row, the mean over ``tasks`` of ``(accuracy - chance) / (1 - chance)`` (0 at chance,
    1 at perfect), ``chance[task]`` the task's chance level (e.g. 1 / n_classes). NaN where
    any task's accuracy is missing. Named :data:`AGGREGATE`.

    Raises:
        ValueError: a missing column, or a task without a chance level in ``[0, 1)``.
    """
    columns = _task_columns(table, tasks, acc_suffix)
    parts = []
    for task, column in zip([tasks] if isinstance(tasks, str) else tasks, columns, strict=True):
        if task not in chance:
            raise ValueError(f"no chance level for task {task!r}; give chance={{'{task}': 1 / n_classes, ...}}")
        c = check_real(chance[task], f"chance[{task!r}]", low=0.0, high=1.0, high_open=True)
        parts.append((pd.to_numeric(table[column], errors="coerce") - c) / (1 - c))
    return pd.concat(parts, axis=1).mean(axis=1, skipna=False).rename(AGGREGATE)


def per_task_correlations(
    table: pd.DataFrame,
    scores: Sequence[str],
    tasks: Sequence[str],
    *,
    acc_suffix: str = "_1nn",
    methods: Sequence[str] = ("spearman", "pearson"),
    chance: Mapping[str, float] | None = None,
    config_cols: Sequence[str] = ("method", "dim"),
    seed_col: str = "seed",
    n_resamples: int = 1000,
    n_permutations: int | None = None,
    confidence: float = 0.95,
    interval: str = "percentile",
    random_state: int = 0,
) -> pd.DataFrame:
    """Every score x task x method correlation (:func:`crossed_bootstrap`: seed-label-wise
    Fisher-z correlation across configurations, crossed percentile or BCa ``interval``,
    configuration-permutation p-value with its Monte-Carlo error ``p_se``), with Holm-adjusted
    p over the whole table. A Monte-Carlo p cannot fall below ``1 / (n_permutations + 1)``
    (``n_permutations`` defaults to ``n_resamples``); a row with too many undefined resamples
    has ``measurable = False`` and its ``reason``.

    With ``chance`` (a chance level per task), each score is also correlated with the
    chance-normalised mean accuracy (:func:`chance_normalised_mean`), in rows of ``kind =
    "aggregate"`` and ``task =`` :data:`AGGREGATE`, beside the per-task rows and inside the
    Holm family. A raw mean of accuracies over tasks is never formed.

    Every (score, target) pair draws its resamples from ``default_rng(random_state)``.

    Returns:
        ``score, task, target, kind, method, estimate, ci_low, ci_high, p_value, p_holm,
        n_configs, n_seeds, n_valid, p_se, measurable, reason``.

    Raises:
        ValueError: a missing column, an unknown method, and as :func:`crossed_bootstrap`.
    """
    scores = [scores] if isinstance(scores, str) else list(scores)
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    for m in methods:
        check_choice(m, METHODS, "method")
    confidence = check_confidence(confidence)
    columns = _task_columns(table, tasks, acc_suffix)
    check_columns(table, scores)
    targets = [(t, c, "task") for t, c in zip(tasks, columns, strict=True)]
    if chance is not None:
        table = table.assign(**{AGGREGATE: chance_normalised_mean(table, tasks, chance, acc_suffix=acc_suffix)})
        targets.append((AGGREGATE, AGGREGATE, "aggregate"))
    rows = []
    for score in scores:
        for task, target, kind in targets:
            for method in methods:
                res = crossed_bootstrap(table, score, target, config_cols=config_cols, seed_col=seed_col,
                                        method=method, n_resamples=n_resamples, n_permutations=n_permutations,
                                        confidence=confidence, interval=interval, random_state=random_state)
                rows.append({"score": score, "task": task, "target": target, "kind": kind, "method": method,
                             "estimate": res.estimate, "ci_low": res.low, "ci_high": res.high,
                             "p_value": res.p_value, "n_configs": res.n_configs, "n_seeds": res.n_seeds,
                             "n_valid": res.n_valid, "p_se": res.p_se, "measurable": res.measurable,
                             "reason": res.reason})
    out = pd.DataFrame(rows)
    out.insert(out.columns.get_loc("p_value") + 1, "p_holm", holm(out["p_value"].to_numpy(dtype=np.float64)))
    return out
