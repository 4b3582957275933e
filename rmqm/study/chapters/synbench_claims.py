"""Chapter 4, SynBench on its own ground: the mean direction, and the paper's two claims.

* **Direction.** The reference draws its mixture along the all-ones direction, where the mean
  pixel alone separates the classes. :func:`synbench_directions` scores every encoder of the study
  also along seeded random unit directions orthogonal to all-ones (``random-zero-mean``: no
  mean-pixel shortcut) and along isotropic ones; :func:`direction_summary` shows the spread and
  which ranks change.
* **Claim 1** ("the SynBench score matches linear probing performance"):
  :func:`claim1_correlations` correlates each score (direction choice x threshold x epsilon, the
  reference's score and the width-corrected one) with the linear-probe accuracy of every real task;
  an encoder counts once (:func:`claim1_table` folds an added encoder's per-seed rows, one fixed
  encoder, into one); :func:`claim1_strata` repeats it within width strata and with / without the
  added encoders; :func:`claim1_differences` tests all-ones against the random directions with the
  paired bootstrap.
* **Claim 2** ("SynBench guides robust linear probing"): :func:`claim2_attacks` fits the
  epsilon-robust probe on a real task for every epsilon and attacks the input through encoder and
  probe (:func:`rmqm.metrics.robust_attack.attack_robust_probes`); :func:`claim2_guidance`
  compares the epsilon SynBench favours (ties: a uniform choice among them,
  :func:`rmqm.metrics.synbench.guidance.uniform_tie_outcome`) with the one that resists the attack best;
  :func:`claim2_verdicts` judges the gain at every declared radius with Holm within the family.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from rmqm._utils.progress import progress, progress_bar
from rmqm.data.registry import load_dataset
from rmqm.experiments.attack_cache import cached_robust_attack
from rmqm.experiments.cache import cached_synbench
from rmqm.experiments.store import ResultsStore
from rmqm.experiments.synbench_claims import (
    DIRECTION_CHOICES,
    SCORE_KINDS,
    claim1_difference_lines,
    claim1_differences,
    claim2_family,
    claim2_guidance,
    detectable_gain,
)
from rmqm.metrics.synbench.guidance import THREAT_MODELS
from rmqm.stats.tasks import per_task_correlations
from rmqm.stats.verdicts import format_interval, interval_verdict, verdict_word
from rmqm.study.chapters.common import model_meta
from rmqm.study.chapters.external import is_external, load_external, native_input_shape, zoo_model
from rmqm.study.chapters.families import family_verdicts
from rmqm.study.chapters.synbench import probe_task
from rmqm.study.endpoints import Endpoints, load_endpoints

__all__ = ["DIRECTION_CHOICES", "SCORE_KINDS", "direction_plan", "synbench_directions", "direction_summary",
           "direction_lines", "claim1_table", "claim1_correlations", "claim1_lines", "claim1_strata",
           "claim1_differences", "claim1_difference_lines", "claim2_attacks", "claim2_guidance", "claim2_family",
           "claim2_verdicts", "claim2_lines", "detectable_gain"]

#: The family of ``book/endpoints.yaml`` claim 2's tests belong to.
CLAIM2_FAMILY = "synbench-claim2"

_KEYS = ["name", "method", "family", "dim", "optimizer", "seed"]


def direction_plan(seeds: Sequence[int], n_directions: int) -> dict[int, list[int]]:
    """Seeds of the random directions per zoo seed: ``n_directions`` split over ``seeds`` as
    evenly as possible (the first ``n % len(seeds)`` seeds take one more; disjoint), so that each
    encoder is averaged over exactly ``n_directions`` directions, each seed's on its own draws (a
    seed gets none when there are more seeds than directions).

    Raises:
        ValueError: no seeds, or ``n_directions < 1``.
    """
    seeds = sorted(int(s) for s in seeds)
    if not seeds or n_directions < 1:
        raise ValueError(f"need seeds and n_directions >= 1; got {seeds} and {n_directions}")
    counts = [n_directions // len(seeds) + (i < n_directions % len(seeds)) for i in range(len(seeds))]
    starts = [sum(counts[:i]) for i in range(len(seeds))]
    return {s: list(range(start, start + count)) for s, start, count in zip(seeds, starts, counts, strict=True)}


def synbench_directions(
    zoo: pd.DataFrame,
    results: str | os.PathLike,
    all_ones: pd.DataFrame,
    s_values: Sequence[float],
    epsilons: Sequence[float],
    n_train: int,
    n_test: int,
    n_directions: int,
    batch_size: int,
    device: str = "cpu",
) -> pd.DataFrame:
    """Every encoder of ``zoo`` (each seed) along random unit directions orthogonal to all-ones and
    along isotropic random ones (each :func:`direction_plan`), beside its all-ones scores; cached in
    the store, written to ``results/synbench_directions.parquet``.

    Args:
        all_ones: the all-ones scores of :func:`rmqm.study.chapters.synbench.synbench_zoo`.
        n_train, n_test: samples per mean scale of the direction runs (no bootstrap).

    Returns:
        ``choice`` (:data:`DIRECTION_CHOICES`), ``direction``, ``threshold, epsilon, score, corrected``
        and the zoo keys, one row per encoder, seed, direction, threshold and epsilon.
    """
    results = Path(results)
    store = ResultsStore(results / "store")
    external = load_external(results, device)
    plan = direction_plan(zoo["seed"].unique(), n_directions)
    rows = [all_ones[["threshold", "epsilon", "score", "corrected", *_KEYS]].assign(choice="all-ones",
                                                                                   direction="all-ones")]
    bar = progress_bar(desc="SynBench directions", total=sum(2 * len(plan[int(s)]) for s in zoo["seed"]), unit="run")
    for row in zoo.itertuples():
        model = zoo_model(row.name, results, external, device)
        shape = native_input_shape(model)
        runs = [(kind, f"{kind}-{k}", {"direction": kind, "direction_seed": k})
                for kind in ("random-zero-mean", "random") for k in plan[int(row.seed)]]
        for choice, label, direction in runs:
            bar.set_postfix_str(f"{row.name} {label}")
            t = cached_synbench(store, row.name, model.encoder, shape, s_values=list(s_values),
                                epsilons=list(epsilons), n_train=n_train, n_test=n_test, n_bootstrap=0,
                                batch_size=batch_size, seed=int(row.seed), device=device, allow_rank_deficient=True,
                                **direction)
            rows.append(t["scores"][["threshold", "epsilon", "score", "corrected"]].assign(
                choice=choice, direction=label, **model_meta(row)))
            bar.update()
    bar.close()
    table = pd.concat(rows, ignore_index=True)
    table.to_parquet(results / "synbench_directions.parquet")
    return table


def _encoder_means(directions: pd.DataFrame, threshold: float, epsilon: float) -> pd.DataFrame:
    at = directions[np.isclose(directions["threshold"], threshold) & np.isclose(directions["epsilon"], epsilon)]
    return at.groupby(["method", "dim", "choice"])["score"].agg(["mean", "std", "min", "max", "count"]).reset_index()


def direction_summary(directions: pd.DataFrame, threshold: float, epsilon: float = 0.0) -> pd.DataFrame:
    """Per encoder at ``threshold`` and ``epsilon``: the mean score under each direction choice
    (over seeds, and over the random directions), the spread (sd, min, max) over the random
    directions, and the encoder's rank (1 = highest) under each choice."""
    means = _encoder_means(directions, threshold, epsilon)
    wide = means.pivot_table(index=["method", "dim"], columns="choice", values="mean")
    wide = wide[[c for c in DIRECTION_CHOICES if c in wide.columns]]
    spread = means[means["choice"] == "random"].set_index(["method", "dim"])[["std", "min", "max", "count"]]
    spread.columns = [f"random {c}" if c != "count" else "random directions x seeds" for c in spread.columns]
    ranks = wide.rank(ascending=False, method="min").astype(int).add_prefix("rank ")
    return pd.concat([wide, spread, ranks], axis=1).round(3).sort_values("all-ones", ascending=False)


