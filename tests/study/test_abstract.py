"""The abstract's numbers, the overview's rows and the report's claim tables come from the results
summary table by family (rmqm.study.abstract); CITATION.cff agrees with the package and the book."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rmqm.study.abstract import (
    VERDICTS,
    abstract_substitutions,
    base_verdict,
    claims_markdown,
    family_sentences,
    headline_row,
    overview_rows,
    stage_abstract,
    tally,
    training_times_markdown,
)
from rmqm.study.chapters.downstream import PRIMARY_TASK
from rmqm.study.chapters.summary import NUMERIC_COLUMNS, SUMMARY_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
NAN = float("nan")


def row(family: str, label: str, test: str, value: float, low: float, high: float, holm: float, verdict: str,
        note: str = "") -> dict:
    text = (lambda v, spec: "none" if math.isnan(v) else format(v, spec))
    return {"family": family, "family label": label, "test": test, "estimate": text(value, "+.2f"),
            "interval": "none" if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]", "p": "0.0100",
            "p (Holm)": text(holm, ".4f"), "n_valid": "1000/1000", "verdict": verdict, "detectable": "",
            "without one method": "", "note": note, "value": value, "ci_low": low, "ci_high": high, "p_holm": holm}


def summary() -> pd.DataFrame:
    """A summary table shaped like rmqm.study.chapters.summary.summary_table's."""
    rows = [
        row("rmqm-noise", "RMQM (noise) vs 1-NN", "digits", 0.10, -0.40, 0.60, 0.8, "inconclusive"),
        row("rmqm-noise", "RMQM (noise) vs 1-NN", PRIMARY_TASK, 0.62, 0.20, 0.90, 0.02, "supported"),
        row("rmqm-noise", "RMQM (noise) vs 1-NN", "faces", NAN, NAN, NAN, NAN, "not measurable", "83% zeros"),
        row("synbench-reference", "SynBench (ref.) vs linear", "faces | a pipe", -0.5, -0.8, -0.2, 0.01,
            "contradicted"),
        row("rmqm-steps", "SSL steps (RMQM)", "noise: larger steps", NAN, NAN, NAN, NAN, "unadjusted: supported"),
        row("rmqm-steps", "SSL steps (RMQM)", "noise: steadier steps", NAN, NAN, NAN, NAN,
            "unadjusted: inconclusive"),
        row("synbench-claim2", "SynBench claim 2", "no test in this build", NAN, NAN, NAN, NAN, "not measurable",
            "04_synbench reported no row of this family"),
    ]
    return pd.DataFrame(rows, columns=[*SUMMARY_COLUMNS, *NUMERIC_COLUMNS])


def test_overview_rows_take_the_numeric_columns_grouped_by_family():
    rows = overview_rows(summary())
    assert list(rows.columns) == ["label", "estimate", "ci_low", "ci_high", "verdict", "group"]
    first = rows.iloc[1]
    assert (first["label"], first["estimate"], first["ci_low"], first["ci_high"]) == (PRIMARY_TASK, 0.62, 0.2, 0.9)
    assert all(math.isnan(rows.iloc[2][c]) for c in ("estimate", "ci_low", "ci_high"))
    assert list(dict.fromkeys(rows["group"])) == ["RMQM (noise) vs 1-NN", "SynBench (ref.) vs linear",
                                                  "SSL steps (RMQM)", "SynBench claim 2"]


def test_tally_words_and_unadjusted_verdicts():
    assert tally(["supported", "inconclusive", "inconclusive", "contradicted"]) == \
        "1 of 4 supported, 1 contradicted, 2 inconclusive"
    assert tally(["inconclusive"]) == "0 of 1 supported, 1 inconclusive"
    assert tally(["unadjusted: supported", "unadjusted: inconclusive"]) == \
        "1 of 2 supported, 1 inconclusive (unadjusted: no p-value)"
    assert tally(["supported", "unadjusted: supported"]) == "2 of 2 supported, 1 of them unadjusted"
    assert tally([]) == "not tested in this build"
    assert base_verdict("unadjusted: contradicted") == "contradicted" and base_verdict("supported") == "supported"


def test_the_headline_row_is_the_primary_task():
    part = summary().iloc[:3]
    assert headline_row(part)["test"] == PRIMARY_TASK
    assert headline_row(part.drop(index=1))["test"] == "digits"  # no primary task: the first row


