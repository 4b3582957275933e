"""Chapter 5, do task-free scores predict downstream accuracy? Per-task endpoints declared
before the results, two-level bootstrap intervals, Holm-adjusted p-values, head-to-head tests
against the label-free baselines, and the reference notebook's own statistic beside them.

The verdict table (``results/verdicts.parquet``) has one row per test: ``claim, endpoint
(primary/secondary/exploratory), analysis, score, baseline, task, target, method, zoo,
expected_sign, estimate, ci_low, ci_high, p_value, holm_family, p_holm, verdict, n_configs,
n_seeds``. Holm runs within each endpoint tier (the two primary endpoints, the secondary rows,
the exploratory rows), so an exploratory grid cannot dilute a primary endpoint.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from rmqm.data.registry import load_dataset
from rmqm.stats.confounds import partial_correlation, within_dim_correlations
from rmqm.stats.inference import paired_bootstrap_difference, two_level_bootstrap
from rmqm.stats.tasks import AGGREGATE, chance_normalised_mean, reference_pooled_correlation
from rmqm.stats.verdicts import ExpectedSign, expected_sign_alpha_req, format_interval, verdict_table
from rmqm.study.chapters.common import PROBES, load_zoo, probe_columns
from rmqm.study.chapters.external import zoo_only

__all__ = [
    'PRIMARY_TASK', 'PRIMARY_ENDPOINTS', 'CONFIG', 'ZOOS', 'ALPHA', 'CHANCE_CLASSES', 'INTERVAL', 'rmqm_column',
    'score_columns', 'transfer_tasks', 'chance_levels', 'primary_task', 'alpha_expectation', 'score_labels',
    'score_table', 'score_headline', 'score_overview', 'endpoint_rows', 'verdicts', 'reference_comparison',
    'primary_lines', 'verdict_view',
]

#: The primary endpoints, declared before any result: per paper, (score, probe); Spearman
#: over the zoo's configurations (seeds averaged on the Fisher-z scale) on :data:`PRIMARY_TASK`,
#: all encoders (random-init included, as in the RMQM paper's zoo), two-level bootstrap interval.
PRIMARY_TASK = "fashion-mnist"
PRIMARY_ENDPOINTS: dict[str, tuple[str, str]] = {"RMQM": ("rmqm_noise", "1nn"), "SynBench": ("synbench", "linear")}
#: The columns that name a configuration (one encoder up to its seed) for the bootstrap.
CONFIG: tuple[str, ...] = ("method", "dim", "optimizer")
#: The two zoos every analysis runs on: all encoders, and without the random-init ones.
ZOOS: tuple[str, ...] = ("all encoders", "without random-init")
#: alpha-ReQ oriented so that its authors' claim predicts a positive correlation.
ALPHA = "alpha_req_oriented"
#: Classes of each known transfer task (chance level 1 / n); others are read from the registry.
CHANCE_CLASSES: dict[str, int] = {"fashion-mnist": 10, "mnist": 10, "animal-mnist": 10, "digits": 10, "faces": 2,
                                  "textures": 3, "kmnist": 10, "cifar10": 10, "caltech101": 101}
#: The bootstrap interval of every row (percentile of the two-level resamples).
INTERVAL = "percentile"
_RMQM_ORDER = ("noise", "pgd-reference", "pgd-own-loss", "pgd-displacement", "pgd")
_COLUMNS = ["claim", "endpoint", "analysis", "score", "baseline", "task", "target", "method", "zoo", "expected_sign",
            "estimate", "ci_low", "ci_high", "p_value", "n_configs", "n_seeds"]


def rmqm_column(perturbation: str) -> str:
    """``rmqm_<perturbation with - as _>``: ``"pgd-own-loss"`` -> ``"rmqm_pgd_own_loss"``."""
    return "rmqm_" + perturbation.replace("-", "_")


def score_columns(table: pd.DataFrame) -> list[str]:
    """The task-free scores of a :func:`score_table`: every ``rmqm_*`` column (noise first, in
    the order of the RMQM settings), then ``synbench``, ``rankme`` and :data:`ALPHA`."""
    order = {rmqm_column(p): i for i, p in enumerate(_RMQM_ORDER)}
    rmqm = sorted((c for c in table.columns if c.startswith("rmqm_")), key=lambda c: (order.get(c, 99), c))
    return [*rmqm, *(c for c in ("synbench", "rankme", ALPHA) if c in table.columns)]


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
    """The task of the primary endpoints and a sentence saying which it is and why.

    Raises:
        ValueError: no task."""
    if not tasks:
        raise ValueError("the zoo has no transfer task (no <task>_<probe> columns)")
    if PRIMARY_TASK in tasks:
        return PRIMARY_TASK, f"The primary task is {PRIMARY_TASK}, as declared."
    return tasks[0], (f"This zoo has no {PRIMARY_TASK} task, so the primary endpoints fall back to its first "
                      f"transfer task, {tasks[0]}.")


def alpha_expectation(table: pd.DataFrame) -> ExpectedSign:
    """alpha-ReQ's expected sign derived from the measured alphas of the zoo
    (:func:`rmqm.stats.verdicts.expected_sign_alpha_req`; the user encoders of the study,
    :func:`rmqm.study.chapters.external.zoo_only`, do not change it)."""
    return expected_sign_alpha_req(zoo_only(table)["alpha_req"])


def score_labels(synbench_threshold: float, columns: Sequence[str] = (), alpha: ExpectedSign | None = None
                 ) -> dict[str, str]:
    """Readable names of the scores (axis labels, claims); ``alpha`` names the orientation of :data:`ALPHA`."""
    labels = {"synbench": f"SynBench (t = {synbench_threshold})", "rankme": "RankMe (effective rank)",
              ALPHA: "alpha-ReQ" + ("" if alpha is None else " (-|alpha - 1|)" if alpha.column != alpha.source
                                    else " (-alpha)" if alpha.sign == "negative" else " (alpha)")}
    for c in columns:
        if c.startswith("rmqm_"):
            labels[c] = "RMQM, " + ("white noise" if c == "rmqm_noise" else c[5:].replace("_", " ").upper()
                                    .replace("OWN LOSS", "own loss").replace("REFERENCE", "reference")
                                    .replace("DISPLACEMENT", "displacement"))
    return labels


def score_table(results: str | os.PathLike, synbench_threshold: float, synbench_epsilon: float) -> pd.DataFrame:
    """The zoo with every model's task-free scores; written to ``results/all_scores.parquet``.

    Adds ``rmqm_<perturbation>`` (:func:`rmqm_column`) for each perturbation of
    ``rmqm_scores.parquet``, ``synbench`` (at ``synbench_threshold`` and ``synbench_epsilon``)
    and :data:`ALPHA`: alpha-ReQ transformed by :func:`alpha_expectation` and multiplied by -1
    when its expected sign is negative, so that every score's claim is a positive correlation.

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
    return {"synbench": "SynBench", "rankme": "RankMe", ALPHA: "alpha-ReQ"}.get(score, score)


