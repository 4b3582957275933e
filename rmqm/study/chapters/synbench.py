"""Chapter 4, SynBench: each zoo model's scores on the synthetic mixture, and the same
epsilon-robust linear probe on a real transfer task."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from rmqm.data.registry import load_dataset, transfer_tasks
from rmqm.experiments.cache import cached_synbench
from rmqm.experiments.store import ResultsStore
from rmqm.metrics.probes import embed_dataset
from rmqm.metrics.robust_probe import evaluate_robust_probe
from rmqm.stats.intervals import per_seed, summarize_seeds, t_interval
from rmqm.stats.verdicts import format_interval
from rmqm.study.chapters.common import interval_pivot, model_meta
from rmqm.study.chapters.external import external_names, load_external, zoo_model

__all__ = ['S_MAX', 'mean_scales', 'synbench_headline', 'synbench_zoo', 'synbench_intervals', 'synbench_score_table',
           'probe_task', 'normalized_features', 'robust_probe_zoo', 'robust_means', 'robust_table', 'tradeoff_summary']

#: Largest mean scale ``s`` of the synthetic mixtures (the reference's).
S_MAX = 4.9
#: Datasets that have no separate test split: the robust probe subsamples all of them.
_NO_TEST_SPLIT = ("digits", "faces", "textures")
_LOST, _GAINED = "accuracy lost (eps max vs 0)", "margin gained (eps max vs 0)"


def mean_scales(step: float, s_max: float = S_MAX) -> list[float]:
    """The mean scales ``s = step, 2 step, ...`` up to ``s_max`` (inclusive, to 1e-9), rounded to 6 digits.

    Raises:
        ValueError: ``step`` is not a positive number or exceeds ``s_max``.
    """
    if not np.isfinite(step) or not 0 < step <= s_max:
        raise ValueError(f"syn_s_step must be in (0, {s_max}]; got {step!r}")
    return [round(float(s), 6) for s in np.arange(step, s_max + 1e-9, step)]


def synbench_headline(zoo: pd.DataFrame, s_values: Sequence[float], n_samples: int) -> str:
    """One line: how many models and seeds are scored, on which mean scales, with how many samples."""
    return (f"{len(zoo)} models ({zoo['seed'].nunique()} seeds), {len(s_values)} mean scales s from {s_values[0]} "
            f"to {s_values[-1]}, {n_samples} train + {n_samples} test samples each")


def synbench_zoo(
    zoo: pd.DataFrame,
    results: str | os.PathLike,
    s_values: Sequence[float],
    epsilons: Sequence[float],
    n_samples: int,
    n_bootstrap: int,
    batch_size: int,
    device: str = "cpu",
) -> dict[str, pd.DataFrame]:
    """SynBench of every zoo model (checkpoints in ``results/zoo``, cached in the store
    ``results/store``), each with its own seed; writes the scores to
    ``results/synbench_scores.parquet``.

    Args:
        n_samples: train and test samples per mean scale.

    Returns:
        ``{"curves", "scores", "table"}`` of all models stacked, each row with ``name, method,
        family, dim, optimizer, seed`` (see :func:`rmqm.experiments.cache.cached_synbench`).
    """
    results = Path(results)
    store = ResultsStore(results / "store")
    parts: dict[str, list[pd.DataFrame]] = {"curves": [], "scores": [], "table": []}
    external = load_external(results, device)  # the user encoders of the study, measured beside the zoo
    for row in zoo.itertuples():
        model = zoo_model(row.name, results, external, device)
        shape = (int(model.train_info["in_channels"]), *map(int, model.train_info["input_size"]))
        t = cached_synbench(store, row.name, model.encoder, shape, s_values=s_values, epsilons=epsilons,
                            n_train=n_samples, n_test=n_samples, n_bootstrap=n_bootstrap,
                            batch_size=batch_size, seed=int(row.seed), device=device)
        for key, tables in parts.items():
            tables.append(t[key].assign(**model_meta(row)))
    out = {key: pd.concat(tables, ignore_index=True) for key, tables in parts.items()}
    out["scores"].to_parquet(results / "synbench_scores.parquet")
    return out


def synbench_intervals(scores: pd.DataFrame) -> pd.DataFrame:
    """SynBench score of each encoder per epsilon and threshold: the mean over seeds with a
    95 % t-interval (clipped at 0: a ratio of areas), as :func:`summarize_seeds` gives it."""
    return summarize_seeds(scores, "score", by=["method", "dim", "optimizer", "epsilon", "threshold"],
                           bounds=(0, np.inf))


def synbench_score_table(score_ci: pd.DataFrame, thresholds: Sequence[float] = (0.6, 0.7, 0.8, 0.9)) -> pd.DataFrame:
    """:func:`synbench_intervals` at ``thresholds`` as text ``"mean [low, high]"``, one row
    per encoder and one column per (epsilon, threshold)."""
    shown = score_ci[score_ci["threshold"].round(2).isin(list(thresholds))]
    return interval_pivot(shown, ["method", "dim", "optimizer"], ["epsilon", "threshold"])


def probe_task(pretraining: str) -> tuple[str, str]:
    """The real task of the robust probe, the first transfer task of ``pretraining``, and the
    split it is drawn from (``"all"`` for datasets without a test split)."""
    task = transfer_tasks(pretraining)[0]
    return task, "all" if task in _NO_TEST_SPLIT else "test"


def normalized_features(model: Any, dataset: Any, device: str = "cpu") -> np.ndarray:
    """L2-normalised float64 embeddings ``(N, d)`` of ``dataset``'s images, resized to the
    model's training input size, by a :class:`~rmqm.training.checkpoints.TrainedModel`."""
    size = tuple(int(v) for v in model.train_info["input_size"])
    z = embed_dataset(model.encoder, dataset.resized(size).images, device=device).double()
    return torch.nn.functional.normalize(z, dim=1).numpy()


