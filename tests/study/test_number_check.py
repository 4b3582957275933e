"""The built pages' numbers against the results store (rmqm.study.number_check) on hand-made pages."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rmqm.study import abstract, number_check
from rmqm.study.chapters import summary


def write_results(results: Path) -> pd.DataFrame:
    results.mkdir(parents=True)
    verdicts = pd.DataFrame([dict(
        claim="RMQM ranks encoders", family="rmqm-noise", endpoint="confirmatory", analysis="per task",
        score="rmqm_noise", baseline="", task=task, target=f"{task}_1nn", method="spearman", zoo="all encoders",
        encoders="without", expected_sign="positive", estimate=0.5, ci_low=0.1, ci_high=0.8, p_value=0.01,
        p_se=0.001, p_method="permutation", n_valid=1000, n_resamples=1000, measurable=True, reason="", n_configs=14,
        n_seeds=3, p_holm=0.02, verdict=verdict, detectable="", leave_one_out="")
        for task, verdict in (("fashion-mnist", "supported"), ("digits", "inconclusive"))])
    verdicts.to_parquet(results / "verdicts.parquet")
    pd.DataFrame({"method": ["a", "a", "b", "b"], "dim": 8, "optimizer": "adam", "seed": [0, 1, 0, 1]}).to_parquet(
        results / "zoo.parquet")
    return summary.summary_table(results)


def write_pages(html: Path, table: pd.DataFrame, headline: str) -> None:
    (html / "notebooks").mkdir(parents=True)
    body = summary.summary_html(table) if "family" in table.columns else table.to_html()
    (html / number_check.SUMMARY_PAGE).write_text(f"<html><body>{body}</body></html>")
    (html / number_check.ZOO_PAGE).write_text(f"<html><body><pre>{headline}</pre></body></html>")


def test_matching_pages_have_no_problem(tmp_path):
    table = write_results(tmp_path / "results")
    write_pages(tmp_path / "html", table, "4 models (2 encoders x 2 seeds) pretrained on mnist")
    assert number_check.check_numbers(tmp_path / "html", tmp_path / "results") == []


def test_a_changed_estimate_a_cut_claim_and_a_wrong_headline_are_caught(tmp_path):
    table = write_results(tmp_path / "results")
    shown = table.copy()
    shown.loc[0, "estimate"] = "+0.60"
    shown.loc[0, "test"] = shown.loc[0, "test"][:5] + "..."  # a cut label
    text = summary.summary_html(shown)
    (tmp_path / "html" / "notebooks").mkdir(parents=True)
    (tmp_path / "html" / number_check.SUMMARY_PAGE).write_text(text)
    (tmp_path / "html" / number_check.ZOO_PAGE).write_text("<p>5 models (2 encoders x 2 seeds)</p>")
    problems = number_check.check_numbers(tmp_path / "html", tmp_path / "results")
    details = "\n".join(str(p) for p in problems)
    assert "estimate [95 %]: the page says '+0.60 [+0.10, +0.80]', the results store gives '+0.50 [+0.10, +0.80]'" \
        in details
    assert "test: the page says" in details and "..." in details
    assert "the page says 5 models (2 encoders x 2 seeds), zoo.parquet has 4 (2 x 2)" in details
    assert {p.kind for p in problems} == {"number-mismatch"}


def test_missing_pages_or_results_are_skipped(tmp_path):
    assert number_check.check_numbers(tmp_path / "html", tmp_path / "nothing") == []
    (tmp_path / "results").mkdir()
    assert number_check.check_numbers(tmp_path / "html", tmp_path / "results") == []


def test_html_tables_collapse_whitespace(tmp_path):
    page = tmp_path / "p.html"
    page.write_text("<table><tr><th> a </th><td>1\n 2</td></tr></table><p>x  y</p>")
    tables, text = number_check.html_tables(page)
    assert tables == [[["a", "1 2"]]] and text.endswith("x y")


@pytest.mark.parametrize("missing", ["table", "headline"])
def test_pages_without_the_sampled_numbers_are_a_problem(tmp_path, missing):
    table = write_results(tmp_path / "results")
    write_pages(tmp_path / "html", table if missing != "table" else pd.DataFrame({"x": [1]}),
                "no headline here" if missing == "headline" else "4 models (2 encoders x 2 seeds)")
    problems = number_check.check_numbers(tmp_path / "html", tmp_path / "results")
    assert len(problems) == 1 and problems[0].kind == "number-mismatch"


def intro(counts: str, sentences: list[str]) -> str:
    items = "".join(f"<li>{s}</li>" for s in sentences)
    return (f"<html><body><article><p><strong>What this build found.</strong> We ... and ran {counts} (their "
            f"chapter gives an interval but no p-value).</p><ul>{items}</ul></article></body></html>")


def test_abstract_counts_and_family_sentences_checked(tmp_path):
    table = write_results(tmp_path / "results")  # one family, fashion-mnist supported, digits inconclusive
    sentences = [s for _, s in abstract.family_sentences(table)]
    sentence = sentences[0]
    (tmp_path / "html" / "book").mkdir(parents=True)
    page = tmp_path / "html" / number_check.INTRO_PAGE
    counts = ("2 confirmatory tests in 4 pre-registered families: 1 are supported, 0 contradicted and 1 "
              "inconclusive, 3 could not be measured and 0 carry an unadjusted verdict")
    bold = sentence.replace(": supported.", ": <strong>supported</strong>.")  # markup does not change the text
    page.write_text(intro(counts.replace("2 confirmatory", "5 confirmatory"), [bold, *sentences[1:]]))
    assert number_check.check_numbers(tmp_path / "html", tmp_path / "results") == []
    # a book staged from another build's results: other counts, another estimate
    page.write_text(intro(counts.replace("1 are supported", "2 are supported").replace("5 conf", "2 conf"),
                          [bold.replace("+0.50", "+0.40"), *sentences[1:]]))
    details = [p.detail for p in number_check.check_numbers(tmp_path / "html", tmp_path / "results")]
    assert details[0] == ("the abstract counts ('2', '4', '2', '0', '1', '3', '0') (tests, families, supported, "
                          "contradicted, inconclusive, not measurable, unadjusted), the results store gives "
                          "('5', '4', '1', '0', '1', '3', '0')")
    assert sentence in details[1] and "rmqm-noise" in details[1] and len(details) == 2
    page.write_text("<html><body><p>No abstract.</p></body></html>")
    assert [p.detail for p in number_check.check_numbers(tmp_path / "html", tmp_path / "results")] == [
        "no 'N confirmatory tests in F pre-registered families: S are supported, ...' sentence in the abstract"]
