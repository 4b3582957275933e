"""Chapter 1, the model zoo: train (or load) it, its training curves, its downstream accuracy."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rmqm.experiments.engine import run_zoo
from rmqm.stats.intervals import per_seed, summarize_seeds, t_interval
from rmqm.stats.verdicts import format_interval
from rmqm.study.chapters.common import interval_pivot, probe_columns
from rmqm.training.checkpoints import load_model
from rmqm.training.zoo import family_summary

__all__ = ['build_zoo', 'zoo_headline', 'zoo_overview', 'training_curves', 'downstream_long', 'family_scores',
           'zoo_reading']


def build_zoo(
    results: str | os.PathLike,
    methods: Sequence[str],
    dims: Sequence[int],
    seeds: Sequence[int],
    *,
    data: str,
    arch: str,
    optimizers: Sequence[str],
    epochs: int,
    n_train: int | None,
    time_budget_s: float | None,
    n_eval: int | None,
    n_transfer: int | None,
    device: str = "cpu",
    scheduler: str | None = None,
) -> pd.DataFrame:
    """Train (or load from ``results/zoo``) every model of the zoo, score it with
    :func:`rmqm.training.zoo.train_zoo` and write the table to ``results/zoo.parquet``.

    Each model is a job of the engine (:func:`rmqm.experiments.engine.run_zoo`), run where
    ``scheduler`` says (None: in this process).

    Returns:
        the zoo table, one row per (method, dim, optimizer, seed) model.
    """
    results = Path(results)
    zoo = run_zoo(
        methods, dims, seeds, data=data, arch=arch, optimizers=optimizers, epochs=epochs, n_train=n_train,
        time_budget_s=time_budget_s, n_eval=n_eval, n_transfer=n_transfer, cache_dir=results / "zoo",
        device=device, scheduler=scheduler,
    )
    zoo.to_parquet(results / "zoo.parquet")
    return zoo


def zoo_headline(zoo: pd.DataFrame) -> str:
    """One line: how many models, encoders and seeds, the pretraining set, the transfer
    tasks and how many models a time budget stopped early."""
    tasks = sorted({c.rsplit("_", 1)[0] for c in probe_columns(zoo)})
    n_encoders = zoo.groupby(["method", "dim", "optimizer"]).ngroups
    return (f"{len(zoo)} models ({n_encoders} encoders x {zoo['seed'].nunique()} seeds) pretrained on "
            f"{zoo['data'].iloc[0]}; transfer tasks: {', '.join(tasks)}; "
            f"{int(zoo['stopped_early'].sum())} stopped early by a time budget")


def zoo_overview(zoo: pd.DataFrame) -> pd.DataFrame:
    """The zoo's configuration, training and score columns, rounded to 3 digits."""
    return zoo[["method", "family", "dim", "seed", "train_time_s", "epochs_completed", "final_loss",
                *probe_columns(zoo), "rankme", "alpha_req"]].round(3)


def training_curves(zoo: pd.DataFrame, zoo_dir: str | os.PathLike, window: int = 10) -> pd.DataFrame:
    """The training history of every trained model of the zoo, stacked.

    Args:
        zoo: the zoo table (its ``name`` column names each checkpoint in ``zoo_dir``).
        window: the per-step loss is smoothed by a trailing rolling mean over ``window`` steps.

    Returns:
        the history columns (``step``, ``loss``, ...) plus ``method``, ``dim`` (text ``"d=<dim>"``),
        ``seed`` and ``smoothed loss``; models without a history (random-init) are left out.

    Raises:
        ValueError: no model of the zoo has a training history.
    """
    histories = []
    for row in zoo.itertuples():
        h = load_model(row.name, zoo_dir).history
        if len(h):
            histories.append(h.assign(method=row.method, dim=f"d={row.dim}", seed=row.seed))
    if not histories:
        raise ValueError(f"no model of the zoo ({len(zoo)} models) has a training history")
    curves = pd.concat(histories, ignore_index=True)
    curves["smoothed loss"] = curves.groupby(["method", "dim", "seed"])["loss"].transform(
        lambda s: s.rolling(window, min_periods=1).mean())
    return curves


def downstream_long(zoo: pd.DataFrame) -> pd.DataFrame:
    """The zoo's accuracies in long form: ``method, family, dim, seed, task_probe, accuracy,
    task, probe``, one row per model and ``<task>_<probe>`` column."""
    acc = zoo.melt(id_vars=["method", "family", "dim", "seed"], value_vars=probe_columns(zoo),
                   var_name="task_probe", value_name="accuracy")
    acc[["task", "probe"]] = acc["task_probe"].str.rsplit("_", n=1, expand=True)
    return acc


def family_scores(zoo: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy and label-free scores per method family (:func:`family_summary`), rounded."""
    summary = family_summary(zoo)
    keep = set(probe_columns(zoo)) | {"rankme", "alpha_req"}
    return summary[[c for c in summary.columns if c in keep]].round(3)


def zoo_reading(zoo: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """What the zoo's k-NN accuracies say, over seeds.

    Returns:
        the lines to print (range and best encoder per task; the median half-width of one
        encoder's 95 % t-interval; how often trained encoders beat random-init, when the zoo
        has both) and the table of each encoder's accuracy ``"mean [low, high]"`` per task.
    """
    main = [c for c in probe_columns(zoo) if c.endswith("_knn")]
    acc_ci = summarize_seeds(zoo, main, by=["method", "dim", "optimizer"], bounds=(0, 1))
    lines = []
    for c in main:
        sub = acc_ci[acc_ci["metric"] == c]
        best = sub.loc[sub["mean"].idxmax()]
        lines.append(f"{c}: seed-mean accuracies from {sub['mean'].min():.3f} to {sub['mean'].max():.3f}; best: "
                     f"{best['method']} at d={best['dim']}, "
                     f"{format_interval(best['mean'], best['ci_low'], best['ci_high'], 3, False)}")
    half_width = ((acc_ci["ci_high"] - acc_ci["ci_low"]) / 2).median()
    lines.append(f"median half-width of one encoder's 95 % interval over {zoo['seed'].nunique()} seeds: "
                 f"{half_width:.3f} (differences between encoders smaller than this are not resolved)")
    random = zoo["family"] == "random"
    if random.any() and (~random).any():
        beats = per_seed(zoo, lambda rows: float(
            (rows.loc[rows["family"] != "random", main].mean() > rows.loc[rows["family"] == "random", main].mean())
            .mean()))
        m, lo, hi = t_interval(beats["value"], bounds=(0, 1))
        lines.append(f"trained encoders beat the random-init network on average in "
                     f"{format_interval(m, lo, hi, 2, False)} of the k-NN tasks "
                     "(fraction; mean over seeds, 95 % t-interval)")
    return lines, interval_pivot(acc_ci, ["method", "dim", "optimizer"], "metric")
