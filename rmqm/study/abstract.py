"""The book's abstract and report pages, from this build's results: what was found per
pre-registered confirmatory family (``book/endpoints.yaml``), the overview figure and the
per-paper claim tables, all read from the results summary table
(:func:`rmqm.study.chapters.summary.summary_table`, its numeric columns), never typed.

Only confirmatory tests are counted (the summary table holds no exploratory row). A test whose
chapter reported an interval but no p-value (the step claims of chapter 2, SynBench's claim 2 in
chapter 4) carries an *unadjusted* verdict: it is shown, and counted apart from the Holm verdicts.

:func:`stage_abstract` writes into the staged book (``book/_generated/``):

- ``overview.png``: every confirmatory test as a forest-plot row coloured by verdict, grouped by
  family (:func:`rmqm.plots.overview.plot_claims_overview`);
- ``abstract_families.md``: one bullet per family (:func:`family_sentences`), included by the intro;
- ``claims_rmqm.md``, ``claims_synbench.md``: per family of each paper its sentence and a Markdown
  table (test, estimate [interval], verdict with its Holm p), included by ``book/report.md``;
- ``train_times.md``: the zoo's training wall times (:func:`training_times_markdown`), included by
  ``book/reproducibility.md``: load-dependent, so never among the results;

and returns the MyST substitutions the intro and the report quote (:func:`abstract_substitutions`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from rmqm.plots.overview import plot_claims_overview
from rmqm.study.chapters.downstream import PRIMARY_TASK
from rmqm.study.chapters.summary import NUMERIC_COLUMNS, SUMMARY_COLUMNS, summary_table
from rmqm.study.chapters.zoo import training_times

__all__ = ["VERDICTS", "PAPERS", "UNADJUSTED", "base_verdict", "overview_rows", "tally", "headline_row",
           "family_sentences", "abstract_substitutions", "claims_markdown", "training_times_markdown", "stage_abstract"]

#: The verdict words of the summary table, in the order the text counts them.
VERDICTS: tuple[str, ...] = ("supported", "contradicted", "inconclusive", "not measurable")
#: The prefix of a verdict without a p-value (no Holm adjustment): ``"unadjusted: supported"``.
UNADJUSTED = "unadjusted"
#: paper -> the prefix of its families' ids in ``book/endpoints.yaml``.
PAPERS: dict[str, str] = {"rmqm": "rmqm-", "synbench": "synbench-"}


def base_verdict(verdict: object) -> str:
    """``"unadjusted: supported"`` -> ``"supported"``; any other verdict unchanged."""
    text = str(verdict)
    return text.split(": ", 1)[1] if text.startswith(UNADJUSTED + ": ") else text


def overview_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`rmqm.plots.overview.plot_claims_overview` from a summary table, in its
    (family) order: ``label`` (the test), ``estimate``, ``ci_low``, ``ci_high`` (the table's numeric
    columns; NaN where there is none), ``verdict`` and ``group`` (the family's label)."""
    return pd.DataFrame({
        "label": table["test"].astype(str).to_numpy(),
        "estimate": table["value"].to_numpy(dtype=float),
        "ci_low": table["ci_low"].to_numpy(dtype=float), "ci_high": table["ci_high"].to_numpy(dtype=float),
        "verdict": table["verdict"].astype(str).to_numpy(),
        "group": table["family label"].astype(str).to_numpy(),
    })


def tally(verdicts: pd.Series | list[str]) -> str:
    """``"2 of 8 supported, 2 contradicted, 4 inconclusive"`` (verdicts that do not occur are left
    out, except "supported"); verdicts without a p-value are counted by their word and marked
    (``"1 of 2 supported, 1 inconclusive (unadjusted: no p-value)"``, or ``"..., 1 of them
    unadjusted"`` when only some are); ``"not tested in this build"`` for none."""
    words = [str(v) for v in verdicts]
    n = len(words)
    if n == 0:
        return "not tested in this build"
    counts = pd.Series([base_verdict(v) for v in words], dtype=object).value_counts()
    parts = [f"{int(counts.get('supported', 0))} of {n} supported"]
    parts += [f"{int(counts[v])} {v}" for v in VERDICTS[1:] if counts.get(v, 0)]
    parts += [f"{int(c)} {v}" for v, c in counts.items() if v not in VERDICTS]
    unadjusted = sum(w.startswith(UNADJUSTED + ": ") for w in words)
    text = ", ".join(parts)
    if unadjusted == n:
        return text + " (unadjusted: no p-value)"
    return text + (f", {unadjusted} of them unadjusted" if unadjusted else "")


def headline_row(part: pd.DataFrame) -> pd.Series:
    """The row a family's sentence quotes: the test on the primary task
    (:data:`rmqm.study.chapters.downstream.PRIMARY_TASK`, without added encoders) where the family
    has one, else its first row."""
    primary = part[part["test"].astype(str) == PRIMARY_TASK]
    return (primary if len(primary) else part).iloc[0]


def _quote(r: pd.Series) -> str:
    """``"on fashion-mnist, +0.41 [-0.12, +0.80], Holm p 0.1200: inconclusive"`` (a missing
    estimate or Holm p left out; ``"no p-value"`` for an unadjusted verdict)."""
    text = f"on {r['test']}"
    if str(r["estimate"]) != "none":
        text += f", {r['estimate']}" + ("" if str(r["interval"]) == "none" else f" {r['interval']}")
    if str(r["p (Holm)"]) != "none":
        text += f", Holm p {r['p (Holm)']}"
    elif str(r["verdict"]).startswith(UNADJUSTED):
        text += ", no p-value"
    return f"{text}: {r['verdict']}"