def direction_lines(summary: pd.DataFrame, directions: pd.DataFrame | None = None) -> list[str]:
    """Spearman rank agreement of the all-ones ranking with the random-direction ones, and the
    encoders whose rank moves most; with ``directions`` (the runs of :func:`synbench_directions`
    at the summary's threshold and epsilon) first the share of runs that score exactly 0 under
    each choice (a rank among many zeros is a tie)."""
    lines = []
    if directions is not None and len(directions):
        zero = directions.groupby("choice")["score"].apply(lambda s: float((s == 0).mean()))
        lines.append("runs that score exactly 0: " + ", ".join(
            f"{c} {zero[c]:.0%}" for c in DIRECTION_CHOICES if c in zero.index))
    for other in DIRECTION_CHOICES[1:]:
        if other not in summary.columns:
            continue
        constant = summary["all-ones"].nunique() < 2 or summary[other].nunique() < 2
        rho = "undefined (a constant score)" if constant else \
            f"{stats.spearmanr(summary['all-ones'], summary[other]).statistic:+.2f}"
        moved = (summary["rank all-ones"] - summary[f"rank {other}"]).abs()
        worst = moved.sort_values(ascending=False).head(3)
        names = ", ".join(f"{m} d={d} ({int(summary.loc[(m, d), 'rank all-ones'])} -> "
                          f"{int(summary.loc[(m, d), f'rank {other}'])})" for m, d in worst.index if worst[(m, d)] > 0)
        lines.append(f"ranking under all-ones vs {other}: Spearman {rho} over {len(summary)} encoders; "
                     f"largest moves: {names or 'none'}")
    return lines


