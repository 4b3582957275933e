"""The results summary page: one section per confirmatory family from the results store, Holm
within each, its HTML (no index, wrapping, a CSV download), its sentences, its notebook."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rmqm.study.chapters import ssl_vs_supervised, summary
from rmqm.study.endpoints import load_endpoints
from rmqm.study.notebooks import discover_notebooks, execution_order

ROOT = Path(__file__).resolve().parents[2]


def verdict_row(family, task, estimate, low, high, p, p_holm, verdict, encoders="without", **kw):
    row = dict(claim=f"claim on {task}", family=family, endpoint="exploratory" if family == "exploratory"
               else "confirmatory", analysis="per task", score="s", baseline="", task=task, target=f"{task}_1nn",
               method="spearman", zoo="all encoders", encoders=encoders, expected_sign="positive",
               estimate=estimate, ci_low=low, ci_high=high, p_value=p, p_se=0.001, p_method="permutation",
               n_valid=1000, n_resamples=1000, measurable=True, reason="", n_configs=14, n_seeds=3, p_holm=p_holm,
               verdict=verdict, detectable="", leave_one_out="+0.40 to +0.70 (lowest without vicreg)")
    return {**row, **kw}


def write_verdicts(folder: Path) -> None:
    rows = [
        verdict_row("rmqm-noise", "digits", 0.8, 0.5, 0.95, 0.002, 0.006, "supported"),
        verdict_row("rmqm-noise", "faces", 0.1, -0.4, 0.5, 0.6, 1.0, "inconclusive", detectable="r >= +0.55 (80 % power)"),
        verdict_row("rmqm-noise", "mnist", np.nan, np.nan, np.nan, np.nan, 1.0, "not measurable", measurable=False,
                    reason="31% of resamples undefined (a constant vector under some seed); 83% of scores are exactly 0"),
        verdict_row("synbench-reference", "digits", -0.5, -0.9, -0.1, 0.01, 0.02, "contradicted"),
        verdict_row("synbench-reference", "digits", -0.4, -0.8, 0.1, 0.2, 0.2, "inconclusive", encoders="with"),
        verdict_row("exploratory", "digits", 0.9, 0.8, 0.99, 0.01, np.nan, "exploratory"),
    ]
    pd.DataFrame(rows).to_parquet(folder / "verdicts.parquet")


def test_summary_table_has_one_section_per_family_in_the_declared_order(tmp_path):
    write_verdicts(tmp_path)
    table = summary.summary_table(tmp_path)
    assert list(table.columns) == [*summary.SUMMARY_COLUMNS, *summary.NUMERIC_COLUMNS]
    assert list(dict.fromkeys(table["family"])) == [f.id for f in load_endpoints().families]
    noise = table[table["family"] == "rmqm-noise"]
    assert noise["test"].tolist() == ["digits", "faces", "mnist"]  # the exploratory row is not here
    first = noise.iloc[0]
    assert (first["estimate"], first["interval"], first["p"], first["p (Holm)"], first["n_valid"]) == (
        "+0.80", "[+0.50, +0.95]", "0.0020 ± 0.0010", "0.0060", "1000/1000")
    # the numbers behind the text, for the figure and the abstract (never parsed back)
    assert tuple(first[list(summary.NUMERIC_COLUMNS)]) == pytest.approx((0.8, 0.5, 0.95, 0.006))
    assert noise.iloc[1]["detectable"] == "r >= +0.55 (80 % power)"
    assert noise.iloc[2]["verdict"] == "not measurable" and "83% of scores are exactly 0" in noise.iloc[2]["note"]
    assert table[table["family"] == "synbench-reference"]["test"].tolist() == ["digits", "digits + added encoders"]
    # the families no chapter reported say so, and nothing reads "nan"
    steps = table[table["family"] == "rmqm-steps"]
    assert steps["test"].tolist() == ["no test in this build"] and steps["verdict"].iloc[0] == "not measurable"
    text = table[list(summary.SUMMARY_COLUMNS)]
    assert not text.astype(str).apply(lambda c: c.str.contains("nan")).any().any()
    assert steps[list(summary.NUMERIC_COLUMNS)].isna().all(axis=None)
    assert pd.read_csv(tmp_path / "summary_long.csv").shape == table.shape


def test_a_family_file_gets_holm_within_the_family(tmp_path):
    write_verdicts(tmp_path)
    pd.DataFrame({"label": ["r = 0.003", "r = 0.01", "r = 0.03"], "estimate": [0.02, 0.05, -0.01],
                  "ci_low": [0.01, 0.02, -0.05], "ci_high": [0.03, 0.08, 0.03], "p_value": [0.01, 0.02, 0.5],
                  "p_se": [0.0, 0.0, 0.0]}).to_parquet(tmp_path / "family_synbench-claim2.parquet")
    rows = summary.summary_table(tmp_path).query("family == 'synbench-claim2'")
    assert rows["p (Holm)"].tolist() == ["0.0300", "0.0400", "0.5000"]
    assert rows["verdict"].tolist() == ["supported", "supported", "inconclusive"]
    assert rows["p"].iloc[0] == "0.0100 (exact)"
    # a Student-t p over seeds is analytic, not an exhaustive count: said so; tiny p not printed as 0
    pd.DataFrame({"label": ["noise: steadier"], "estimate": [0.4], "ci_low": [0.3], "ci_high": [0.5],
                  "p_value": [2e-6], "p_se": [0.0], "p_method": ["t over 5 replicates"]}).to_parquet(
        tmp_path / "family_rmqm-steps.parquet")
    steps = summary.summary_table(tmp_path).query("family == 'rmqm-steps'")
    assert steps["p"].tolist() == ["< 0.0001 (t test)"]
    # the Monte-Carlo floor 1 / 10001 is a resolvable p: printed as the four decimals it rounds to
    assert summary._p_text(1 / 10001, 1e-4, "permutation") == "0.0001 ± 0.0001"


def test_summary_shows_the_step_and_claim2_tables_as_unadjusted(tmp_path):
    write_verdicts(tmp_path)
    points = pd.DataFrame([dict(perturbation="noise", dim=8, seed=s, family=f, B=b + 0.01 * s, S_b=sb)
                           for s in range(3) for f, b, sb in (("self-supervised", 0.5, 0.1), ("supervised", 0.2, 0.3))
                           for _ in range(2)])
    ssl_vs_supervised.step_verdicts(points).to_parquet(tmp_path / "rmqm_step_verdicts.parquet")
    pd.DataFrame([{"choice": "all-ones", "encoders": 16, "gain over random": "+0.040 [+0.010, +0.070]",
                   "verdict": "supported"}]).to_parquet(tmp_path / "synbench_claim2.parquet")
    table = summary.summary_table(tmp_path)
    steps = table[table["family"] == "rmqm-steps"]
    assert steps["test"].tolist() == ["noise: larger steps", "noise: steadier steps"]
    assert steps["verdict"].tolist() == ["unadjusted: supported"] * 2
    assert steps["note"].str.contains("Student-t over 3 seeds").all()
    claim2 = table[table["family"] == "synbench-claim2"].iloc[0]
    assert (claim2["estimate"], claim2["interval"], claim2["verdict"]) == ("+0.040", "[+0.010, +0.070]",
                                                                          "unadjusted: supported")
    assert "declared radii 0.003, 0.01, 0.03" in claim2["note"]
    assert (claim2["value"], claim2["ci_low"], claim2["ci_high"]) == pytest.approx((0.04, 0.01, 0.07))


def test_summary_html_is_compact_and_carries_the_long_form(tmp_path):
    write_verdicts(tmp_path)
    table = summary.summary_table(tmp_path)
    page = summary.summary_html(table)
    assert page._repr_html_() == page
    # one table of families first, then the four families' tables folded under one <details>
    glance, _, folded = page.partition('<details class="rmqm-long-form">')
    assert glance.count("<table") == 1 and folded.count("<table") == 4 and folded.endswith("</details></div>")
    assert "table-layout:fixed" in page and "overflow-wrap:anywhere" in page
    assert f"({len(table)} tests:" in folded
    assert "<th></th>" not in page and ">0<" not in page  # no pandas index
    csv = re.search(r'href="data:text/csv;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(csv).decode() == table.to_csv(index=False)
    assert load_endpoints().sha256 in page and "last changed in commit" in page
    assert summary.summary_lines(table)[0] == "RMQM (noise) vs 1-NN: 3 tests, 1 supported, 1 inconclusive, " \
                                              "1 not measurable."


def test_glance_rows_count_each_familys_tests_verdicts_and_estimate_range(tmp_path):
    write_verdicts(tmp_path)
    table = summary.summary_table(tmp_path)
    glance = summary.glance_rows(table)
    assert list(glance.columns) == list(summary.GLANCE_COLUMNS)
    assert glance["claim"].tolist() == list(dict.fromkeys(table["family label"]))
    noise = glance.iloc[0]
    # the not-measurable row has no estimate, so the range is over the two finite ones
    assert (noise["tests"], noise["estimates"], noise["verdicts"]) == (
        3, "+0.10 to +0.80", "1 supported, 1 inconclusive, 1 not measurable")
    syn = glance.iloc[1]
    assert (syn["tests"], syn["estimates"]) == (2, "-0.50 to -0.40")
    assert summary._estimate_range(pd.DataFrame({"value": [-0.001, 0.04]})) == "+0.00 to +0.04"  # no "-0.00"
    steps = glance.iloc[2]  # no chapter reported it: one not-measurable row, no estimate
    assert (steps["tests"], steps["estimates"], steps["verdicts"]) == (1, "none", "1 not measurable")
    page = summary.summary_html(table)
    glance_html = page.partition("<details")[0]
    assert glance_html.count("<tr>") == len(glance) + 1
    assert ">1 supported</span>" in glance_html and "#1a7f37" in glance_html  # badge coloured by its verdict
    assert ">1 not measurable</span>" in glance_html and "#bc4c00" in glance_html


def test_summary_without_verdicts_names_the_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match="05_predicting_downstream"):
        summary.summary_table(tmp_path)


def test_summary_notebook_runs_last_and_opens_the_study():
    specs = discover_notebooks(ROOT / "notebooks")
    assert execution_order(specs)[-1].name == "00_results_summary"
    spec = next(s for s in specs if s.name == "00_results_summary")
    assert spec.declared == ("profile", "results_dir")
    assert set(spec.depends_on) == {"05_predicting_downstream", "02_ssl_vs_supervised", "04_synbench"}
    nb = json.loads((ROOT / "notebooks" / "00_results_summary.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code[0]["metadata"]["tags"] == ["parameters"]
    assert code[1]["metadata"]["tags"] == ["launch", "remove-cell"]  # rmqm.study.launch: a no-op in the build
    assert all("hide-input" in c["metadata"]["tags"] for c in code[2:])
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    study = next(p for p in toc["parts"] if p["caption"] == "The study")
    assert study["chapters"][0]["file"] == "notebooks/00_results_summary"


def test_downstream_notebook_declares_its_parameters():
    spec = next(s for s in discover_notebooks(ROOT / "notebooks") if s.name == "05_predicting_downstream")
    assert spec.declared == ("synbench_threshold", "synbench_epsilon", "confidence", "n_resamples",
                             "include_encoders_in_stats", "profile", "results_dir")