def test_family_sentences_count_per_family_and_quote_the_headline():
    sentences = dict(family_sentences(summary()))
    assert list(sentences) == ["rmqm-noise", "synbench-reference", "rmqm-steps", "synbench-claim2"]
    assert sentences["rmqm-noise"] == (
        f"RMQM (noise) vs 1-NN, 3 tests: 1 of 3 supported, 1 inconclusive, 1 not measurable; on {PRIMARY_TASK}, "
        "+0.62 [+0.20, +0.90], Holm p 0.0200: supported.")
    assert sentences["rmqm-steps"] == ("SSL steps (RMQM), 2 tests: 1 of 2 supported, 1 inconclusive (unadjusted: no "
                                       "p-value); on noise: larger steps, no p-value: unadjusted: supported.")
    assert sentences["synbench-claim2"] == ("SynBench claim 2: no test in this build (04_synbench reported no row of "
                                            "this family).")


def test_abstract_counts_per_verdict_and_family():
    subs = abstract_substitutions(summary())
    assert (subs["n_claims"], subs["n_families"]) == ("7", "4")
    # Holm verdicts only; the two step rows count as unadjusted
    assert [subs["n_" + v.replace(" ", "_")] for v in VERDICTS] == ["1", "1", "1", "2"]
    assert subs["n_unadjusted"] == "2"
    assert subs["family_rmqm_noise"] == dict(family_sentences(summary()))["rmqm-noise"]
    none = abstract_substitutions(None)
    assert none["n_claims"] == "0" and none["n_unadjusted"] == "0" and not any(k.startswith("family_") for k in none)


def test_claims_markdown_per_paper():
    rmqm = claims_markdown(summary(), "rmqm").splitlines()
    assert rmqm[0].startswith("**RMQM (noise) vs 1-NN, 3 tests")
    assert rmqm[2] == "| test | estimate [interval] | verdict (Holm p) |"
    assert f"| {PRIMARY_TASK} | +0.62 [+0.20, +0.90] | supported (0.0200) |" in rmqm
    assert "| noise: larger steps | none | unadjusted: supported |" in rmqm
    synbench = claims_markdown(summary(), "synbench")
    assert "faces \\| a pipe" in synbench  # a pipe in a test label does not split the cell
    assert claims_markdown(summary().iloc[:0], "rmqm") == "No claim about it was tested in this build.\n"
    with pytest.raises(ValueError, match="paper must be one of"):
        claims_markdown(summary(), "nope")


def test_training_times_are_labelled_as_load(tmp_path):
    assert training_times_markdown(tmp_path) == "No zoo was trained in this build.\n"
    pd.DataFrame({"name": ["a", "b", "r"], "method": ["nt-xent", "nt-xent", "random-init"],
                  "family": ["self-supervised", "self-supervised", "random"], "dim": 8, "optimizer": "adam",
                  "seed": [0, 1, 0], "train_time_s": [2.0, 4.0, 0.0]}).to_parquet(tmp_path / "zoo.parquet")
    text = training_times_markdown(tmp_path)
    assert "load of the machine" in text and "| nt-xent d=8 | 2 | 3.0 | 2.0-4.0 |" in text
    assert "random-init" not in text


def test_stage_abstract_without_verdicts_says_so(tmp_path):
    subs = stage_abstract(tmp_path / "results", tmp_path / "gen")
    assert subs["n_claims"] == "0"
    assert (tmp_path / "gen" / "overview.png").stat().st_size > 1000
    assert (tmp_path / "gen" / "abstract_families.md").read_text().startswith("No confirmatory family")
    for paper in ("rmqm", "synbench"):
        assert (tmp_path / "gen" / f"claims_{paper}.md").read_text().startswith("No claim")
    assert (tmp_path / "gen" / "train_times.md").read_text() == "No zoo was trained in this build.\n"


def test_citation_file_matches_package_and_book():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["message"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{cff["version"]}"' in pyproject and f'license = "{cff["license"]}"' in pyproject
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cff["title"] == config["title"]
    assert cff["repository-code"] == config["repository"]["url"]
    assert {r["title"].split(":")[0] for r in cff["references"]} == {
        "Manifold Characteristics That Predict Downstream Task Performance", "SynBench"}