def claim1_table(zoo: pd.DataFrame, directions: pd.DataFrame, thresholds: Sequence[float],
                 epsilons: Sequence[float]) -> tuple[pd.DataFrame, list[str]]:
    """The zoo table with one score column per direction choice, threshold, epsilon and score kind
    (:data:`SCORE_KINDS`: ``"SynBench <choice> t=.. eps=.."`` the reference's score,
    ``"corrected <choice> t=.."`` the width-corrected one, epsilon-free); a seed's random-direction
    score is the mean over its directions. **An encoder counts once:** an added encoder's rows
    (:func:`~rmqm.study.chapters.external.is_external`, one fixed encoder measured on each zoo
    seed's draws) are folded into one row, the mean over those pseudo-seeds, with the first seed's
    label. Returns the table and the score columns' names."""
    wide = zoo.copy()
    names = []
    for choice in DIRECTION_CHOICES:
        for t in thresholds:
            for kind, label in SCORE_KINDS.items():
                for eps in (epsilons if kind == "score" else epsilons[:1]):
                    at = directions[(directions["choice"] == choice) & np.isclose(directions["threshold"], t)
                                    & np.isclose(directions["epsilon"], eps)]
                    if at.empty or kind not in at.columns:
                        continue
                    name = f"{label} {choice} t={t:g}" + (f" eps={eps:g}" if kind == "score" else "")
                    wide = wide.merge(at.groupby(["name", "seed"])[kind].mean().rename(name).reset_index(),
                                      on=["name", "seed"], how="left")
                    names.append(name)
    external = is_external(wide)
    if external.any():
        numeric = [c for c in wide.columns if pd.api.types.is_numeric_dtype(wide[c]) and c != "seed"]
        folded = wide[external].groupby("name", sort=False).agg(
            {**{c: "first" for c in wide.columns if c not in numeric and c != "name"}, **{c: "mean" for c in numeric}})
        wide = pd.concat([wide[~external], folded.reset_index()[wide.columns]], ignore_index=True)
    return wide, names


