"""Chapter 5, do task-free scores predict downstream accuracy? The pre-registered confirmatory
families (``book/endpoints.yaml``: RMQM under noise against 1-NN accuracy per task; SynBench at
the reference's setting against linear-probe accuracy per task, without and with the added
encoders), Holm within each family, crossed bootstrap intervals and configuration-permutation
p-values; everything else exploratory (estimate and interval, no verdict); the reference
notebook's own statistic beside them.

The verdict table (``results/verdicts.parquet``) has one row per test: ``claim, family, endpoint
(confirmatory/exploratory), analysis, score, baseline, task, target, method, zoo, encoders,
expected_sign``, the fields of :data:`rmqm.study.chapters.families.RESULT_FIELDS`, ``p_holm,
verdict, detectable, leave_one_out``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rmqm._utils.validation import NotMeasurable
from rmqm.data.registry import load_dataset
from rmqm.stats.inference import crossed_bootstrap, paired_bootstrap_difference
from rmqm.stats.tasks import AGGREGATE, chance_normalised_mean, reference_pooled_correlation
from rmqm.stats.verdicts import ExpectedSign, expected_sign_alpha_req, format_interval
from rmqm.study.chapters.common import PROBES, load_zoo, probe_columns
from rmqm.study.chapters.external import zoo_only
from rmqm.study.chapters.families import (
    EXPLORATORY,
    RESULT_FIELDS,
    family_lines,
    family_verdicts,
    result_row,
    sensitivity,
    verdict_view,
)
from rmqm.study.endpoints import Endpoints, load_endpoints

__all__ = [
    'PRIMARY_TASK', 'CONFIG', 'ZOOS', 'ALPHA', 'SYNBENCH_REFERENCE', 'CHANCE_CLASSES', 'INTERVAL', 'rmqm_column',
    'score_columns', 'transfer_tasks', 'chance_levels', 'primary_task', 'alpha_expectation', 'score_labels',
    'score_table', 'score_headline', 'score_overview', 'endpoint_rows', 'verdicts', 'reference_comparison',
    'family_lines', 'verdict_view',
]

#: The task of the exploratory head-to-head, partial and within-dimension rows (the confirmatory
#: families of ``book/endpoints.yaml`` test every task).
PRIMARY_TASK = "fashion-mnist"
#: The column of SynBench at the setting of the ``synbench-reference`` family.
SYNBENCH_REFERENCE = "synbench_reference"
#: The columns that name a configuration (one encoder up to its seed) for the bootstrap.
CONFIG: tuple[str, ...] = ("method", "dim", "optimizer")
#: The two zoos every analysis runs on: all encoders, and without the random-init ones.
ZOOS: tuple[str, ...] = ("all encoders", "without random-init")
#: alpha-ReQ oriented so that its authors' claim predicts a positive correlation.
ALPHA = "alpha_req_oriented"
#: Classes of each known transfer task (chance level 1 / n); others are read from the registry.
CHANCE_CLASSES: dict[str, int] = {"fashion-mnist": 10, "mnist": 10, "animal-mnist": 10, "digits": 10, "faces": 2,
                                  "textures": 3, "kmnist": 10, "cifar10": 10, "caltech101": 101}
#: The bootstrap interval of every row (percentile of the crossed resamples).
INTERVAL = "percentile"
_RMQM_ORDER = ("noise", "pgd-reference", "pgd-own-loss", "pgd-displacement", "pgd")
_COLUMNS = ["claim", "family", "endpoint", "analysis", "score", "baseline", "task", "target", "method", "zoo",
            "encoders", "expected_sign", *RESULT_FIELDS]


def rmqm_column(perturbation: str) -> str:
    """``rmqm_<perturbation with - as _>``: ``"pgd-own-loss"`` -> ``"rmqm_pgd_own_loss"``."""
    return "rmqm_" + perturbation.replace("-", "_")


def score_columns(table: pd.DataFrame) -> list[str]:
    """The task-free scores of a :func:`score_table`: every ``rmqm_*`` column (noise first, in
    the order of the RMQM settings), then ``synbench``, ``rankme`` and :data:`ALPHA`."""
    order = {rmqm_column(p): i for i, p in enumerate(_RMQM_ORDER)}
    rmqm = sorted((c for c in table.columns if c.startswith("rmqm_")), key=lambda c: (order.get(c, 99), c))
    return [*rmqm, *(c for c in ("synbench", SYNBENCH_REFERENCE, "rankme", ALPHA) if c in table.columns)]


def transfer_tasks(table: pd.DataFrame) -> list[str]:
    """The zoo's transfer tasks, from its ``<task>_<probe>`` columns, in table order."""
    return list(dict.fromkeys(c.rsplit("_", 1)[0] for c in probe_columns(table)))