def robust_probe_zoo(
    zoo: pd.DataFrame,
    results: str | os.PathLike,
    probe_n: int,
    epsilons: Sequence[float],
    device: str = "cpu",
) -> tuple[pd.DataFrame, str]:
    """The epsilon-robust linear probe on frozen embeddings of a real task, for every zoo model.

    Each seed subsamples ``probe_n`` images of the task (:func:`probe_task`) and splits them
    in halves with its own seed; every model of that seed is fitted on one half and tested on
    the other. Writes the table to ``results/robust_probe.parquet``.

    Returns:
        the table (``epsilon, accuracy, mean_certified_margin, method, family, dim,
        optimizer, seed``, one row per model and epsilon) and the task's name.
    """
    results = Path(results)
    task, split = probe_task(zoo["data"].iloc[0])
    halves = {s: load_dataset(task, split=split, n=probe_n, seed=int(s)).split(0.5, seed=int(s))
              for s in sorted(zoo["seed"].unique())}
    rows = []
    external = load_external(results, device)
    for row in zoo.itertuples():
        model = zoo_model(row.name, results, external, device)
        train, test = halves[row.seed]
        res = evaluate_robust_probe(normalized_features(model, train, device), train.labels.numpy(),
                                    normalized_features(model, test, device), test.labels.numpy(), epsilons=epsilons)
        rows.append(res.assign(method=row.method, family=row.family, dim=row.dim, optimizer=row.optimizer,
                               seed=row.seed))
    robust = pd.concat(rows, ignore_index=True)
    robust.to_parquet(results / "robust_probe.parquet")
    return robust, task


def robust_means(robust: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and mean certified margin of each encoder and epsilon, means over seeds."""
    return robust.groupby(["method", "dim", "optimizer", "epsilon"])[
        ["accuracy", "mean_certified_margin"]].mean().reset_index()


def robust_table(means: pd.DataFrame) -> pd.DataFrame:
    """:func:`robust_means` with one row per encoder and one column per (quantity, epsilon), rounded."""
    return means.pivot_table(index=["method", "dim", "optimizer"], columns="epsilon",
                             values=["accuracy", "mean_certified_margin"]).round(3)


def tradeoff_summary(robust: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """What the largest epsilon buys against epsilon 0, per encoder and over seeds.

    Returns:
        three lines (the fraction of encoders that gain margin, the fraction that lose
        accuracy, the median accuracy change; means over seeds with 95 % t-intervals; the zoo's
        encoders only) and the mean accuracy lost and margin gained of each encoder (the user's
        encoders too), rounded to 3 digits.
    """
    trade = robust.groupby(["method", "dim", "optimizer", "seed"]).apply(
        lambda g: pd.Series({
            _LOST: g.loc[g["epsilon"].idxmin(), "accuracy"] - g.loc[g["epsilon"].idxmax(), "accuracy"],
            _GAINED: g.loc[g["epsilon"].idxmax(), "mean_certified_margin"]
            - g.loc[g["epsilon"].idxmin(), "mean_certified_margin"],
        }), include_groups=False).reset_index()
    mine = external_names(robust)  # the user encoders are shown, not counted among the zoo's encoders
    per = per_seed(trade[~trade["method"].isin(mine)], lambda s: {
        "gains margin (fraction of encoders)": float((s[_GAINED] > 0).mean()),
        "costs accuracy (fraction of encoders)": float((s[_LOST] > 0).mean()),
        "median accuracy change": float(-s[_LOST].median()),
    })
    lines = []
    for col in per.columns.drop("seed"):
        bounds = (-1, 1) if col == "median accuracy change" else (0, 1)
        m, lo, hi = t_interval(per[col], bounds=bounds)
        lines.append(f"{col}: {format_interval(m, lo, hi, 3, signed=bounds[0] < 0)} over {len(per)} seeds")
    return lines, trade.groupby(["method", "dim", "optimizer"])[[_LOST, _GAINED]].mean().round(3)