def claim1_strata(table: pd.DataFrame, scores: Sequence[str], tasks: Sequence[str], *, n_resamples: int,
                  confidence: float = 0.95) -> pd.DataFrame:
    """:func:`claim1_correlations` within strata of the encoders: ``all encoders``, ``zoo only``
    (without the added encoders) and ``zoo d=<dim>`` per feature width of the zoo (a correlation
    across widths mixes the width penalty in; Holm within each stratum). A stratum with fewer
    than 4 encoders is left out (no interval).

    Returns:
        the stacked correlation tables with a ``stratum`` column.
    """
    zoo = table[~is_external(table)]
    strata = {"all encoders": table, "zoo only": zoo}
    strata.update({f"zoo d={int(d)}": zoo[zoo["dim"] == d] for d in sorted(zoo["dim"].unique())})
    parts = []
    for label, part in strata.items():
        if part.groupby(["method", "dim"]).ngroups < 4 or (label == "zoo only" and len(part) == len(table)):
            continue
        parts.append(claim1_correlations(part, scores, tasks, n_resamples=n_resamples,
                                         confidence=confidence).assign(stratum=label))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def claim1_correlations(table: pd.DataFrame, scores: Sequence[str], tasks: Sequence[str], *,
                        n_resamples: int, confidence: float = 0.95) -> pd.DataFrame:
    """Spearman correlation of every score with every task's linear-probe accuracy over the
    encoders of ``table`` (:func:`rmqm.stats.tasks.per_task_correlations`: seed-averaged,
    two-level bootstrap, Holm over the whole table), with a ``verdict`` per row."""
    corr = per_task_correlations(table, scores, tasks, acc_suffix="_linear", methods=("spearman",),
                                 n_resamples=n_resamples, confidence=confidence)
    side = [verdict_word(interval_verdict(lo, hi)) for lo, hi in zip(corr["ci_low"], corr["ci_high"], strict=True)]
    corr["verdict"] = [v if p <= 1 - confidence and v in ("supported", "contradicted") else "inconclusive"
                       for v, p in zip(side, corr["p_holm"], strict=True)]
    return corr


def claim1_lines(corr: pd.DataFrame, threshold: float, epsilon: float, kind: str = "score") -> list[str]:
    """One line per direction choice (and per ``stratum`` when ``corr`` has one, from
    :func:`claim1_strata`) at ``threshold`` and ``epsilon``: the correlation of the ``kind`` score
    (:data:`SCORE_KINDS`; the corrected one is epsilon-free) with each task (estimate, interval,
    Holm-adjusted verdict)."""
    lines = []
    groups = corr.groupby("stratum", sort=False) if "stratum" in corr.columns else [(None, corr)]
    for stratum, part in groups:
        for choice in DIRECTION_CHOICES:
            name = f"{SCORE_KINDS[kind]} {choice} t={threshold:g}" + (f" eps={epsilon:g}" if kind == "score" else "")
            rows = part[part["score"] == name]
            if rows.empty:
                continue
            parts = [f"{r.task} {format_interval(r.estimate, r.ci_low, r.ci_high)} ({r.verdict})"
                     if np.isfinite(r.estimate) else f"{r.task} undefined (a constant score)"
                     for r in rows.itertuples()]
            where = f"{stratum} ({int(rows['n_configs'].max())} encoders), " if stratum is not None else ""
            lines.append(f"claim 1, {where}{SCORE_KINDS[kind]} score, {choice} direction, t = {threshold:g}"
                         + (f", eps = {epsilon:g}" if kind == "score" else "") + ": " + "; ".join(parts))
    return lines


