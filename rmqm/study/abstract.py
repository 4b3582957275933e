"""The book's abstract and report pages, from this build's results: counts, verdicts, the
overview figure and the per-paper claim tables, all read from the results summary table
(:func:`rmqm.study.chapters.summary.summary_table`), never typed.

:func:`stage_abstract` writes into the staged book (``book/_generated/``):

- ``overview.png``: every claim as a forest-plot row coloured by verdict
  (:func:`rmqm.plots.overview.plot_claims_overview`);
- ``claims_rmqm.md``, ``claims_synbench.md``, ``claims_baselines.md``: Markdown tables (claim,
  estimate with interval, verdict) of the claims about each paper and of the label-free
  baselines, included by ``book/report.md``;

and returns the MyST substitutions the intro and the report quote (:func:`abstract_substitutions`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from rmqm.plots.overview import plot_claims_overview
from rmqm.study.chapters.summary import summary_table

__all__ = ["CLAIM_GROUPS", "VERDICTS", "claim_group", "overview_rows", "tally", "abstract_substitutions",
           "claims_markdown", "stage_abstract"]

#: The verdict words of the summary table, in the order the text counts them.
VERDICTS: tuple[str, ...] = ("supported", "contradicted", "inconclusive", "not measurable")

#: Group of a secondary claim -> the pattern of its claim text (first match wins); primary
#: endpoints are their own group ("primary endpoint"), anything unmatched is "other".
CLAIM_GROUPS: tuple[tuple[str, str], ...] = (
    ("RMQM paper: SSL steps", r"^self-supervised encoders take"),
    ("SynBench claim 1", r"^SynBench matches linear probing"),
    ("SynBench claim 2", r"^SynBench's epsilon beats"),
    ("head-to-head", r" better than "),
    ("at a fixed log d", r"fixed log d"),
    ("RMQM settings and baselines", r"^(RMQM|RankMe|alpha-ReQ|SynBench) .*ranks encoders"),
)
_PAPER = {"rmqm": ("RMQM",), "synbench": ("SynBench",), "baselines": ("RankMe", "alpha-ReQ")}
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def claim_group(claim: str, endpoint: str) -> str:
    """The group a claim of the summary table belongs to (see :data:`CLAIM_GROUPS`)."""
    if endpoint == "primary":
        return "primary endpoint"
    return next((name for name, pattern in CLAIM_GROUPS if re.search(pattern, claim)), "other")


def _float(text: object) -> float:
    m = _NUMBER.search(str(text))
    return float(m.group()) if m else float("nan")


def _interval(text: object) -> tuple[float, float]:
    """``"[-0.12, +0.30]"`` -> (-0.12, 0.30); anything else (``"none"``) -> (nan, nan)."""
    found = _NUMBER.findall(str(text)) if str(text).strip().startswith("[") else []
    return (float(found[0]), float(found[1])) if len(found) == 2 else (float("nan"), float("nan"))


def overview_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`rmqm.plots.overview.plot_claims_overview` from a summary table:
    ``label`` (the claim), ``estimate``, ``ci_low``, ``ci_high`` (parsed from the table's text;
    NaN for "none"), ``verdict`` and ``group`` (:func:`claim_group`), primary endpoints first."""
    lows, highs = zip(*(_interval(v) for v in table["interval"]), strict=True) if len(table) else ((), ())
    rows = pd.DataFrame({
        "label": table["claim"].astype(str).to_numpy(),
        "estimate": [_float(v) for v in table["estimate"]],
        "ci_low": np.asarray(lows, dtype=float), "ci_high": np.asarray(highs, dtype=float),
        "verdict": table["verdict"].astype(str).to_numpy(),
        "group": [claim_group(str(c), str(e)) for c, e in zip(table["claim"], table["endpoint"], strict=True)],
    })
    order = {g: i for i, g in enumerate(["primary endpoint", *(n for n, _ in CLAIM_GROUPS), "other"])}
    return rows.sort_values("group", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def tally(verdicts: pd.Series | list[str]) -> str:
    """``"2 of 8 supported, 2 contradicted, 4 inconclusive"`` (verdicts that do not occur are left
    out, except "supported"); ``"not tested in this build"`` for none."""
    counts = pd.Series(list(verdicts), dtype=object).value_counts()
    n = int(counts.sum())
    if n == 0:
        return "not tested in this build"
    parts = [f"{int(counts.get('supported', 0))} of {n} supported"]
    parts += [f"{int(counts[v])} {v}" for v in VERDICTS[1:] if counts.get(v, 0)]
    parts += [f"{int(c)} {v}" for v, c in counts.items() if v not in VERDICTS]
    return ", ".join(parts)


def _primary(table: pd.DataFrame, paper: str) -> dict[str, str]:
    key = paper.lower()
    rows = table[(table["endpoint"] == "primary") & table["claim"].astype(str).str.startswith(paper)]
    if rows.empty:
        return {f"primary_{key}_claim": f"no primary endpoint about {paper} in this build",
                f"primary_{key}": "not run", f"primary_{key}_p": "none", f"primary_{key}_verdict": "not run"}
    r = rows.iloc[0]
    interval = "" if str(r["interval"]) == "none" else f" {r['interval']}"
    return {f"primary_{key}_claim": str(r["claim"]), f"primary_{key}": f"{r['estimate']}{interval}",
            f"primary_{key}_p": str(r["adjusted p"]).split(" (")[0], f"primary_{key}_verdict": str(r["verdict"])}


def abstract_substitutions(table: pd.DataFrame | None) -> dict[str, str]:
    """MyST substitutions (key -> text) of a summary table: ``n_claims`` and ``n_<verdict>``
    (``n_not_measurable`` for "not measurable"), each primary endpoint (``primary_rmqm``,
    ``primary_rmqm_claim``, ``primary_rmqm_p``, ``primary_rmqm_verdict``, the same for
    ``synbench``), and a :func:`tally` per group (``tally_steps``, ``tally_synbench1``,
    ``tally_synbench2``, ``tally_headtohead``, ``tally_settings``). ``None`` (no verdict table:
    notebook 05 did not run) gives the same keys, saying so."""
    if table is None:
        table = pd.DataFrame(columns=["claim", "endpoint", "estimate", "interval", "adjusted p", "verdict"])
    groups = [claim_group(str(c), str(e)) for c, e in zip(table["claim"], table["endpoint"], strict=True)]
    verdicts = table["verdict"].astype(str)
    subs = {"n_claims": str(len(table))}
    for v in VERDICTS:
        subs["n_" + v.replace(" ", "_")] = str(int((verdicts == v).sum()))
    for paper in ("RMQM", "SynBench"):
        subs.update(_primary(table, paper))
    for key, group in (("steps", "RMQM paper: SSL steps"), ("synbench1", "SynBench claim 1"),
                       ("synbench2", "SynBench claim 2"), ("headtohead", "head-to-head"),
                       ("settings", "RMQM settings and baselines")):
        subs["tally_" + key] = tally([v for v, g in zip(verdicts, groups, strict=True) if g == group])
    return subs


def claims_markdown(table: pd.DataFrame, paper: str) -> str:
    """A Markdown table (claim, estimate [interval], verdict) of the claims of ``table`` about one
    paper: ``"rmqm"`` (claims naming RMQM or self-supervised steps), ``"synbench"`` or
    ``"baselines"`` (RankMe, alpha-ReQ); a sentence when there is none.

    Raises:
        ValueError: an unknown ``paper``.
    """
    if paper not in _PAPER:
        raise ValueError(f"paper must be one of {sorted(_PAPER)}; got {paper!r}")
    names = _PAPER[paper]
    claim = table["claim"].astype(str)
    mine = claim.str.startswith(names)
    if paper == "rmqm":
        mine |= claim.str.startswith("self-supervised encoders")
    rows = table[mine]
    if rows.empty:
        return "No claim about it was tested in this build.\n"

    def esc(v: object) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| claim | estimate [interval] | verdict |", "|---|---|---|"]
    for _, r in rows.iterrows():
        interval = "" if str(r["interval"]) == "none" else f" {r['interval']}"
        lines.append(f"| {esc(r['claim'])} | {esc(r['estimate'])}{esc(interval)} | **{esc(r['verdict'])}** |")
    return "\n".join(lines) + "\n"


def stage_abstract(results: str | os.PathLike, generated: str | os.PathLike) -> dict[str, str]:
    """Write the overview figure and the per-paper claim tables of the run whose results store is
    ``results`` into ``generated`` (the staged ``book/_generated``); return
    :func:`abstract_substitutions`. Without a verdict table (``results/verdicts.parquet``) the
    figure says that no claim was tested and the tables say so too."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    generated = Path(generated)
    generated.mkdir(parents=True, exist_ok=True)
    try:
        table: pd.DataFrame | None = summary_table(results)
    except FileNotFoundError:
        table = None
    if table is not None and len(table):
        fig = plot_claims_overview(overview_rows(table))
    else:
        fig, ax = plt.subplots(figsize=(10, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "No claim was tested in this build (notebook 05 wrote no verdict table).",
                ha="center", va="center")
    fig.savefig(generated / "overview.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    empty = pd.DataFrame(columns=["claim", "estimate", "interval", "verdict"])
    for paper in _PAPER:
        (generated / f"claims_{paper}.md").write_text(claims_markdown(table if table is not None else empty, paper))
    return abstract_substitutions(table)

