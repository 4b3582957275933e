"""SynBench's two claims as statistics over encoders (the chapter, :mod:`rmqm.study.chapters.synbench_claims`,
only assembles them).

* Claim 1 ("the SynBench score matches linear probing performance", Ko et al. 2022, Sec. 4):
  :func:`claim1_differences` tests whether the rank correlation with a real task differs between
  the all-ones mean direction and a random one, with the paired two-level bootstrap.
* Claim 2 ("SynBench guides robust linear probing"): :func:`claim2_guidance` compares, per encoder,
  the epsilon SynBench favours (a uniform choice among tied epsilons,
  :func:`rmqm.metrics.synbench.guidance.uniform_tie_outcome`) with the epsilon whose probe resists the
  input attack best; :func:`claim2_family` tests the gain over an epsilon chosen at random at
  every declared radius. The two threat models differ (:data:`rmqm.metrics.synbench.guidance.THREAT_MODELS`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from rmqm.metrics.synbench.guidance import uniform_tie_outcome
from rmqm.stats.inference import paired_bootstrap_difference
from rmqm.stats.shift import detectable_shift, mean_shift_test
from rmqm.stats.verdicts import format_interval

__all__ = ["DIRECTION_CHOICES", "SCORE_KINDS", "claim1_differences", "claim1_difference_lines", "claim2_guidance",
           "claim2_family", "detectable_gain"]

#: The mean directions every encoder is scored under: the reference's, random unit directions orthogonal
#: to all-ones (no mean-pixel shortcut) and isotropic random ones.
DIRECTION_CHOICES: tuple[str, ...] = ("all-ones", "random-zero-mean", "random")
#: The two scores of each run: the reference's and the width-corrected one (:mod:`rmqm.metrics.synbench.width`).
SCORE_KINDS: dict[str, str] = {"score": "SynBench", "corrected": "corrected"}
_KEYS = ["name", "method", "family", "dim", "optimizer", "seed"]


def claim1_differences(table: pd.DataFrame, tasks: Sequence[str], threshold: float, epsilon: float = 0.0, *,
                       kind: str = "corrected", n_resamples: int = 2000, confidence: float = 0.95,
                       seed: int = 0) -> pd.DataFrame:
    """Is the correlation with a task different under a random direction than under all-ones? The
    paired two-level bootstrap of ``rho(random, task) - rho(all-ones, task)`` on the same encoders
    (:func:`rmqm.stats.inference.paired_bootstrap_difference`), per task and random choice.

    Args:
        table, tasks: as :func:`claim1_correlations` (the columns of :func:`claim1_table`).
        kind: a key of :data:`SCORE_KINDS`.

    Returns:
        ``choice, task, kind, difference, ci_low, ci_high, p_value, n_configs, verdict`` (``differs``
        when the interval excludes 0, ``not measurable`` when too many resamples are undefined, e.g. a
        constant score, else ``no detectable difference``) and ``reason`` (why not measurable).
    """
    def column(choice: str) -> str:
        return f"{SCORE_KINDS[kind]} {choice} t={threshold:g}" + (f" eps={epsilon:g}" if kind == "score" else "")

    rows = []
    for choice in DIRECTION_CHOICES[1:]:
        if column(choice) not in table.columns or column("all-ones") not in table.columns:
            continue
        for task in tasks:
            res = paired_bootstrap_difference(table, column(choice), column("all-ones"), f"{task}_linear",
                                              n_resamples=n_resamples, confidence=confidence, random_state=seed)
            differs = np.isfinite(res.low) and (res.low > 0 or res.high < 0)
            verdict = ("not measurable" if not res.measurable else
                       "differs" if differs else "no detectable difference")
            rows.append({"choice": choice, "task": task, "kind": kind, "difference": res.estimate,
                         "ci_low": res.low, "ci_high": res.high, "p_value": res.p_value, "n_configs": res.n_configs,
                         "verdict": verdict, "reason": res.reason})
    return pd.DataFrame(rows)


def claim1_difference_lines(differences: pd.DataFrame) -> list[str]:
    """One line per random choice: the paired difference of the correlations against all-ones, per task."""
    lines = []
    for choice, part in differences.groupby("choice", sort=False):
        parts = [f"{r.task} not measurable ({r.reason})" if r.verdict == "not measurable" else
                 f"{r.task} {format_interval(r.difference, r.ci_low, r.ci_high)} ({r.verdict})"
                 if np.isfinite(r.difference) else f"{r.task} undefined (a constant score)" for r in part.itertuples()]
        lines.append(f"claim 1, rho({choice}) - rho(all-ones), {SCORE_KINDS[part['kind'].iloc[0]]} score, paired "
                     "bootstrap over "
                     f"{int(part['n_configs'].max())} encoders: " + "; ".join(parts))
    return lines


def claim2_guidance(attacks: pd.DataFrame, directions: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per encoder, seed and attack radius: the epsilon SynBench favours (the largest score at
    ``threshold``, per direction choice; **on a tie, a uniform choice among the tied epsilons**, so
    its robust accuracy is their mean and its agreement the share of them that are best) and the
    epsilon whose probe resists the attack best, with what a choice at random would get (the mean
    over epsilons).

    Returns:
        one row per encoder, seed, ``radius`` and direction ``choice`` with the fields of
        :func:`~rmqm.metrics.synbench.guidance.uniform_tie_outcome` (``synbench_epsilon, n_tied,
        best_epsilon, robust_synbench, agree, robust_best, robust_random, robust_plain``) and the zoo keys.
    """
    at = directions[np.isclose(directions["threshold"], threshold)]
    syn = at.groupby(["name", "seed", "choice", "epsilon"])["score"].mean().reset_index()
    rows = []
    for (name, seed, radius), attack in attacks.groupby(["name", "seed", "radius"]):
        robust = attack.set_index("epsilon")["robust_accuracy"]
        meta = attack.iloc[0][_KEYS].to_dict()
        for choice, scores in syn[(syn["name"] == name) & (syn["seed"] == seed)].groupby("choice"):
            rows.append({**meta, "radius": float(radius), "choice": choice,
                         **uniform_tie_outcome(scores.set_index("epsilon")["score"], robust)})
    return pd.DataFrame(rows)