def claim2_attacks(
    zoo: pd.DataFrame,
    results: str | os.PathLike,
    probe_n: int,
    attack_n: int,
    epsilons: Sequence[float],
    radii: Sequence[float],
    n_steps: int,
    batch_size: int = 64,
    device: str = "cpu",
) -> tuple[pd.DataFrame, str]:
    """The epsilon-robust probe of every encoder (each seed) on a real task, attacked in input
    space: each seed subsamples ``probe_n`` images of :func:`probe_task`, fits the probes on one
    half and attacks the first ``attack_n`` images of the other with L-inf PGD of each radius of
    ``radii`` and ``n_steps`` steps of ``2.5 radius / n_steps`` through encoder, L2 normalisation
    and probe. Cached in the store per encoder, seed and radius; written to
    ``results/robust_attack.parquet``.

    Raises:
        ValueError: no radius, or one outside ``(0, 1]``.

    Returns:
        the table (:func:`rmqm.metrics.robust_attack.attack_robust_probes` columns plus the zoo
        keys) and the task's name.
    """
    results = Path(results)
    store = ResultsStore(results / "store")
    task, split = probe_task(str(zoo["data"].iloc[0]))
    external = load_external(results, device)
    rows = []
    halves = {int(s): load_dataset(task, split=split, n=probe_n, seed=int(s)).split(0.5, seed=int(s))
              for s in sorted(zoo["seed"].unique())}  # one subsample per seed, shared by its encoders
    radii = [float(r) for r in radii]
    if not radii or any(not 0 < r <= 1 for r in radii):
        raise ValueError(f"radii must be a non-empty list of L-inf radii in (0, 1] (pixel units); got {radii}")
    for row in progress(zoo.itertuples(), "claim-2 attacks", total=len(zoo), label=lambda r: r.name, unit="encoder"):
        model = zoo_model(row.name, results, external, device)
        seed = int(row.seed)
        train, test = halves[seed]
        height, width = (int(v) for v in model.train_info["input_size"])
        train, test = train.resized((height, width)), test.resized((height, width))
        for radius in radii:
            table = cached_robust_attack(store, row.name, model.encoder, train, test,
                                         {"task": task, "split": split, "probe_n": int(probe_n)}, attack_n=attack_n,
                                         epsilons=epsilons, radius=radius, n_steps=n_steps, seed=seed,
                                         batch_size=batch_size, device=device)
            rows.append(table.assign(**model_meta(row)))
    table = pd.concat(rows, ignore_index=True)
    table.to_parquet(results / "robust_attack.parquet")
    return table, task


def claim2_verdicts(guidance: pd.DataFrame, results: str | os.PathLike, *, endpoints: Endpoints | None = None,
                    confidence: float = 0.95, n_resamples: int = 10000, seed: int = 0) -> pd.DataFrame:
    """Claim 2's family (:func:`rmqm.experiments.synbench_claims.claim2_family` at every radius
    ``endpoints`` declares, default ``book/endpoints.yaml``) with Holm within it at the file's
    ``alpha`` (:func:`rmqm.study.chapters.families.family_verdicts`, the claim's expected sign
    positive); written to ``results/family_synbench-claim2.parquet``, where the summary page reads
    it. A declared radius this build did not attack is a row, not measurable, saying so.

    Returns:
        the family table with ``family, expected_sign, p_holm, verdict``.
    """
    endpoints = endpoints or load_endpoints()
    radii, alpha = [float(r) for r in endpoints.family(CLAIM2_FAMILY).get("radii")], endpoints.alpha
    family = claim2_family(guidance, radii, alpha=alpha, confidence=confidence, n_resamples=n_resamples, seed=seed)
    judged = family_verdicts(family.assign(family=CLAIM2_FAMILY, expected_sign="positive"), alpha)
    judged.to_parquet(Path(results) / f"family_{CLAIM2_FAMILY}.parquet")
    return judged


def claim2_lines(judged: pd.DataFrame) -> list[str]:
    """The threat models side by side, then one sentence per radius and direction choice of
    :func:`claim2_verdicts`: the gain over a random epsilon with its interval, the sign-flip p,
    Holm's p within the family, the verdict, and how often SynBench names the best epsilon and ties."""
    lines = [f"claim 2 compares two threat models: SynBench's epsilon is an {THREAT_MODELS['synbench']}; the "
             f"judge is an {THREAT_MODELS['attack']}; {len(judged)} tests, Holm within the family"]
    for r in judged.itertuples():
        if not r.measurable:
            lines.append(f"claim 2, {r.label}: not measurable ({r.reason})")
            continue
        lines.append(f"claim 2, {r.label} direction: SynBench's epsilon gains "
                     f"{format_interval(r.estimate, r.ci_low, r.ci_high, 3)} robust accuracy over a random choice "
                     f"({r.n_valid} encoders; p = {r.p_value:.4f}, {r.p_method}; Holm p = {r.p_holm:.4f}) -> "
                     f"{r.verdict}; it names the best epsilon in {r.agreement} of cases; its scores tie in "
                     f"{r.ties} of encoder-seed pairs (a uniform choice among the tied epsilons)")
    return lines
