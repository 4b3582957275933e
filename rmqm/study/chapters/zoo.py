"""Chapter 1, the model zoo: train (or load) it, its training curves, its downstream accuracy."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rmqm.experiments.engine import run_zoo
from rmqm.stats.design import variance_breakdown
from rmqm.stats.intervals import per_seed, summarize_seeds, t_interval
from rmqm.stats.verdicts import format_interval
from rmqm.study.chapters.common import interval_pivot, probe_columns
from rmqm.study.chapters.external import zoo_only
from rmqm.training.checkpoints import load_model
from rmqm.training.configs import TrainingConfig
from rmqm.training.curves import plateau_table
from rmqm.training.zoo import family_summary

__all__ = ['INDIST_PROBES', 'build_zoo', 'headline_checkpoints', 'zoo_headline', 'zoo_overview', 'training_times',
           'training_curves', 'learning_curves_long', 'plateau_summary', 'downstream_long', 'family_scores',
           'zoo_reading', 'seed_variance']

#: The in-distribution accuracy columns of the zoo table and their labels in the learning curves.
INDIST_PROBES: dict[str, str] = {"indist_knn": "in-distribution k-NN", "indist_linear": "in-distribution linear"}
_MODEL = ["method", "dim", "optimizer", "seed"]


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
    checkpoints: Sequence[int] | None = None,
    train_batch_size: int = 128,
    accumulate: int = 1,
    n_train: int | None,
    time_budget_s: float | None,
    n_eval: int | None,
    n_transfer: int | None,
    device: str = "cpu",
    scheduler: str | None = None,
) -> pd.DataFrame:
    """Train (or load from ``results/zoo``) every model of the zoo, score it at every
    checkpoint with :func:`rmqm.training.zoo.train_zoo`, and write two tables:
    ``results/zoo_checkpoints.parquet`` (every checkpoint: the learning curves) and
    ``results/zoo.parquet`` (:func:`headline_checkpoints`: the model the later chapters measure).

    Each model is a job of the engine (:func:`rmqm.experiments.engine.run_zoo`), run where
    ``scheduler`` says (None: in this process).

    Args:
        epochs, checkpoints: train ``max(checkpoints)`` epochs (``epochs`` when None) and keep a
            model after each checkpoint epoch.
        train_batch_size, accumulate: images per step and steps per optimiser update.

    Returns:
        the table of every checkpoint, one row per (method, dim, optimizer, seed, epoch).
    """
    results = Path(results)
    training = TrainingConfig(data, arch=arch, epochs=epochs, batch_size=train_batch_size, accumulate=accumulate,
                              n_train=n_train, time_budget_s=time_budget_s)
    zoo = run_zoo(
        methods, dims, seeds, data=data, training=training, optimizers=optimizers,
        checkpoints=None if checkpoints is None else list(checkpoints), n_eval=n_eval, n_transfer=n_transfer,
        cache_dir=results / "zoo", device=device, scheduler=scheduler, progress=True,
    )
    zoo.to_parquet(results / "zoo_checkpoints.parquet")
    headline_checkpoints(zoo).to_parquet(results / "zoo.parquet")
    return zoo


def headline_checkpoints(zoo: pd.DataFrame) -> pd.DataFrame:
    """The last checkpoint of every model (method, dim, optimizer, seed): the encoder the
    later chapters measure. A zoo without an ``epoch`` column is returned as it is."""
    if "epoch" not in zoo.columns:
        return zoo
    last = zoo.groupby(_MODEL)["epoch"].transform("max")
    return zoo[zoo["epoch"] == last].reset_index(drop=True)


def zoo_headline(zoo: pd.DataFrame) -> str:
    """One line: how many models, encoders, seeds and checkpoints, the pretraining set, the
    transfer tasks and how many models a time budget stopped early."""
    tasks = sorted({c.rsplit("_", 1)[0] for c in probe_columns(zoo)})
    final = headline_checkpoints(zoo)
    n_encoders = final.groupby(["method", "dim", "optimizer"]).ngroups
    epochs = sorted(int(e) for e in zoo["epoch"].unique() if e > 0) if "epoch" in zoo.columns else []
    kept = f"; checkpoints kept after epochs {epochs}" if epochs else ""
    return (f"{len(final)} models ({n_encoders} encoders x {final['seed'].nunique()} seeds) pretrained on "
            f"{zoo['data'].iloc[0]}{kept}; transfer tasks: {', '.join(tasks)}; "
            f"{int(final['stopped_early'].sum())} stopped early by a time budget")


def zoo_overview(zoo: pd.DataFrame) -> pd.DataFrame:
    """The zoo's configuration, training and score columns of the last checkpoints
    (:func:`headline_checkpoints`), rounded to 3 digits; ``final_loss`` reads "not trained"
    for the random init. No wall time: it measures the machine's load, not the encoder
    (:func:`training_times` gives it for the reproducibility page)."""
    final = headline_checkpoints(zoo)
    indist = [c for c in INDIST_PROBES if c in final.columns]
    first = [c for c in ("method", "family", "dim", "seed", "epoch") if c in final.columns]
    table = final[[*first, "final_loss", *indist, *probe_columns(final), "rankme",
                   "alpha_req"]].round(3)
    # the random init has no training loss: say so rather than print nan
    return table.assign(final_loss=table["final_loss"].astype(object).where(table["final_loss"].notna(), "not trained"))


def training_times(zoo: pd.DataFrame) -> pd.DataFrame:
    """Training wall time (seconds) of the last checkpoints per method and dimension: ``method,
    dim, models, mean_s, min_s, max_s`` over seeds (and optimisers), the random init and the
    user encoders (never trained here) left out. Load-dependent: for the reproducibility page,
    never a result.

    Raises:
        ValueError: the table has no ``train_time_s`` column.
    """
    if "train_time_s" not in zoo.columns:
        raise ValueError("the zoo table lacks train_time_s (rmqm.training.zoo.train_zoo writes it)")
    final = headline_checkpoints(zoo_only(zoo))
    trained = final[final["family"] != "random"]
    out = trained.groupby(["method", "dim"], sort=True)["train_time_s"].agg(
        models="size", mean_s="mean", min_s="min", max_s="max").reset_index()
    return out.round({"mean_s": 1, "min_s": 1, "max_s": 1})


def learning_curves_long(zoo: pd.DataFrame) -> pd.DataFrame:
    """The in-distribution accuracies of every trained checkpoint in long form (the random
    init, never trained, has no curve): ``method, dim, seed, epoch, probe`` (a label of
    :data:`INDIST_PROBES`) and ``accuracy``.

    Raises:
        ValueError: the table has no ``epoch`` or in-distribution column, or no trained model.
    """
    missing = [c for c in ("epoch", *INDIST_PROBES) if c not in zoo.columns]
    if missing:
        raise ValueError(f"the zoo table lacks {missing}: train it with checkpoints (rmqm.training.zoo.train_zoo)")
    trained = zoo[(zoo["family"] != "random") & (zoo["epoch"] > 0)]
    if trained.empty:
        raise ValueError("the zoo has no trained checkpoint: every model is a random init")
    long = trained.melt(id_vars=["method", "dim", "seed", "epoch"], value_vars=list(INDIST_PROBES),
                        var_name="probe", value_name="accuracy")
    return long.assign(probe=long["probe"].map(INDIST_PROBES))


def plateau_summary(zoo: pd.DataFrame, tolerance: float = 0.01) -> tuple[list[str], pd.DataFrame]:
    """Did each trained encoder reach a plateau? (:func:`rmqm.training.curves.plateau_table` on
    in-distribution k-NN accuracy: the last doubling of epochs gained less than ``tolerance``.)

    Returns:
        one line per dimension naming the encoders on a plateau and those still improving (with
        their gain in points), and the plateau table of the trained encoders (rounded).
    """
    table = plateau_table(zoo_only(zoo), "indist_knn", tolerance)  # the user encoders were not trained here
    table = table[table["family"] != "random"].reset_index(drop=True)
    lines = []
    for dim, rows in table.groupby("dim"):
        def names(sub: pd.DataFrame) -> str:
            return ", ".join(f"{r.method} ({100 * r.gain:+.1f} points, epoch {r.previous_epoch} -> {r.final_epoch})"
                             for r in sub.itertuples()) or "none"
        flat = rows[rows["plateau"]]
        rising = rows[~rows["plateau"]]
        lines.append(f"d={dim}: on a plateau (gain < {100 * tolerance:g} point of in-distribution k-NN accuracy "
                     f"over the last doubling): {names(flat)}; still improving: {names(rising)}")
    n_flat = int(table["plateau"].sum())
    lines.append(f"{n_flat} of {len(table)} trained encoders are on a plateau at their last checkpoint."
                 + ("" if n_flat == len(table) else " The others are compared before they have finished learning: "
                    "read their numbers as those of partly trained encoders."))
    keep = ["method", "dim", "optimizer", "previous_epoch", "final_epoch", "previous", "final", "gain", "n_seeds",
            "plateau"]
    return lines, table[keep].round(4)


def training_curves(zoo: pd.DataFrame, zoo_dir: str | os.PathLike, window: int = 10) -> pd.DataFrame:
    """The training history of every trained model of the zoo, stacked.

    Args:
        zoo: the zoo table (its ``name`` column names each checkpoint in ``zoo_dir``); the
            history of each model's last checkpoint is drawn (it holds the earlier epochs).
        window: the per-step loss is smoothed by a trailing rolling mean over ``window`` steps.

    Returns:
        the history columns (``step``, ``loss``, ...) plus ``method``, ``dim`` (text ``"d=<dim>"``),
        ``seed`` and ``smoothed loss``; models without a history (random-init) are left out.

    Raises:
        ValueError: no model of the zoo has a training history.
    """
    histories = []
    for row in headline_checkpoints(zoo_only(zoo)).itertuples():  # the user encoders have no history here
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
    """The zoo's accuracies (last checkpoints) in long form: ``method, family, dim, seed,
    task_probe, accuracy, task, probe``, one row per model and ``<task>_<probe>`` column."""
    acc = headline_checkpoints(zoo).melt(id_vars=["method", "family", "dim", "seed"], value_vars=probe_columns(zoo),
                   var_name="task_probe", value_name="accuracy")
    acc[["task", "probe"]] = acc["task_probe"].str.rsplit("_", n=1, expand=True)
    return acc


def family_scores(zoo: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy and label-free scores per method family (:func:`family_summary`), rounded."""
    summary = family_summary(headline_checkpoints(zoo))
    keep = set(probe_columns(zoo)) | {"rankme", "alpha_req"}
    return summary[[c for c in summary.columns if c in keep]].round(3)


