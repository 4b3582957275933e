"""The abstract's numbers, the overview's rows and the report's claim tables come from the results
summary table (rmqm.study.abstract); CITATION.cff agrees with the package and the book."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rmqm.study.abstract import (
    VERDICTS,
    abstract_substitutions,
    claim_group,
    claims_markdown,
    overview_rows,
    stage_abstract,
    tally,
)

ROOT = Path(__file__).resolve().parents[2]


def summary() -> pd.DataFrame:
    """A summary table shaped like rmqm.study.chapters.summary.summary_table's (text cells)."""
    rows = [
        ("RMQM (white noise) ranks encoders by 1-NN accuracy on faces (spearman)", "primary", "-0.11",
         "[-1.00, +1.00]", "0.8041 (Holm, primary)", "inconclusive"),
        ("SynBench ranks encoders by linear-probe accuracy on faces (spearman)", "primary", "+0.62",
         "[+0.20, +0.90]", "0.0100 (Holm, primary)", "supported"),
        ("RMQM (white noise) predicts 1-NN accuracy on faces better than RankMe (spearman)", "secondary", "+0.33",
         "[-1.18, +2.00]", "0.9 (Holm, x)", "inconclusive"),
        ("self-supervised encoders take steadier steps (noise, d = 16)", "secondary", "-0.0980",
         "[-0.1298, -0.0663]", "none (t-interval over 3 seeds)", "contradicted"),
        ("RankMe ranks encoders by 1-NN accuracy on faces at a fixed log d (spearman)", "secondary", "none",
         "none", "none", "not measurable"),
        ("SynBench's epsilon beats a random one under attack (all-ones direction)", "secondary", "+0.042",
         "[+0.037, +0.047]", "none (bootstrap over 4 encoders)", "supported"),
        ("SynBench matches linear probing on faces | a pipe (pca t=0.7 eps=0.2)", "secondary", "+0.59",
         "[-0.66, +1.00]", "0.5 (Holm, SynBench claim 1 table)", "inconclusive"),
    ]
    return pd.DataFrame(rows, columns=["claim", "endpoint", "estimate", "interval", "adjusted p", "verdict"])


def test_overview_rows_parse_the_text_cells():
    rows = overview_rows(summary())
    assert list(rows.columns) == ["label", "estimate", "ci_low", "ci_high", "verdict", "group"]
    first = rows.iloc[0]
    assert (first["estimate"], first["ci_low"], first["ci_high"]) == (-0.11, -1.0, 1.0)
    steps = rows[rows["group"] == "RMQM paper: SSL steps"].iloc[0]
    assert (steps["estimate"], steps["ci_low"], steps["ci_high"]) == (-0.098, -0.1298, -0.0663)
    missing = rows[rows["verdict"] == "not measurable"].iloc[0]
    assert all(math.isnan(missing[c]) for c in ("estimate", "ci_low", "ci_high"))
    # primary endpoints first, then the groups in CLAIM_GROUPS order
    assert list(rows["group"]) == ["primary endpoint", "primary endpoint", "RMQM paper: SSL steps",
                                   "SynBench claim 1", "SynBench claim 2", "head-to-head", "at a fixed log d"]


def test_claim_groups():
    assert claim_group("anything", "primary") == "primary endpoint"
    assert claim_group("RMQM (PGD reference) ranks encoders by 1-NN accuracy on faces (spearman)", "secondary") \
        == "RMQM settings and baselines"
    assert claim_group("a new kind of claim", "secondary") == "other"


def test_tally_words():
    assert tally(["supported", "inconclusive", "inconclusive", "contradicted"]) == \
        "1 of 4 supported, 1 contradicted, 2 inconclusive"
    assert tally(["inconclusive"]) == "0 of 1 supported, 1 inconclusive"
    assert tally([]) == "not tested in this build"


def test_abstract_counts_and_primary_endpoints():
    subs = abstract_substitutions(summary())
    assert subs["n_claims"] == "7"
    assert [subs["n_" + v.replace(" ", "_")] for v in VERDICTS] == ["2", "1", "3", "1"]
    assert subs["primary_rmqm"] == "-0.11 [-1.00, +1.00]" and subs["primary_rmqm_verdict"] == "inconclusive"
    assert subs["primary_rmqm_p"] == "0.8041"
    assert subs["primary_synbench"] == "+0.62 [+0.20, +0.90]" and subs["primary_synbench_verdict"] == "supported"
    assert subs["tally_steps"] == "0 of 1 supported, 1 contradicted"
    assert subs["tally_synbench2"] == "1 of 1 supported"
    assert subs["tally_headtohead"] == "0 of 1 supported, 1 inconclusive"
    # without a verdict table every key is still made, and says so
    none = abstract_substitutions(None)
    assert set(none) == set(subs) and none["n_claims"] == "0"
    assert none["primary_rmqm_verdict"] == "not run" and none["tally_steps"] == "not tested in this build"


def test_claims_markdown_per_paper():
    rmqm = claims_markdown(summary(), "rmqm").splitlines()
    assert rmqm[0] == "| claim | estimate [interval] | verdict |"
    assert len(rmqm) == 2 + 3  # the primary, the head-to-head and the steps row
    assert "| -0.0980 [-0.1298, -0.0663] | **contradicted** |" in rmqm[-1]
    synbench = claims_markdown(summary(), "synbench")
    assert "faces \\| a pipe" in synbench  # a pipe in a claim does not split the cell
    assert claims_markdown(summary(), "baselines").count("\n") == 3
    assert claims_markdown(summary().iloc[:0], "rmqm") == "No claim about it was tested in this build.\n"
    with pytest.raises(ValueError, match="paper must be one of"):
        claims_markdown(summary(), "nope")


def test_stage_abstract_without_verdicts_says_so(tmp_path):
    subs = stage_abstract(tmp_path / "results", tmp_path / "gen")
    assert subs["n_claims"] == "0"
    assert (tmp_path / "gen" / "overview.png").stat().st_size > 1000
    for paper in ("rmqm", "synbench", "baselines"):
        assert (tmp_path / "gen" / f"claims_{paper}.md").read_text().startswith("No claim")


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