@functools.cache
def _registry_classes(task: str) -> int:
    return int(load_dataset(task).n_classes)


def chance_levels(tasks: Sequence[str], classes: Callable[[str], int] = _registry_classes) -> dict[str, float]:
    """``1 / n_classes`` of each task: from :data:`CHANCE_CLASSES`, else ``classes(task)`` (by
    default the data registry's ``load_dataset(task).n_classes``, cached).

    Raises:
        ValueError: a task neither known nor loadable (add it to :data:`CHANCE_CLASSES`).
    """
    out = {}
    for task in tasks:
        try:
            n = CHANCE_CLASSES[task] if task in CHANCE_CLASSES else classes(task)
        except Exception as err:
            raise ValueError(f"no chance level for task {task!r} ({err}); add its class count to "
                             "downstream.CHANCE_CLASSES") from None
        out[task] = 1.0 / n
    return out


def primary_task(tasks: Sequence[str]) -> tuple[str, str]:
    """The task of the exploratory head-to-head, partial and within-d rows and a sentence saying
    which it is and why (the confirmatory families test every task).

    Raises:
        ValueError: no task."""
    if not tasks:
        raise ValueError("the zoo has no transfer task (no <task>_<probe> columns)")
    if PRIMARY_TASK in tasks:
        return PRIMARY_TASK, f"The head-to-head, partial and within-d rows use {PRIMARY_TASK}, as declared."
    return tasks[0], (f"This zoo has no {PRIMARY_TASK} task, so the head-to-head, partial and within-d rows use "
                      f"its first transfer task, {tasks[0]}.")


def alpha_expectation(table: pd.DataFrame) -> ExpectedSign:
    """alpha-ReQ's expected sign derived from the measured alphas of the zoo
    (:func:`rmqm.stats.verdicts.expected_sign_alpha_req`; the user encoders of the study,
    :func:`rmqm.study.chapters.external.zoo_only`, do not change it)."""
    return expected_sign_alpha_req(zoo_only(table)["alpha_req"])


def score_labels(synbench_threshold: float, columns: Sequence[str] = (), alpha: ExpectedSign | None = None
                 ) -> dict[str, str]:
    """Readable names of the scores (axis labels, claims); ``alpha`` names the orientation of :data:`ALPHA`."""
    labels = {"synbench": f"SynBench (t = {synbench_threshold})", SYNBENCH_REFERENCE: "SynBench (reference setting)",
              "rankme": "RankMe (effective rank)",
              ALPHA: "alpha-ReQ" + ("" if alpha is None else " (-|alpha - 1|)" if alpha.column != alpha.source
                                    else " (-alpha)" if alpha.sign == "negative" else " (alpha)")}
    for c in columns:
        if c.startswith("rmqm_"):
            labels[c] = "RMQM, " + ("white noise" if c == "rmqm_noise" else c[5:].replace("_", " ").upper()
                                    .replace("OWN LOSS", "own loss").replace("REFERENCE", "reference")
                                    .replace("DISPLACEMENT", "displacement"))
    return labels


