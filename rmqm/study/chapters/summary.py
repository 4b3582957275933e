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


def _synbench_rows(claim1: pd.DataFrame | None, claim2: pd.DataFrame | None) -> pd.DataFrame:
    """SynBench's two claims (notebook 04): claim 1 at the reference's threshold 0.7 and largest
    epsilon, per direction choice, on each task; claim 2 per direction choice."""
    rows = []
    if claim1 is not None and len(claim1):
        reference = claim1[claim1["score"].str.contains(" t=0.7 eps=")]
        eps = reference["score"].str.rsplit("eps=", n=1).str[1].astype(float)
        for r in reference[eps == eps.max()].itertuples():
            finite = np.isfinite(r.ci_low) and np.isfinite(r.ci_high)
            rows.append({"claim": f"SynBench matches linear probing on {r.task} ({r.score.removeprefix('SynBench ')})",
                         "endpoint": "secondary",
                         "estimate": f"{r.estimate:+.2f}" if np.isfinite(r.estimate) else "none",
                         "interval": format_interval(r.estimate, r.ci_low, r.ci_high).split(" ", 1)[1]
                         if finite else "none",
                         "adjusted p": f"{r.p_holm:.4f} (Holm, SynBench claim 1 table)" if np.isfinite(r.p_holm)
                         else "none",
                         "verdict": r.verdict, "verdict without random-init": "not run"})
    if claim2 is not None:
        for _, r2 in claim2.iterrows():
            estimate, _, interval = str(r2["gain over random"]).partition(" ")
            rows.append({"claim": f"SynBench's epsilon beats a random one under attack ({r2['choice']} direction)",
                         "endpoint": "secondary", "estimate": estimate, "interval": interval or "none",
                         "adjusted p": f"none (bootstrap over {int(r2['encoders'])} encoders)",
                         "verdict": r2["verdict"], "verdict without random-init": "not run"})
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def summary_table(results: str | os.PathLike) -> pd.DataFrame:
    """One row per claim, every cell text (a missing number reads "none", never "nan"): the
    primary endpoints first, then the secondary tests on the primary task (other RMQM settings,
    the baselines, the head-to-head differences, the partial correlations) from
    ``results/verdicts.parquet``, then, when ``results/rmqm_step_verdicts.parquet`` exists, the
    RMQM paper's SSL-vs-supervised step claims, and when notebook 04 wrote them
    (``synbench_claim1.parquet``, ``synbench_claim2.parquet``), SynBench's two claims.

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
    claims = [results / f"synbench_claim{k}.parquet" for k in (1, 2)]
    if any(path.is_file() for path in claims):
        parts.append(_synbench_rows(*(pd.read_parquet(path) if path.is_file() else None for path in claims)))
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