def _target_name(task: str, probe: str) -> str:
    """``"1-NN accuracy on digits"`` or ``"mean chance-normalised linear accuracy over tasks"``."""
    word = {"1nn": "1-NN", "knn": "k-NN", "linear": "linear-probe"}.get(probe, probe)
    return (f"mean chance-normalised {word} accuracy over tasks" if task == AGGREGATE
            else f"{word} accuracy on {task}")


def _probe(score: str) -> str:
    """The probe each score's paper judges it by: linear for SynBench, 1-NN for the others."""
    return "linear" if score == "synbench" else "1nn"


def _endpoint(score: str, task: str, probe: str, zoo: str, primary: str) -> str:
    primaries = set(PRIMARY_ENDPOINTS.values())
    if (score, probe) in primaries and task == primary and zoo == ZOOS[0]:
        return "primary"
    if probe == _probe(score) and task != AGGREGATE:
        return "secondary"
    return "exploratory"


def _safe(run: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``run(*args, **kwargs)``, or None when the zoo is too small for it (a ValueError: e.g.
    fewer configurations than it needs)."""
    try:
        return run(*args, **kwargs)
    except ValueError:
        return None


def _boot_row(res: Any) -> dict[str, Any]:
    if res is None:
        return dict.fromkeys(("estimate", "ci_low", "ci_high", "p_value", "n_configs", "n_seeds"), np.nan)
    return {"estimate": res.estimate, "ci_low": res.low, "ci_high": res.high, "p_value": res.p_value,
            "n_configs": res.n_configs, "n_seeds": res.n_seeds}


def _partial_row(table: pd.DataFrame, score: str, target: str, confidence: float) -> dict[str, Any]:
    """Spearman partial correlation on log d, with the Fisher interval ``tanh(z -/+ q sqrt(1.06 / (n - 4)))``
    (NaN when the zoo has one dimension or too few configurations)."""
    if table["dim"].nunique() < 2:  # one dimension: nothing to control
        return _boot_row(None)
    res = _safe(partial_correlation, table, score, target, ("log_dim",), config_cols=CONFIG)
    if res is None or not np.isfinite(res.r):
        return _boot_row(None)
    z, se = np.arctanh(np.clip(res.r, -0.999999, 0.999999)), np.sqrt(1.06 / max(res.n - 4, 1))
    q = float(stats.norm.ppf((1 + confidence) / 2))
    low, high = float(np.tanh(z - q * se)), float(np.tanh(z + q * se))  # |r| = 1: the interval reaches it
    return {"estimate": res.r, "ci_low": min(low, res.r), "ci_high": max(high, res.r),
            "p_value": res.p_value, "n_configs": res.n, "n_seeds": table["seed"].nunique()}


def endpoint_rows(table: pd.DataFrame, zoo: str, *, n_resamples: int = 2000, confidence: float = 0.95,
                  random_state: int = 0) -> list[dict[str, Any]]:
    """The tests of one zoo (``zoo`` one of :data:`ZOOS`), before Holm:

    - per task: every score x task x probe, Spearman (:func:`two_level_bootstrap`);
      Pearson too for the two primary pairs (the RMQM paper's coefficient), exploratory;
    - the chance-normalised mean accuracy over tasks (:data:`AGGREGATE`), beside them, exploratory;
    - on the primary task: each RMQM setting and SynBench against RankMe and against
      alpha-ReQ (:func:`paired_bootstrap_difference`, ``r(score) - r(baseline)``), secondary;
    - partial correlation on log d (Spearman) of the primary pairs and RankMe, secondary;
      their within-dimension correlations pooled on the Fisher-z scale, exploratory.

    A test the zoo is too small for (e.g. fewer than 3 configurations) is a row of NaN.
    """
    sub = _zoo(table, zoo)
    tasks, scores = transfer_tasks(table), score_columns(table)
    primary = primary_task(tasks)[0]
    kw = dict(config_cols=CONFIG, n_resamples=n_resamples, confidence=confidence, interval=INTERVAL,
              random_state=random_state)
    chance = chance_levels(tasks)
    rows: list[dict[str, Any]] = []

    def add(claim: str, endpoint: str, analysis: str, score: str, task: str, target: str, method: str,
            values: dict[str, Any], baseline: str = "") -> None:
        rows.append({"claim": claim, "endpoint": endpoint, "analysis": analysis, "score": score, "baseline": baseline,
                     "task": task, "target": target, "method": method, "zoo": zoo, "expected_sign": "positive",
                     **values})

    for probe in PROBES:
        aggregate = chance_normalised_mean(sub, tasks, chance, acc_suffix=f"_{probe}")
        frame = sub.assign(**{f"{AGGREGATE}_{probe}": aggregate})
        for score in scores:
            for task in [*tasks, AGGREGATE]:
                target = f"{AGGREGATE}_{probe}" if task == AGGREGATE else f"{task}_{probe}"
                endpoint = _endpoint(score, task, probe, zoo, primary)
                methods = ["spearman", "pearson"] if (score, probe) in PRIMARY_ENDPOINTS.values() else ["spearman"]
                for method in methods:
                    res = _safe(two_level_bootstrap, frame, score, target, method=method, **kw)
                    add(f"{_name(score)} ranks encoders by {_target_name(task, probe)}",
                        endpoint if method == "spearman" else "exploratory",
                        "chance-normalised aggregate" if task == AGGREGATE else "per task", score, task, target,
                        method, _boot_row(res))
    for score in [c for c in scores if c.startswith("rmqm_") or c == "synbench"]:
        target = f"{primary}_{_probe(score)}"
        for baseline in ("rankme", ALPHA):
            res = _safe(paired_bootstrap_difference, sub, score, baseline, target, **kw)
            add(f"{_name(score)} predicts {_target_name(primary, _probe(score))} better than {_name(baseline)}",
                "secondary",
                "paired difference", score, primary, target, "spearman", _boot_row(res), baseline)
    for score, probe in [*PRIMARY_ENDPOINTS.values(), ("rankme", "1nn")]:
        target = f"{primary}_{probe}"
        add(f"{_name(score)} ranks encoders by {_target_name(primary, probe)} at a fixed log d", "secondary",
            "partial on log d", score, primary, target, "spearman", _partial_row(sub, score, target, confidence))
        within = _safe(within_dim_correlations, sub, score, target, config_cols=CONFIG, confidence=confidence)
        pooled = within.iloc[-1] if within is not None else None
        add(f"{_name(score)} ranks encoders by {_target_name(primary, probe)} within each d", "exploratory",
            "within dim (pooled)", score, primary, target, "spearman",
            _boot_row(None) if pooled is None else {
                "estimate": pooled["r"], "ci_low": pooled["ci_low"], "ci_high": pooled["ci_high"],
                "p_value": pooled["p_value"], "n_configs": int(pooled["n"]), "n_seeds": sub["seed"].nunique()})
    return rows


def verdicts(table: pd.DataFrame, results: str | os.PathLike, *, n_resamples: int = 2000, confidence: float = 0.95,
             alpha: float = 0.05, random_state: int = 0, include_encoders: bool = False) -> pd.DataFrame:
    """The verdict table of both :data:`ZOOS` (:func:`endpoint_rows`), Holm-adjusted within
    each endpoint tier (``holm_family``) by :func:`rmqm.stats.verdicts.verdict_table` at
    ``alpha``; a row without an estimate has verdict ``"not measurable"``. Primary rows
    first. Written to ``results/verdicts.parquet``.

    The sign p-value of a bootstrap cannot fall below ``2 / (n_resamples + 1)``: a tier of
    ``m`` rows needs ``n_resamples`` well above ``2 m / alpha`` for any row to pass Holm.

    The user encoders of the study (family ``external``) are left out unless ``include_encoders``
    (:func:`rmqm.study.chapters.external.zoo_only`): they are points beside the zoo, not part of it.
    """
    table = zoo_only(table, include_encoders)
    rows = [r for zoo in ZOOS for r in endpoint_rows(table, zoo, n_resamples=n_resamples, confidence=confidence,
                                                      random_state=random_state)]
    frame = pd.DataFrame(rows, columns=_COLUMNS)
    parts = []
    for tier in ("primary", "secondary", "exploratory"):
        part = frame[frame["endpoint"] == tier]
        if len(part):
            parts.append(verdict_table(part, alpha=alpha).assign(holm_family=tier))
    out = pd.concat(parts, ignore_index=True)
    out.loc[~np.isfinite(out["estimate"].astype(float)), "verdict"] = "not measurable"
    out = out[[*_COLUMNS[:14], "holm_family", "p_holm", "verdict", "n_configs", "n_seeds"]]
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
                               "reference_r": np.nan if ref is None else ref.r,
                               "reference_n": 0 if ref is None else ref.n}
        for task in tasks:
            mine = verdict[(verdict["score"] == score) & (verdict["target"] == f"{task}_1nn")
                           & (verdict["method"] == "spearman") & (verdict["zoo"] == ZOOS[0])]
            row[f"{task}: ours"] = "" if mine.empty else (
                f"{format_interval(*mine[['estimate', 'ci_low', 'ci_high']].iloc[0])} {mine['verdict'].iloc[0]}")
        rows.append(row)
    out = pd.DataFrame(rows)
    out.to_parquet(Path(results) / "reference_comparison.parquet")
    return out


def primary_lines(verdict: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    """One sentence per primary endpoint: estimate, interval, raw and Holm p, verdict."""
    lines = []
    for _, r in verdict[verdict["endpoint"] == "primary"].iterrows():
        lines.append(f"{labels.get(r['score'], r['score'])} vs {r['target']} ({r['method']}, {r['zoo']}): "
                     f"{format_interval(r['estimate'], r['ci_low'], r['ci_high'])}, p = {r['p_value']:.4f}, "
                     f"Holm p = {r['p_holm']:.4f} -> {r['verdict']} ({r['n_configs']:.0f} configurations x "
                     f"{r['n_seeds']:.0f} seeds)")
    return lines


def _number(value: float, spec: str) -> str:
    """``format(value, spec)``, or ``"none"`` for a missing (NaN) number."""
    return format(value, spec) if np.isfinite(value) else "none"


def verdict_view(verdict: pd.DataFrame, analysis: str | None = None, endpoint: str | None = None) -> pd.DataFrame:
    """Rows of a :func:`verdicts` table as a reader's table: ``claim, zoo, endpoint, estimate,
    interval, p, p (Holm), verdict`` as text (a missing number reads "none"), optionally one
    ``analysis`` or ``endpoint`` only."""
    rows = verdict[((verdict["analysis"] == analysis) if analysis else True)
                   & ((verdict["endpoint"] == endpoint) if endpoint else True)]
    return pd.DataFrame({
        "claim": rows["claim"], "zoo": rows["zoo"], "endpoint": rows["endpoint"],
        "estimate": [_number(e, "+.2f") for e in rows["estimate"].astype(float)],
        "interval": [format_interval(e, lo, hi).partition(" ")[2] or "none"
                     for e, lo, hi in rows[["estimate", "ci_low", "ci_high"]].astype(float).to_numpy()],
        "p": [_number(p, ".4f") for p in rows["p_value"].astype(float)],
        "p (Holm)": [_number(p, ".4f") for p in rows["p_holm"].astype(float)],
        "verdict": rows["verdict"]}).reset_index(drop=True)