def score_table(results: str | os.PathLike, synbench_threshold: float, synbench_epsilon: float,
                endpoints: Endpoints | None = None) -> pd.DataFrame:
    """The zoo with every model's task-free scores; written to ``results/all_scores.parquet``.

    Adds ``rmqm_<perturbation>`` (:func:`rmqm_column`) for each perturbation of
    ``rmqm_scores.parquet``, ``synbench`` (at ``synbench_threshold`` and ``synbench_epsilon``)
    :data:`SYNBENCH_REFERENCE` (at the threshold and epsilon of the ``synbench-reference`` family of
    ``endpoints``, default ``book/endpoints.yaml``, when notebook 04 computed them) and :data:`ALPHA`:
    alpha-ReQ transformed by :func:`alpha_expectation` and multiplied by -1 when its expected sign
    is negative, so that every score's claim is a positive correlation.

    Raises:
        FileNotFoundError: a table is missing (run the notebooks it depends on first).
        ValueError: no SynBench score at that threshold and epsilon.
    """
    results = Path(results)
    zoo = load_zoo(results)
    for name in ("rmqm_scores.parquet", "synbench_scores.parquet"):
        if not (results / name).is_file():
            raise FileNotFoundError(f"no table {results / name}; run the notebooks this one depends on first")
    # a model is (name, seed): a user encoder of the study has one name and a row per zoo seed
    rmqm_scores = pd.read_parquet(results / "rmqm_scores.parquet")
    on = ["name", "seed"] if "seed" in rmqm_scores.columns else ["name"]
    rmqm = rmqm_scores.pivot_table(index=on, columns="perturbation", values="rmqm")
    table = zoo.merge(rmqm.rename(columns=rmqm_column).reset_index().rename_axis(columns=None), on=on)
    synbench = pd.read_parquet(results / "synbench_scores.parquet")
    sel = synbench[np.isclose(synbench["threshold"], synbench_threshold)
                   & np.isclose(synbench["epsilon"], synbench_epsilon)]
    if sel.empty:
        raise ValueError(f"no SynBench score at threshold {synbench_threshold}, epsilon {synbench_epsilon}")
    on = ["name", "seed"] if "seed" in sel.columns else ["name"]
    table = table.merge(sel[[*on, "score"]].rename(columns={"score": "synbench"}), on=on)
    ref = (endpoints or load_endpoints()).family("synbench-reference")
    at = synbench[np.isclose(synbench["threshold"], ref.get("threshold")) & np.isclose(synbench["epsilon"],
                                                                                        ref.get("epsilon"))]
    if len(at):
        table = table.merge(at[[*on, "score"]].rename(columns={"score": SYNBENCH_REFERENCE}), on=on, how="left")
    alpha = alpha_expectation(table)
    table[ALPHA] = alpha.values(table) * (-1.0 if alpha.sign == "negative" else 1.0)
    table.to_parquet(results / "all_scores.parquet")
    return table


def score_headline(table: pd.DataFrame) -> str:
    """One line: how many models, encoders and seeds the scores cover."""
    return (f"{len(table)} models: {table.groupby(['method', 'dim', 'optimizer']).ngroups} encoders x "
            f"{table['seed'].nunique()} seeds")


def score_overview(table: pd.DataFrame) -> pd.DataFrame:
    """Mean of each score and each ``<task>_1nn`` / ``<task>_linear`` accuracy per encoder over seeds."""
    acc = [c for c in probe_columns(table) if c.endswith(("_1nn", "_linear"))]
    return table.groupby(["method", "family", "dim", "optimizer"])[[*score_columns(table), *acc]].mean().round(3)


def _zoo(table: pd.DataFrame, zoo: str) -> pd.DataFrame:
    return table if zoo == ZOOS[0] else table[table["family"] != "random"]


def _name(score: str) -> str:
    """A score's name in a claim: ``"RMQM (PGD own loss)"``, ``"SynBench"``, ``"alpha-ReQ"``."""
    if score.startswith("rmqm_"):
        setting = score[5:].replace("_", " ")
        return "RMQM (" + ("white noise" if setting == "noise" else setting.replace("pgd", "PGD")) + ")"
    return {"synbench": "SynBench", SYNBENCH_REFERENCE: "SynBench (reference setting)", "rankme": "RankMe",
            ALPHA: "alpha-ReQ"}.get(score, score)


def _target_name(task: str, probe: str) -> str:
    """``"1-NN accuracy on digits"`` or ``"mean chance-normalised linear accuracy over tasks"``."""
    word = {"1nn": "1-NN", "knn": "k-NN", "linear": "linear-probe"}.get(probe, probe)
    return (f"mean chance-normalised {word} accuracy over tasks" if task == AGGREGATE
            else f"{word} accuracy on {task}")


def _probe(score: str) -> str:
    """The probe each score's paper judges it by: linear for SynBench, 1-NN for the others."""
    return "linear" if score in ("synbench", SYNBENCH_REFERENCE) else "1nn"


def _family(endpoints: Endpoints, score: str, task: str, probe: str, zoo: str, method: str) -> str:
    """The confirmatory family a per-task row belongs to, or :data:`EXPLORATORY`."""
    for f in endpoints.families:
        column = SYNBENCH_REFERENCE if f.id == "synbench-reference" else f.get("score")
        if (f.kind == "correlation" and score == column and probe == f.get("probe") and task != AGGREGATE
                and zoo in f.get("zoos", ZOOS[:1])
                and method == "spearman"):
            return f.id
    return EXPLORATORY


