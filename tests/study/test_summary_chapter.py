"""The results summary page: its table from the results store, its sentences, its notebook."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rmqm.study.chapters import ssl_vs_supervised, summary
from rmqm.study.notebooks import discover_notebooks, execution_order

ROOT = Path(__file__).resolve().parents[2]


def verdict_row(claim, endpoint, zoo, estimate, low, high, p_holm, verdict, analysis="per task", task="digits"):
    return dict(claim=claim, endpoint=endpoint, analysis=analysis, score="s", baseline="", task=task,
                target=f"{task}_1nn", method="spearman", zoo=zoo, expected_sign="positive", estimate=estimate,
                ci_low=low, ci_high=high, p_value=p_holm / 2, holm_family=endpoint, p_holm=p_holm, verdict=verdict,
                n_configs=10, n_seeds=3)


def write_verdicts(folder: Path) -> None:
    rows = [
        verdict_row("B on digits", "secondary", "all encoders", -0.5, -0.9, -0.1, 0.01, "contradicted"),
        verdict_row("A on digits", "primary", "all encoders", 0.8, 0.5, 0.95, 0.004, "supported"),
        verdict_row("A on digits", "secondary", "without random-init", 0.3, -0.2, 0.7, 0.6, "inconclusive"),
        verdict_row("C on digits", "secondary", "all encoders", np.nan, np.nan, np.nan, np.nan, "not measurable"),
        verdict_row("A on faces", "secondary", "all encoders", 0.1, -0.4, 0.5, 1.0, "inconclusive", task="faces"),
        verdict_row("D on digits", "exploratory", "all encoders", 0.9, 0.8, 0.99, 0.01, "supported"),
    ]
    pd.DataFrame(rows).to_parquet(folder / "verdicts.parquet")


def test_summary_table_puts_the_primary_endpoints_first(tmp_path):
    write_verdicts(tmp_path)
    table = summary.summary_table(tmp_path)
    assert list(table.columns) == list(summary.SUMMARY_COLUMNS)
    # primary task only, primary and secondary only, primary first
    assert table["claim"].tolist() == ["A on digits (spearman)", "B on digits (spearman)", "C on digits (spearman)"]
    first = table.iloc[0]
    assert first["endpoint"] == "primary" and first["estimate"] == "+0.80"
    assert first["interval"] == "[+0.50, +0.95]" and first["adjusted p"] == "0.0040 (Holm, primary)"
    assert first["verdict"] == "supported" and first["verdict without random-init"] == "inconclusive"
    assert table.iloc[1]["verdict without random-init"] == "not run"
    assert table.iloc[2][["estimate", "interval", "adjusted p"]].tolist() == ["none"] * 3
    assert not table.astype(str).apply(lambda c: c.str.contains("nan")).any().any()


def test_summary_adds_the_step_claims_when_chapter_2_wrote_them(tmp_path):
    write_verdicts(tmp_path)
    points = pd.DataFrame([dict(perturbation="noise", dim=8, seed=s, family=f, B=b + 0.01 * s, S_b=sb)
                           for s in range(3) for f, b, sb in (("self-supervised", 0.5, 0.1), ("supervised", 0.2, 0.3))
                           for _ in range(2)])
    steps = ssl_vs_supervised.step_verdicts(points)
    steps.to_parquet(tmp_path / "rmqm_step_verdicts.parquet")
    table = summary.summary_table(tmp_path)
    rows = table[table["claim"].str.startswith("self-supervised encoders")]
    assert rows["claim"].tolist() == ["self-supervised encoders take larger steps (noise, d = 8)",
                                      "self-supervised encoders take steadier steps (noise, d = 8)"]
    assert rows["estimate"].tolist() == ["+0.3000", "+0.2000"]
    assert rows["verdict"].tolist() == ["supported", "supported"]
    assert rows["adjusted p"].str.contains("t-interval over 3 seeds").all()


def test_summary_adds_synbench_claims_when_chapter_4_wrote_them(tmp_path):
    write_verdicts(tmp_path)
    claim1 = pd.DataFrame([
        dict(score=f"SynBench {c} t={t} eps={e}", task=task, estimate=est, ci_low=est - 0.2, ci_high=est + 0.2,
             p_holm=0.01, verdict="supported" if est > 0.3 else "inconclusive")
        for c, est in (("all-ones", 0.6), ("random", 0.1)) for t in (0.6, 0.7) for e in (0.0, 0.2)
        for task in ("digits", "faces")])
    claim1.loc[len(claim1)] = dict(score="SynBench pca t=0.7 eps=0.2", task="digits", estimate=np.nan,
                                   ci_low=np.nan, ci_high=np.nan, p_holm=np.nan, verdict="inconclusive")
    claim1.to_parquet(tmp_path / "synbench_claim1.parquet")
    claim2 = pd.DataFrame([{"choice": "all-ones", "encoders": 16, "gain over random": "+0.040 [+0.010, +0.070]",
                            "verdict": "supported"}])
    claim2.to_parquet(tmp_path / "synbench_claim2.parquet")
    table = summary.summary_table(tmp_path)
    rows = table[table["claim"].str.startswith("SynBench")]
    # claim 1 at the reference's t = 0.7 and the largest epsilon only, every task, then claim 2
    assert rows["claim"].tolist() == [
        "SynBench matches linear probing on digits (all-ones t=0.7 eps=0.2)",
        "SynBench matches linear probing on faces (all-ones t=0.7 eps=0.2)",
        "SynBench matches linear probing on digits (random t=0.7 eps=0.2)",
        "SynBench matches linear probing on faces (random t=0.7 eps=0.2)",
        "SynBench matches linear probing on digits (pca t=0.7 eps=0.2)",
        "SynBench's epsilon beats a random one under attack (all-ones direction)"]
    assert rows.iloc[0][["estimate", "interval", "verdict"]].tolist() == ["+0.60", "[+0.40, +0.80]", "supported"]
    assert rows.iloc[4][["estimate", "interval", "adjusted p"]].tolist() == ["none"] * 3
    assert rows.iloc[5][["estimate", "interval"]].tolist() == ["+0.040", "[+0.010, +0.070]"]
    assert rows.iloc[5]["adjusted p"] == "none (bootstrap over 16 encoders)"


def test_summary_without_verdicts_names_the_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match="05_predicting_downstream"):
        summary.summary_table(tmp_path)


def test_summary_lines_print_the_table_numbers(tmp_path):
    write_verdicts(tmp_path)
    table = summary.summary_table(tmp_path)
    lines = summary.summary_lines(table)
    assert lines[0] == ("Primary endpoint, A on digits (spearman): +0.80 [+0.50, +0.95], adjusted p 0.0040 "
                        "(Holm, primary): supported (without random-init: inconclusive).")
    assert lines[-1] == "Of the 2 secondary claims, 0 supported, 1 contradicted, 0 inconclusive, 1 not measurable."


def test_summary_notebook_runs_last_and_opens_the_study():
    specs = discover_notebooks(ROOT / "notebooks")
    assert execution_order(specs)[-1].name == "00_results_summary"
    spec = next(s for s in specs if s.name == "00_results_summary")
    assert spec.declared == ("results_dir",)
    assert set(spec.depends_on) == {"05_predicting_downstream", "02_ssl_vs_supervised", "04_synbench"}
    nb = json.loads((ROOT / "notebooks" / "00_results_summary.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code[0]["metadata"]["tags"] == ["parameters"]
    assert all("hide-input" in c["metadata"]["tags"] for c in code[1:])
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    study = next(p for p in toc["parts"] if p["caption"] == "The study")
    assert study["chapters"][0]["file"] == "notebooks/00_results_summary"


def test_downstream_notebook_declares_its_parameters():
    spec = next(s for s in discover_notebooks(ROOT / "notebooks") if s.name == "05_predicting_downstream")
    assert spec.declared == ("synbench_threshold", "synbench_epsilon", "confidence", "n_resamples",
                             "include_encoders_in_stats", "results_dir")