def family_sentences(table: pd.DataFrame) -> list[tuple[str, str]]:
    """Per family of ``table`` (in its order): ``(family id, sentence)``, the sentence naming the
    family's label, its number of tests, :func:`tally` of their verdicts and the quoted headline
    row (:func:`headline_row`: estimate, interval, Holm p and verdict). Plain text (what a reader
    of the built page reads, and what :mod:`rmqm.study.number_check` looks for)."""
    out = []
    for (fam, label), part in table.groupby(["family", "family label"], sort=False):
        if len(part) == 1 and str(part["test"].iloc[0]) == "no test in this build":
            out.append((str(fam), f"{label}: no test in this build ({part['note'].iloc[0]})."))
            continue
        n = len(part)
        out.append((str(fam), f"{label}, {n} test{'s' * (n != 1)}: {tally(part['verdict'])}; "
                              f"{_quote(headline_row(part))}."))
    return out


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=[*SUMMARY_COLUMNS, *NUMERIC_COLUMNS])


def abstract_substitutions(table: pd.DataFrame | None) -> dict[str, str]:
    """MyST substitutions (key -> text) of a summary table: ``n_claims`` (confirmatory tests),
    ``n_families``, ``n_<verdict>`` (``n_not_measurable`` for "not measurable"; Holm verdicts
    only) and ``n_unadjusted`` (verdicts without a p-value), and per family
    ``family_<id>`` (``-`` as ``_``) its sentence (:func:`family_sentences`). ``None`` (no
    verdict table: notebook 05 did not run) gives zero counts."""
    table = _empty() if table is None else table
    verdicts = table["verdict"].astype(str)
    subs = {"n_claims": str(len(table)), "n_families": str(table["family"].nunique())}
    for v in VERDICTS:
        subs["n_" + v.replace(" ", "_")] = str(int((verdicts == v).sum()))
    subs["n_unadjusted"] = str(int(verdicts.str.startswith(UNADJUSTED).sum()))
    for fam, sentence in family_sentences(table):
        subs["family_" + fam.replace("-", "_")] = sentence
    return subs


def _esc(v: object) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def claims_markdown(table: pd.DataFrame, paper: str) -> str:
    """Per confirmatory family of one paper (``"rmqm"`` or ``"synbench"``: the families whose id
    starts with :data:`PAPERS` ``[paper]``): its sentence and a three-column Markdown table (test, estimate
    [interval], verdict with its Holm p); a sentence when there is none.

    Raises:
        ValueError: an unknown ``paper``.
    """
    if paper not in PAPERS:
        raise ValueError(f"paper must be one of {sorted(PAPERS)}; got {paper!r}")
    rows = table[table["family"].astype(str).str.startswith(PAPERS[paper])]
    if rows.empty:
        return "No claim about it was tested in this build.\n"
    sentences = dict(family_sentences(rows))
    out = []
    for fam, part in rows.groupby("family", sort=False):
        out += [f"**{_esc(sentences[str(fam)])}**", "", "| test | estimate [interval] | verdict (Holm p) |",
                "|---|---|---|"]
        for _, r in part.iterrows():
            interval = "" if str(r["interval"]) == "none" else f" {r['interval']}"
            holm = "" if str(r["p (Holm)"]) == "none" else f" ({r['p (Holm)']})"
            out.append(f"| {_esc(r['test'])} | {_esc(r['estimate'])}{_esc(interval)} | {_esc(r['verdict'])}{holm} |")
        out.append("")
    return "\n".join(out)


def training_times_markdown(results: str | os.PathLike) -> str:
    """A Markdown table of :func:`rmqm.study.chapters.zoo.training_times` of ``results/zoo.parquet``
    (encoder, models, mean and range of seconds), under a sentence saying that these are the
    machine's load, not results; a sentence when the zoo table or its times are missing."""
    path = Path(results) / "zoo.parquet"
    if not path.is_file():
        return "No zoo was trained in this build.\n"
    zoo = pd.read_parquet(path)
    if "train_time_s" not in zoo.columns or zoo.empty:
        return "This build's zoo table records no training time.\n"
    times = training_times(zoo)
    lines = ["Training wall time of each encoder's last checkpoint, in seconds over its seeds. It measures the "
             "load of the machine during this build (other jobs, cores, caches), not the encoder: it is shown "
             "here, labelled, and never among the results.", "",
             "| encoder | models | mean (s) | range (s) |", "|---|---|---|---|"]
    lines += [f"| {_esc(r.method)} d={r.dim} | {r.models} | {r.mean_s:.1f} | {r.min_s:.1f}-{r.max_s:.1f} |"
              for r in times.itertuples()]  # four columns: six were cut on a phone
    return "\n".join(lines) + "\n"


def stage_abstract(results: str | os.PathLike, generated: str | os.PathLike) -> dict[str, str]:
    """Write the overview figure, the abstract's family bullets and the per-paper claim tables of
    the run whose results store is ``results`` into ``generated`` (the staged
    ``book/_generated``); return :func:`abstract_substitutions`. Without a verdict table
    (``results/verdicts.parquet``) the figure and the files say that no claim was tested."""
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
    found = _empty() if table is None else table
    bullets = [f"- {s}" for _, s in family_sentences(found)]
    (generated / "abstract_families.md").write_text(
        "\n".join(bullets) + "\n" if bullets else "No confirmatory family was tested in this build.\n")
    for paper in PAPERS:
        (generated / f"claims_{paper}.md").write_text(claims_markdown(found, paper))
    (generated / "train_times.md").write_text(training_times_markdown(results))
    return abstract_substitutions(table)