def _safe(run: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``run(*args, **kwargs)``, or the :class:`~rmqm._utils.validation.NotMeasurable` it raised
    when the zoo is too small for it (its message is the row's reason, :func:`result_row`); any
    other error (a renamed column, a bad value) propagates."""
    try:
        return run(*args, **kwargs)
    except NotMeasurable as err:
        return err


def endpoint_rows(table: pd.DataFrame, zoo: str, *, n_resamples: int = 2000, confidence: float = 0.95,
                  random_state: int = 0, endpoints: Endpoints | None = None,
                  with_encoders: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """The tests of one zoo (``zoo`` one of :data:`ZOOS`), before Holm, each by
    :func:`rmqm.stats.inference.crossed_bootstrap` (one estimand: per seed label, capped Fisher z,
    mean over seeds):

    - per task: every score x task x probe, Spearman; Pearson too for each score with its own
      paper's probe, exploratory; the rows a family of ``endpoints`` declares are confirmatory;
    - with ``with_encoders`` (the zoo and the added encoders): the ``synbench-reference`` rows
      again on it (``encoders = "with"``), confirmatory when the family declares them;
    - the chance-normalised mean accuracy over tasks (:data:`AGGREGATE`), exploratory;
    - on the primary task: each RMQM setting and SynBench against RankMe and alpha-ReQ
      (:func:`paired_bootstrap_difference`), the partial correlation on log d (a covariate
      partialled within each seed) and the within-dimension correlation (strata pooled within
      each seed), exploratory.

    A test the zoo is too small for is a row of NaN, not measurable.
    """
    endpoints = endpoints or load_endpoints()
    sub = _zoo(table, zoo)
    tasks, scores = transfer_tasks(table), score_columns(table)
    primary = primary_task(tasks)[0]
    kw = dict(config_cols=CONFIG, n_resamples=n_resamples, confidence=confidence, interval=INTERVAL,
              random_state=random_state)
    chance = chance_levels(tasks)
    rows: list[dict[str, Any]] = []

    def add(claim: str, family: str, analysis: str, score: str, task: str, target: str, method: str,
            values: dict[str, Any], baseline: str = "", encoders: str = "without") -> None:
        rows.append({"claim": claim, "family": family, "endpoint": "exploratory" if family == EXPLORATORY
                     else "confirmatory", "analysis": analysis, "score": score, "baseline": baseline, "task": task,
                     "target": target, "method": method, "zoo": zoo, "encoders": encoders,
                     "expected_sign": "positive", **values})

    for probe in PROBES:
        aggregate = chance_normalised_mean(sub, tasks, chance, acc_suffix=f"_{probe}")
        frame = sub.assign(**{f"{AGGREGATE}_{probe}": aggregate})
        for score in scores:
            for task in [*tasks, AGGREGATE]:
                target = f"{AGGREGATE}_{probe}" if task == AGGREGATE else f"{task}_{probe}"
                for method in ["spearman", "pearson"] if probe == _probe(score) else ["spearman"]:
                    res = _safe(crossed_bootstrap, frame, score, target, method=method, **kw)
                    add(f"{_name(score)} ranks encoders by {_target_name(task, probe)}",
                        _family(endpoints, score, task, probe, zoo, method),
                        "chance-normalised aggregate" if task == AGGREGATE else "per task", score, task, target,
                        method, result_row(res))
    ref = endpoints.family("synbench-reference")
    if with_encoders is not None and "with" in ref.get("encoders", ()) and SYNBENCH_REFERENCE in scores:
        for task in tasks:
            target = f"{task}_{ref.get('probe')}"
            res = _safe(crossed_bootstrap, _zoo(with_encoders, zoo), SYNBENCH_REFERENCE, target, **kw)
            add(f"{_name(SYNBENCH_REFERENCE)} ranks encoders and the added encoders by "
                f"{_target_name(task, ref.get('probe'))}", _family(endpoints, SYNBENCH_REFERENCE, task,
                                                                    ref.get("probe"), zoo, "spearman"),
                "per task", SYNBENCH_REFERENCE, task, target, "spearman", result_row(res), encoders="with")
    for score in [c for c in scores if c.startswith("rmqm_") or c in ("synbench", SYNBENCH_REFERENCE)]:
        target = f"{primary}_{_probe(score)}"
        for baseline in ("rankme", ALPHA):
            res = _safe(paired_bootstrap_difference, sub, score, baseline, target, **kw)
            add(f"{_name(score)} predicts {_target_name(primary, _probe(score))} better than {_name(baseline)}",
                EXPLORATORY, "paired difference", score, primary, target, "spearman", result_row(res), baseline)
    for score in [c for c in ("rmqm_noise", "synbench", "rankme") if c in scores]:
        target = f"{primary}_{_probe(score)}"
        one_dim = sub["dim"].nunique() < 2
        res = None if one_dim else _safe(crossed_bootstrap, sub.assign(log_dim=np.log(sub["dim"].astype(float))),
                                         score, target, covariate="log_dim", **kw)
        add(f"{_name(score)} ranks encoders by {_target_name(primary, _probe(score))} at a fixed log d",
            EXPLORATORY, "partial on log d", score, primary, target, "spearman",
            result_row(res, "one dimension: nothing to control" if one_dim else "the zoo is too small for this test"))
        res = _safe(crossed_bootstrap, sub, score, target, strata_col="dim", **kw)
        add(f"{_name(score)} ranks encoders by {_target_name(primary, _probe(score))} within each d", EXPLORATORY,
            "within dim (pooled)", score, primary, target, "spearman", result_row(res))
    return rows


def verdicts(table: pd.DataFrame, results: str | os.PathLike, *, n_resamples: int = 2000, confidence: float = 0.95,
             alpha: float | None = None, random_state: int = 0, include_encoders: bool = False,
             endpoints: Endpoints | None = None, n_sim: int = 300) -> pd.DataFrame:
    """The verdict table of both :data:`ZOOS` (:func:`endpoint_rows`): Holm within each
    confirmatory family of ``endpoints`` (default ``book/endpoints.yaml``) at ``alpha`` (default
    the file's), no verdict for exploratory rows, and for confirmatory rows the detectable effect
    and leave-one-method-out range (:func:`rmqm.study.chapters.families.sensitivity`, ``n_sim``
    simulated zoos per row). Confirmatory rows first. Written to ``results/verdicts.parquet``.

    The user encoders of the study (family ``external``) are left out unless ``include_encoders``
    (:func:`rmqm.study.chapters.external.zoo_only`); the ``synbench-reference`` family also
    tests them beside the zoo (``encoders = "with"``) when its file declares it.
    """
    endpoints = endpoints or load_endpoints()
    alpha = endpoints.alpha if alpha is None else alpha
    full, table = table, zoo_only(table, include_encoders)
    has_external = len(full) > len(zoo_only(full))
    rows = [r for zoo in ZOOS for r in endpoint_rows(table, zoo, n_resamples=n_resamples, confidence=confidence,
                                                      random_state=random_state, endpoints=endpoints,
                                                      with_encoders=full if has_external else None)]
    frame = family_verdicts(pd.DataFrame(rows, columns=_COLUMNS), alpha)
    frames = {(z, e): _zoo(full if e == "with" else table, z) for z in ZOOS for e in ("without", "with")}
    frame = sensitivity(frame, lambda r: frames[(r["zoo"], r["encoders"])], config_cols=CONFIG, alpha=alpha,
                        n_sim=n_sim, random_state=random_state)
    frame["_order"] = frame["endpoint"].map({"confirmatory": 0, "exploratory": 1})
    out = frame.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    out.to_parquet(Path(results) / "verdicts.parquet")
    return out


def reference_comparison(table: pd.DataFrame, verdict: pd.DataFrame, results: str | os.PathLike,
                         include_encoders: bool = False) -> pd.DataFrame:
    """The reference notebook's statistic beside ours, for each RMQM setting: one Pearson r
    pooled over every transfer task of this zoo (each task's 1-NN accuracy divided by its
    largest, d > 3, the first seed; :func:`reference_pooled_correlation` -- the reference pools
    Omniglot only, which this zoo lacks) and our per-task Spearman estimates with their verdicts
    (all encoders). Written to ``results/reference_comparison.parquet``.

    Returns:
        ``score, reference_tasks, reference_seed, reference_r, reference_n`` and per task
        ``<task>: ours``. The user encoders are left out unless ``include_encoders`` (as :func:`verdicts`).
    """
    table = zoo_only(table, include_encoders)
    seed = sorted(table["seed"].unique())[0]
    tasks = transfer_tasks(table)
    rows = []
    for score in [c for c in score_columns(table) if c.startswith("rmqm_")]:
        ref = _safe(reference_pooled_correlation, table[table["seed"] == seed], score, tasks)
        row: dict[str, Any] = {"score": score, "reference_tasks": ", ".join(tasks), "reference_seed": seed,
                               "reference_r": np.nan if isinstance(ref, NotMeasurable) else ref.r,
                               "reference_n": 0 if isinstance(ref, NotMeasurable) else ref.n}
        for task in tasks:
            mine = verdict[(verdict["score"] == score) & (verdict["target"] == f"{task}_1nn")
                           & (verdict["method"] == "spearman") & (verdict["zoo"] == ZOOS[0])]
            row[f"{task}: ours"] = "" if mine.empty else (
                f"{format_interval(*mine[['estimate', 'ci_low', 'ci_high']].iloc[0])} {mine['verdict'].iloc[0]}")
        rows.append(row)
    out = pd.DataFrame(rows)
    out.to_parquet(Path(results) / "reference_comparison.parquet")
    return out
