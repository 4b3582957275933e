"""Verdicts by pre-registered family (``book/endpoints.yaml``, :mod:`rmqm.study.endpoints`):
Holm within each confirmatory family, no verdict for exploratory rows, and beside each
confirmatory row the smallest effect the design detects and a leave-one-method-out range.

A verdict row has ``family`` (a family id, or ``"exploratory"``), ``estimate, ci_low, ci_high``,
``p_value`` with ``p_se`` (Monte-Carlo error; 0 when exact) and ``p_method``, ``n_valid`` of
``n_resamples``, ``measurable`` and ``reason``. :func:`family_verdicts` adds ``p_holm`` and
``verdict``; :func:`sensitivity` adds ``detectable`` and ``leave_one_out``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from rmqm._utils.validation import NotMeasurable
from rmqm.stats.power import detectable_effect, leave_one_out, leave_one_out_text
from rmqm.stats.verdicts import format_interval, verdict_table

__all__ = ['EXPLORATORY', 'RESULT_FIELDS', 'result_row', 'family_verdicts', 'sensitivity', 'detectable_text',
           'family_lines', 'verdict_view']

#: The ``family`` of a row no family declares: an estimate and an interval, no verdict.
EXPLORATORY = "exploratory"
#: The columns :func:`result_row` fills from a :class:`rmqm.stats.inference.BootstrapResult`.
RESULT_FIELDS: tuple[str, ...] = ("estimate", "ci_low", "ci_high", "p_value", "p_se", "p_method", "n_valid",
                                  "n_resamples", "measurable", "reason", "n_configs", "n_seeds")


def result_row(res: Any, reason: str = "the zoo is too small for this test") -> dict[str, Any]:
    """The :data:`RESULT_FIELDS` of a bootstrap result; a row of NaN, not measurable for ``reason``,
    for None, or for a :class:`~rmqm._utils.validation.NotMeasurable` error (its message the reason)."""
    if isinstance(res, NotMeasurable):
        res, reason = None, f"{reason}: {res}"
    if res is None:
        return {**dict.fromkeys(RESULT_FIELDS, np.nan), "p_method": "", "n_valid": 0, "n_resamples": 0,
                "measurable": False, "reason": reason}
    return {"estimate": res.estimate, "ci_low": res.low, "ci_high": res.high, "p_value": res.p_value,
            "p_se": res.p_se, "p_method": res.p_method, "n_valid": res.n_valid, "n_resamples": res.n_resamples,
            "measurable": res.measurable, "reason": res.reason, "n_configs": res.n_configs, "n_seeds": res.n_seeds}


def family_verdicts(rows: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """``rows`` with ``p_holm`` and ``verdict``: Holm within each confirmatory ``family``
    (:func:`rmqm.stats.verdicts.verdict_table` at ``alpha``), a not measurable row counted in
    its family's size with ``p = 1`` (it cannot pass, and it does not shrink the correction),
    given no adjusted p and the verdict ``"not measurable"``; exploratory rows get no adjusted p and the
    verdict ``"exploratory"``."""
    out = rows.copy()
    out["p_holm"], out["verdict"] = np.nan, EXPLORATORY
    for _, part in out[out["family"] != EXPLORATORY].groupby("family", sort=False):
        usable = part["measurable"].astype(bool) & np.isfinite(part["p_value"].astype(float))
        judged = verdict_table(part.assign(p_value=np.where(usable, part["p_value"], 1.0)), alpha=alpha)
        out.loc[part.index, "p_holm"] = np.where(usable, judged["p_holm"], np.nan)  # counted, not adjusted
        out.loc[part.index, "verdict"] = np.where(usable, judged["verdict"], "not measurable")
    return out


def detectable_text(rho: float, statistic: float) -> str:
    """``"r >= +0.45 (80 % power)"`` or ``"none up to rho 0.95"``."""
    return "none up to rho 0.95" if not np.isfinite(rho) else f"r >= {statistic:+.2f} (80 % power)"


def sensitivity(rows: pd.DataFrame, table_of: Callable[[Mapping[str, Any]], pd.DataFrame | None], *,
                config_cols: Sequence[str], alpha: float, n_sim: int = 300, random_state: int = 0) -> pd.DataFrame:
    """``rows`` (after :func:`family_verdicts`) with ``detectable`` beside each inconclusive
    confirmatory verdict (:func:`rmqm.stats.power.detectable_effect` at ``alpha / m``, ``m`` the
    family's size: the level of Holm's first step) and ``leave_one_out`` for every confirmatory
    row (:func:`rmqm.stats.power.leave_one_out` over ``method``). ``table_of(row)`` gives the
    table a row was computed on (None: not available)."""
    out = rows.copy()
    out["detectable"], out["leave_one_out"] = "", ""
    sizes = out[out["family"] != EXPLORATORY].groupby("family").size()
    for i, row in out[out["family"] != EXPLORATORY].iterrows():
        table = table_of(row)
        if table is None or not row["measurable"]:
            continue
        score, target = row["score"], row["target"]
        try:
            if row["verdict"] == "inconclusive":
                d = detectable_effect(table, score, target, config_cols=config_cols, alpha=alpha / sizes[row["family"]],
                                      n_sim=n_sim, random_state=random_state)
                out.loc[i, "detectable"] = detectable_text(d.rho, d.statistic)
            out.loc[i, "leave_one_out"] = leave_one_out_text(leave_one_out(table, score, target,
                                                                           config_cols=config_cols))
        except NotMeasurable as err:  # too few configurations for the simulation
            out.loc[i, "detectable"] = f"not simulated ({err})"
    return out


def family_lines(verdict: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    """One sentence per confirmatory row: estimate, interval, permutation p (with its Monte-Carlo
    error), Holm p within its family, verdict, and what is left when the row is not measurable."""
    lines = []
    for _, r in verdict[verdict["endpoint"] == "confirmatory"].iterrows():
        p = f"p = {r['p_value']:.4f}" + (f" +/- {r['p_se']:.4f}" if r["p_se"] > 0 else " (exact)")
        lines.append(f"[{r['family']}] {labels.get(r['score'], r['score'])} vs {r['target']} ({r['zoo']}, "
                     f"{r['encoders']} added encoders): {format_interval(r['estimate'], r['ci_low'], r['ci_high'])}, "
                     f"{p}, Holm p = {r['p_holm']:.4f} -> {r['verdict']}"
                     + (f" ({r['reason']})" if r["verdict"] == "not measurable" else "")
                     + f" ({r['n_configs']:.0f} configurations x {r['n_seeds']:.0f} seeds, "
                       f"{r['n_valid']:.0f}/{r['n_resamples']:.0f} resamples defined)")
    return lines


def _number(value: float, spec: str) -> str:
    """``format(value, spec)``, or ``"none"`` for a missing (NaN) number."""
    return format(value, spec) if np.isfinite(value) else "none"


def verdict_view(verdict: pd.DataFrame, analysis: str | None = None, endpoint: str | None = None) -> pd.DataFrame:
    """Rows of a :func:`verdicts` table as a reader's table: ``claim, zoo, family, estimate,
    interval, p, p (Holm), n_valid, verdict`` as text (a missing number reads "none"; p with its
    Monte-Carlo error), optionally one ``analysis`` or ``endpoint`` only."""
    keep = pd.Series(True, index=verdict.index)
    if analysis:
        keep &= verdict["analysis"] == analysis
    if endpoint:
        keep &= verdict["endpoint"] == endpoint
    rows = verdict[keep]
    return pd.DataFrame({
        "claim": rows["claim"], "zoo": rows["zoo"], "family": rows["family"],
        "estimate": [_number(e, "+.2f") for e in rows["estimate"].astype(float)],
        "interval": [format_interval(e, lo, hi).partition(" ")[2] or "none"
                     for e, lo, hi in rows[["estimate", "ci_low", "ci_high"]].astype(float).to_numpy()],
        "p": [_number(p, ".4f") + (f" ± {se:.4f}" if np.isfinite(p) and se > 0 else "")
              for p, se in rows[["p_value", "p_se"]].astype(float).to_numpy()],
        "p (Holm)": [_number(p, ".4f") for p in rows["p_holm"].astype(float)],
        "n_valid": [f"{v:.0f}/{n:.0f}" for v, n in rows[["n_valid", "n_resamples"]].astype(float).to_numpy()],
        "verdict": [v if v != "not measurable" else f"not measurable: {why}"
                    for v, why in zip(rows["verdict"], rows["reason"], strict=True)]}).reset_index(drop=True)