def _per_encoder(part: pd.DataFrame) -> pd.DataFrame:
    """Claim 2's per-encoder quantities (an encoder counts once: its seeds averaged)."""
    per = part.assign(gain=part["robust_synbench"] - part["robust_random"],
                      plain=part["robust_synbench"] - part["robust_plain"],
                      regret=part["robust_best"] - part["robust_synbench"],
                      agreement=part["agree"].astype(float))
    return per.groupby(["method", "dim"])[["gain", "plain", "regret", "agreement"]].mean()


def _percentile_interval(values: np.ndarray, confidence: float, n_resamples: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over encoders (no spread: the mean itself)."""
    if values.size > 1 and np.ptp(values) > 0:
        ci = stats.bootstrap((values,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                             method="percentile", random_state=seed).confidence_interval
        return float(ci.low), float(ci.high)
    mean = float(values.mean()) if values.size > 1 else float("nan")
    return mean, mean


def claim2_family(guidance: pd.DataFrame, radii: Sequence[float], *, alpha: float = 0.05, confidence: float = 0.95,
                  n_resamples: int = 10000, seed: int = 0) -> pd.DataFrame:
    """Claim 2's confirmatory tests (``book/endpoints.yaml``, family ``synbench-claim2``): for every
    declared attack radius and direction choice, the robust accuracy SynBench's epsilon (ties drawn
    uniformly) gains over an epsilon chosen at random, mean over encoders (an encoder counts once:
    its seeds averaged first) with a percentile bootstrap interval over encoders and the exact
    two-sided sign-flip p-value of that mean (:func:`rmqm.stats.shift.mean_shift_test`), beside
    how often SynBench names the best epsilon and the share of encoder-seed pairs where its
    scores tie. A declared radius the build did not attack is a row, not measurable, saying so.

    Args:
        guidance: :func:`claim2_guidance` (with its ``radius`` column).
        radii: the declared radii (pixel units); every one gets its rows, whatever it shows.
        alpha: the family's level; ``detectable`` is the smallest mean gain the test detects with
            80 % power at ``alpha / m`` (Holm's first step over the family's ``m`` rows).

    Returns:
        one row per radius and choice: ``label, radius, choice, estimate, ci_low, ci_high,
        p_value, p_se, p_method, p_floor, n_valid, n_resamples, measurable, reason, detectable``
        (text), ``detectable_gain`` (float), ``ties, agreement, gain_over_eps0, regret`` (text).
    """
    choices = list(dict.fromkeys(guidance["choice"])) if len(guidance) else list(DIRECTION_CHOICES)
    m = len(radii) * len(choices)
    rows = []
    for radius in radii:
        at = guidance[np.isclose(guidance["radius"], radius)] if len(guidance) else guidance
        for choice in choices:
            part = at[at["choice"] == choice] if len(at) else at
            label = f"r = {radius:g}, {choice}"
            if part.empty:
                rows.append({"label": label, "radius": float(radius), "choice": choice, "measurable": False,
                             "reason": f"this build attacked no encoder at radius {radius:g}", "n_valid": 0,
                             "n_resamples": 0})
                continue
            per = _per_encoder(part)
            gains = per["gain"].to_numpy()
            test = mean_shift_test(gains, test="sign-flip", alpha=alpha / m, seed=seed)
            low, high = _percentile_interval(gains, confidence, n_resamples, seed)
            texts = {}
            for column, name in (("plain", "gain_over_eps0"), ("regret", "regret"), ("agreement", "agreement")):
                values = per[column].to_numpy()
                lo, hi = _percentile_interval(values, confidence, n_resamples, seed)
                texts[name] = format_interval(float(values.mean()), lo, hi, 3, signed=column == "plain")
            detectable = ("no gain detectable: the sign-flip test cannot reach the level on "
                          f"{test.n_valid} encoders" if not np.isfinite(test.detectable)
                          else f"gain >= {test.detectable:.3f} (80 % power)")
            rows.append({"label": label, "radius": float(radius), "choice": choice, "estimate": test.estimate,
                         "ci_low": low, "ci_high": high, "p_value": test.p_value, "p_se": test.p_se,
                         "p_method": test.p_method, "p_floor": test.p_floor, "n_valid": test.n_valid,
                         "n_resamples": test.n_resamples, "measurable": test.measurable, "reason": test.reason,
                         "detectable": detectable, "detectable_gain": test.detectable,
                         "ties": f"{float((part['n_tied'] > 1).mean()):.0%}", **texts})
    return pd.DataFrame(rows)


def detectable_gain(guidance: pd.DataFrame, confidence: float = 0.95, power: float = 0.8,
                    n_encoders: Sequence[int] | None = None, radius: float | None = None) -> pd.DataFrame:
    """The smallest mean gain over a random epsilon that claim 2's test would detect, per direction
    choice: :func:`rmqm.stats.shift.detectable_shift` (a two-sided one-sample t-test at level
    ``1 - confidence`` on the mean of ``n`` per-encoder gains, non-central t; ``sd`` the observed sd
    of the gains, an encoder counted once), the same rule as the ``detectable`` column of
    :func:`claim2_family`.

    Args:
        guidance: :func:`claim2_guidance`.
        n_encoders: encoder counts to evaluate (default 3 to 4 times the study's, and the study's).
        radius: the attack radius whose rows to use (needed when ``guidance`` holds several).

    Returns:
        ``choice, n_encoders, detectable, sd, observed, n_study`` (``observed`` the study's mean gain).

    Raises:
        ValueError: ``power`` or ``confidence`` outside (0, 1); several radii and no ``radius``.
    """
    if not (0 < power < 1 and 0 < confidence < 1):
        raise ValueError(f"power and confidence must lie in (0, 1); got {power} and {confidence}")
    if "radius" in guidance.columns:
        if radius is not None:
            guidance = guidance[np.isclose(guidance["radius"], radius)]
        elif guidance["radius"].nunique() > 1:
            raise ValueError(f"guidance holds radii {sorted(guidance['radius'].unique())}; pick one with radius=")
    rows = []
    for choice, part in guidance.groupby("choice", sort=False):
        gains = (part["robust_synbench"] - part["robust_random"]).groupby([part["method"], part["dim"]]).mean()
        n_study, sd = len(gains), float(gains.std(ddof=1)) if len(gains) > 1 else float("nan")
        counts = sorted({*range(3, 4 * max(n_study, 3) + 1), n_study} if n_encoders is None else set(n_encoders))
        rows += [{"choice": choice, "n_encoders": int(n), "detectable": detectable_shift(sd, n, 1 - confidence, power),
                  "sd": sd, "observed": float(gains.mean()), "n_study": n_study} for n in counts if n >= 2]
    return pd.DataFrame(rows)
