"""The results summary page: one table of the study's claims (claim, endpoint, estimate,
interval, adjusted p, verdict) read from the results store, and sentences whose numbers come
from that table."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from rmqm.stats.verdicts import format_interval

__all__ = ['SUMMARY_COLUMNS', 'summary_table', 'summary_lines']

#: The columns of :func:`summary_table`.
SUMMARY_COLUMNS: tuple[str, ...] = ("claim", "endpoint", "estimate", "interval", "adjusted p", "verdict",
                                    "verdict without random-init")
_ORDER = {"primary": 0, "secondary": 1, "exploratory": 2}


def _verdict_rows(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Primary and secondary rows of the primary task (all encoders), with the verdict of the
    same test without the random-init encoders beside them."""
    primary = verdicts[verdicts["endpoint"] == "primary"]
    task = primary["task"].iloc[0] if len(primary) else None
    keys = ["claim", "analysis", "score", "baseline", "target", "method"]
    main = verdicts[(verdicts["zoo"] == "all encoders") & verdicts["endpoint"].isin(["primary", "secondary"])
                    & ((verdicts["task"] == task) if task is not None else True)]
    other = verdicts[verdicts["zoo"] == "without random-init"][[*keys, "verdict"]]
    main = main.merge(other.rename(columns={"verdict": "verdict without random-init"}), on=keys, how="left")
    main = main.sort_values("endpoint", key=lambda s: s.map(_ORDER), kind="stable")
    return pd.DataFrame({
        "claim": main["claim"] + " (" + main["method"].astype(str) + ")",
        "endpoint": main["endpoint"],
        "estimate": [f"{e:+.2f}" if np.isfinite(e) else "none" for e in main["estimate"].astype(float)],
        "interval": [format_interval(e, lo, hi).split(" ", 1)[1] if np.isfinite(lo) and np.isfinite(hi) else "none"
                     for e, lo, hi in main[["estimate", "ci_low", "ci_high"]].astype(float).to_numpy()],
        "adjusted p": [f"{p:.4f} (Holm, {fam})" if np.isfinite(p) else "none"
                       for p, fam in zip(main["p_holm"].astype(float), main["holm_family"], strict=True)],
        "verdict": main["verdict"],
        "verdict without random-init": main["verdict without random-init"].fillna("not run"),
    })


def _step_rows(steps: pd.DataFrame) -> pd.DataFrame:
    """The RMQM paper's SSL-vs-supervised claims (:func:`rmqm.study.chapters.ssl_vs_supervised.step_verdicts`)."""
    rows = []
    for _, r in steps.iterrows():
        for claim, value in (("larger steps", "median B: self-sup. - sup."),
                             ("steadier steps", "median S_b: sup. - self-sup.")):
            text = str(r[value])
            estimate, _, interval = text.partition(" ")
            rows.append({"claim": f"self-supervised encoders take {claim} ({r['perturbation']}, d = {r['dim']})",
                         "endpoint": "secondary", "estimate": estimate, "interval": interval or "none",
                         "adjusted p": f"none (t-interval over {int(r['seeds'])} seeds)",
                         "verdict": str(r[claim]).split(":")[0], "verdict without random-init": "not run"})
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def summary_table(results: str | os.PathLike) -> pd.DataFrame:
    """One row per claim, every cell text (a missing number reads "none", never "nan"): the
    primary endpoints first, then the secondary tests on the primary task (other RMQM settings,
    the baselines, the head-to-head differences, the partial correlations) from
    ``results/verdicts.parquet``, then, when ``results/rmqm_step_verdicts.parquet`` exists, the
    RMQM paper's SSL-vs-supervised step claims.

    Returns:
        :data:`SUMMARY_COLUMNS`.

    Raises:
        FileNotFoundError: no ``verdicts.parquet`` (run notebook 05 first).
    """
    results = Path(results)
    path = results / "verdicts.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"no verdict table {path}; the notebook 05_predicting_downstream writes it")
    parts = [_verdict_rows(pd.read_parquet(path))]
    steps = results / "rmqm_step_verdicts.parquet"
    if steps.is_file():
        parts.append(_step_rows(pd.read_parquet(steps)))
    return pd.concat(parts, ignore_index=True)[list(SUMMARY_COLUMNS)]


def summary_lines(table: pd.DataFrame) -> list[str]:
    """Sentences with the numbers of a :func:`summary_table`: each primary endpoint's estimate,
    interval, adjusted p and verdict, then how many of the other claims are supported,
    contradicted or inconclusive."""
    lines = []
    for _, r in table[table["endpoint"] == "primary"].iterrows():
        lines.append(f"Primary endpoint, {r['claim']}: {r['estimate']} {r['interval']}, adjusted p "
                     f"{r['adjusted p']}: {r['verdict']} (without random-init: {r['verdict without random-init']}).")
    rest = table[table["endpoint"] != "primary"]
    counts = rest["verdict"].value_counts()
    lines.append(f"Of the {len(rest)} secondary claims, " + ", ".join(
        f"{int(counts.get(w, 0))} {w}" for w in ("supported", "contradicted", "inconclusive", "not measurable")
        if counts.get(w, 0) or w != "not measurable") + ".")
    return lines