def zoo_reading(zoo: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """What the zoo's k-NN accuracies say, over seeds (the user encoders of the study,
    :mod:`~rmqm.study.chapters.external`, are in the table but not in the lines).

    Returns:
        the lines to print (range and best encoder per task; the median half-width of one
        encoder's 95 % t-interval; how often trained encoders beat random-init, when the zoo
        has both) and the table of each encoder's accuracy ``"mean [low, high]"`` per task.
    """
    everything = headline_checkpoints(zoo)
    zoo = zoo_only(everything)  # the lines describe the zoo; the table shows the user encoders too
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
    shown = summarize_seeds(everything, main, by=["method", "dim", "optimizer"], bounds=(0, 1))
    return lines, interval_pivot(shown, ["method", "dim", "optimizer"], "metric")


def seed_variance(zoo: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """How much of each accuracy (and label-free score) is seed: the configuration x seed
    variance breakdown (:func:`rmqm.stats.design.variance_breakdown`) of the zoo's last
    checkpoints, user encoders left out. ``columns`` default: the k-NN, 1-NN and linear
    accuracies, RankMe and alpha-ReQ.

    Returns:
        ``quantity, configurations x seeds, configuration %, seed shift %, configuration x seed %``
        (shares of the variance; a seed shift is shared by every encoder of one seed and cancels in
        a within-seed comparison, the configuration x seed part does not).
    """
    zoo = zoo_only(headline_checkpoints(zoo))
    if columns is None:
        columns = [c for c in probe_columns(zoo) if c.endswith(("_knn", "_1nn", "_linear"))]
        columns += [c for c in ("rankme", "alpha_req") if c in zoo.columns]
    out = variance_breakdown(zoo, list(columns), config_cols=["method", "dim", "optimizer"])
    return pd.DataFrame({
        "quantity": out["column"], "configurations x seeds": [f"{c} x {s}" for c, s in
                                                              zip(out["n_configs"], out["n_seeds"], strict=True)],
        "configuration %": (100 * out["share_config"]).round(1),
        "seed shift %": (100 * out["share_seed_shift"]).round(1),
        "configuration x seed %": (100 * (out["share_seed"] - out["share_seed_shift"])).round(1)})
