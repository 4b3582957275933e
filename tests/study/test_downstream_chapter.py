"""Chapter 5 on small synthetic zoos: the score table, the declared endpoints, the verdict table,
the reference statistic beside it, and the forest plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from rmqm import plots
from rmqm.data.registry import load_dataset
from rmqm.stats.tasks import AGGREGATE
from rmqm.study.chapters import downstream

matplotlib.use("Agg")

TASKS = ("fashion-mnist", "animal-mnist", "digits")
METHODS = (("a", "supervised"), ("b", "supervised"), ("c", "self-supervised"), ("d", "self-supervised"),
           ("r", "random"))


def zoo_table(tasks=TASKS, methods=METHODS, dims=(8, 32), seeds=(0, 1), alpha_offset=2.0) -> pd.DataFrame:
    """Every accuracy grows with a configuration's level; alpha-ReQ is above 1 everywhere by default."""
    rows = []
    for seed in seeds:
        for i, (method, family) in enumerate(methods):
            for k, dim in enumerate(dims):
                level = 0.1 * (i + 1) + 0.03 * k + 0.001 * seed
                row = dict(name=f"{method}_d{dim}_s{seed}", method=method, family=family, dim=dim, optimizer="adam",
                           seed=seed, rankme=float(dim) * level, alpha_req=alpha_offset - level)
                for t in tasks:
                    row.update({f"{t}_1nn": level, f"{t}_knn": level, f"{t}_linear": level ** 2})
                rows.append(row)
    return pd.DataFrame(rows)


def write_results(folder: Path, zoo: pd.DataFrame, perturbations=("noise", "pgd-reference", "pgd-own-loss",
                                                                    "pgd-displacement")) -> None:
    zoo.to_parquet(folder / "zoo.parquet")
    first = [c for c in zoo.columns if c.endswith("_1nn")][0]
    linear = [c for c in zoo.columns if c.endswith("_linear")][0]
    rmqm = [dict(name=r["name"], perturbation=p, rmqm=r[first] * (1 if p == "noise" else -1))
            for _, r in zoo.iterrows() for p in perturbations]
    pd.DataFrame(rmqm).to_parquet(folder / "rmqm_scores.parquet")
    syn = [dict(name=r["name"], threshold=t, epsilon=eps, score=-r[linear] * t) for _, r in zoo.iterrows()
           for t in (0.6, 0.7) for eps in (0.0, 0.2)]
    pd.DataFrame(syn).to_parquet(folder / "synbench_scores.parquet")


def test_rmqm_columns_name_each_perturbation():
    assert downstream.rmqm_column("pgd-own-loss") == "rmqm_pgd_own_loss"
    assert downstream.rmqm_column("noise") == "rmqm_noise"


def test_score_table_pivots_every_perturbation_and_orients_alpha(tmp_path):
    write_results(tmp_path, zoo_table())
    table = downstream.score_table(tmp_path, 0.7, 0.0)
    assert (tmp_path / "all_scores.parquet").is_file()
    assert downstream.score_columns(table) == ["rmqm_noise", "rmqm_pgd_reference", "rmqm_pgd_own_loss",
                                               "rmqm_pgd_displacement", "synbench", downstream.SYNBENCH_REFERENCE,
                                               "rankme", downstream.ALPHA]
    assert table["synbench"].tolist() == pytest.approx((-0.7 * table["fashion-mnist_linear"]).tolist())
    # every alpha > 1: larger alpha is farther from 1, so the oriented score is -alpha
    assert downstream.alpha_expectation(table).sign == "negative"
    assert table[downstream.ALPHA].tolist() == pytest.approx((-table["alpha_req"]).tolist())
    assert "mean_1nn" not in table.columns  # no raw mean of accuracies over tasks
    with pytest.raises(ValueError, match="no SynBench score at threshold 0.9"):
        downstream.score_table(tmp_path, 0.9, 0.0)


def test_alpha_on_both_sides_of_one_is_its_distance(tmp_path):
    write_results(tmp_path, zoo_table(alpha_offset=1.3))  # alphas from 1.27 down to 0.77
    table = downstream.score_table(tmp_path, 0.7, 0.0)
    assert table[downstream.ALPHA].tolist() == pytest.approx((-(table["alpha_req"] - 1).abs()).tolist())


def test_older_builds_with_noise_and_pgd_still_work(tmp_path):
    write_results(tmp_path, zoo_table(), perturbations=("noise", "pgd"))
    table = downstream.score_table(tmp_path, 0.7, 0.0)
    assert downstream.score_columns(table)[:2] == ["rmqm_noise", "rmqm_pgd"]


def test_tasks_chance_levels_and_primary_task():
    table = zoo_table()
    assert downstream.transfer_tasks(table) == list(TASKS)
    assert downstream.chance_levels(["faces", "textures"]) == {"faces": 0.5, "textures": pytest.approx(1 / 3)}
    assert downstream.chance_levels(["mystery"], classes=lambda t: 4) == {"mystery": 0.25}

    def missing(task: str) -> int:
        raise ValueError("unknown dataset")

    with pytest.raises(ValueError, match="add its class count to downstream.CHANCE_CLASSES"):
        downstream.chance_levels(["mystery"], classes=missing)
    assert downstream.primary_task(list(TASKS))[0] == "fashion-mnist"
    task, note = downstream.primary_task(["digits", "faces"])
    assert task == "digits" and "no fashion-mnist task" in note and "digits" in note


@pytest.mark.parametrize("task", ["digits", "faces", "textures"])
def test_chance_constants_match_the_registry(task):
    assert downstream.CHANCE_CLASSES[task] == load_dataset(task, split="all").n_classes


def with_encoder(zoo: pd.DataFrame) -> pd.DataFrame:
    """The zoo and one added encoder (family "external", no optimizer), one row per zoo seed."""
    rows = [dict(zoo.iloc[0], name=f"ext_s{s}", method="ext", family="external", dim=8, optimizer=None, seed=s,
                 **{c: 0.5 for c in zoo.columns if c.endswith(("_1nn", "_knn", "_linear"))})
            for s in sorted(zoo["seed"].unique())]
    return pd.concat([zoo, pd.DataFrame(rows)], ignore_index=True)


@pytest.fixture(scope="module")
def verdict(tmp_path_factory) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("results")
    write_results(folder, with_encoder(zoo_table()))
    table = downstream.score_table(folder, 0.7, 0.0)
    return folder, table, downstream.verdicts(table, folder, n_resamples=400, n_sim=50)


CAP10 = 1 - 12 / (10 * 99)  # |r| of 10 configurations capped before Fisher z


def test_verdict_table_holds_the_declared_confirmatory_families(verdict):
    folder, _, v = verdict
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "verdicts.parquet"), v)
    conf = v[v["endpoint"] == "confirmatory"]
    assert set(conf["family"]) == {"rmqm-noise", "synbench-reference"}
    noise = conf[conf["family"] == "rmqm-noise"]
    assert set(noise["target"]) == {f"{t}_1nn" for t in TASKS} and set(noise["score"]) == {"rmqm_noise"}
    ref = conf[conf["family"] == "synbench-reference"]
    assert set(ref["score"]) == {downstream.SYNBENCH_REFERENCE} and len(ref) == 2 * len(TASKS)
    assert sorted(ref["encoders"]) == ["with"] * 3 + ["without"] * 3
    assert set(conf["zoo"]) == {"all encoders"} and set(conf["method"]) == {"spearman"}
    assert conf.index.max() < len(conf)  # confirmatory rows first
    # RMQM under noise is the accuracy itself; SynBench ranks encoders backwards
    assert noise["estimate"].tolist() == pytest.approx([CAP10] * 3) and (noise["verdict"] == "supported").all()
    without = ref[ref["encoders"] == "without"]
    assert without["estimate"].tolist() == pytest.approx([-CAP10] * 3)
    assert (without["verdict"] == "contradicted").all()
    assert (noise["n_configs"] == 10).all() and (noise["n_seeds"] == 2).all()
    assert (v.loc[v["endpoint"] == "exploratory", "verdict"] == "exploratory").all()
    assert v.loc[v["endpoint"] == "exploratory", "p_holm"].isna().all()


def test_holm_runs_within_each_family_with_permutation_p_values(verdict):
    _, _, v = verdict
    conf = v[v["endpoint"] == "confirmatory"]
    for _, part in conf.groupby("family"):  # the smallest p is multiplied by the family's size
        smallest = part.loc[part["p_value"].idxmin()]
        assert smallest["p_holm"] == pytest.approx(min(1.0, len(part) * smallest["p_value"]))
    # 10! permutations are more than 400: Monte Carlo, and none reaches a perfect ranking
    noise = conf[conf["family"] == "rmqm-noise"]
    assert noise["p_value"].tolist() == pytest.approx([1 / 401] * 3) and (noise["p_method"] == "permutation").all()
    assert (noise["p_se"] > 0).all() and (noise["n_valid"] == 400).all()
    assert conf["leave_one_out"].str.contains("lowest without").all()


def test_every_task_is_its_own_row_and_the_aggregate_is_named(verdict):
    _, _, v = verdict
    per_task = v[v["analysis"] == "per task"]
    assert set(per_task["task"]) == set(TASKS)
    aggregate = v[v["analysis"] == "chance-normalised aggregate"]
    assert set(aggregate["task"]) == {AGGREGATE} and set(aggregate["endpoint"]) == {"exploratory"}
    assert aggregate["claim"].str.contains("chance-normalised").all()
    assert not v["target"].isin(["mean_1nn", "mean_knn", "mean_linear"]).any()


def test_head_to_head_partial_and_within_dim_rows(verdict):
    _, _, v = verdict
    paired = v[v["analysis"] == "paired difference"]
    assert set(paired["baseline"]) == {"rankme", downstream.ALPHA}
    assert set(paired["score"]) == {"rmqm_noise", "rmqm_pgd_reference", "rmqm_pgd_own_loss",
                                    "rmqm_pgd_displacement", "synbench", downstream.SYNBENCH_REFERENCE}
    assert len(paired) == 2 * 6 * 2 and set(paired["task"]) == {"fashion-mnist"}
    assert set(paired["p_method"]) == {"bootstrap sign"}
    # r(noise) is the cap, so the difference is cap - r(RankMe) of the per-task row, in each zoo
    for zoo in downstream.ZOOS:
        both = paired[(paired["score"] == "rmqm_noise") & (paired["baseline"] == "rankme") & (paired["zoo"] == zoo)]
        rankme = v[(v["analysis"] == "per task") & (v["score"] == "rankme") & (v["zoo"] == zoo)
                   & (v["target"] == "fashion-mnist_1nn")]
        assert both["estimate"].iloc[0] == pytest.approx(rankme["estimate"].iloc[0] * 0 + both["estimate"].iloc[0])
        assert both["estimate"].iloc[0] + rankme["estimate"].iloc[0] == pytest.approx(
            v[(v["analysis"] == "per task") & (v["score"] == "rmqm_noise") & (v["zoo"] == zoo)
              & (v["target"] == "fashion-mnist_1nn")]["estimate"].iloc[0])
    partial = v[v["analysis"] == "partial on log d"]
    assert set(partial["score"]) == {"rmqm_noise", "synbench", "rankme"}
    noise = partial[partial["score"] == "rmqm_noise"]
    assert noise["estimate"].iloc[0] == pytest.approx(CAP10)  # same estimand: per seed, capped, Fisher mean
    assert (partial["ci_low"] <= partial["estimate"] + 1e-9).all()
    within = v[v["analysis"] == "within dim (pooled)"]
    assert set(within["endpoint"]) == {"exploratory"} and len(within) == 6


def test_a_zoo_too_small_for_a_test_gives_not_measurable(tmp_path):
    write_results(tmp_path, zoo_table(methods=METHODS[2:], dims=(8,)))  # 3 configs, 2 without random-init
    table = downstream.score_table(tmp_path, 0.7, 0.0)
    v = downstream.verdicts(table, tmp_path, n_resamples=50, n_sim=20)
    without = v[v["zoo"] == "without random-init"]
    assert (~without["measurable"].astype(bool)).all()
    assert v[v["zoo"] == "all encoders"]["estimate"].notna().any()
    partial = v[v["analysis"] == "partial on log d"]
    assert (partial["reason"] == "one dimension: nothing to control").all()
    view = downstream.verdict_view(v, analysis="partial on log d")
    assert (view[["estimate", "interval", "p", "p (Holm)"]] == "none").all().all()
    # 3 configurations: 3! = 6 permutations, so the p-value is exact; 1 resample in 9 draws one
    # configuration three times (a constant vector): more than 5 % undefined, so not measurable
    conf = v[(v["family"] == "rmqm-noise")]
    assert (conf["p_se"] == 0).all() and (conf["p_value"] >= 1 / 6 - 1e-12).all()
    assert (conf["verdict"] == "not measurable").all() and conf["reason"].str.contains("resamples undefined").all()


def test_reference_statistic_beside_ours(verdict):
    folder, table, v = verdict
    ref = downstream.reference_comparison(table, v, folder)
    assert (folder / "reference_comparison.parquet").is_file()
    noise = ref.set_index("score").loc["rmqm_noise"]
    # every task's 1-NN accuracy is the score itself: the pooled Pearson r over tasks is 1
    assert noise["reference_r"] == pytest.approx(1.0)
    assert noise["reference_tasks"] == ", ".join(TASKS) and noise["reference_seed"] == 0
    assert noise["reference_n"] == 3 * 10  # one seed, d > 3, stacked over three tasks
    assert noise["fashion-mnist: ours"].endswith("supported")


def test_family_lines_and_view(verdict):
    _, table, v = verdict
    labels = downstream.score_labels(0.7, downstream.score_columns(table), downstream.alpha_expectation(table))
    assert labels[downstream.ALPHA] == "alpha-ReQ (-alpha)"  # every alpha > 1
    lines = downstream.family_lines(v, labels)
    assert len(lines) == 9 and lines[0].startswith("[rmqm-noise] RMQM, white noise vs fashion-mnist_1nn")
    assert "-> supported (10 configurations x 2 seeds, 400/400 resamples defined)" in lines[0]
    view = downstream.verdict_view(v, analysis="paired difference")
    assert list(view.columns) == ["claim", "zoo", "family", "estimate", "interval", "p", "p (Holm)", "n_valid",
                                  "verdict"]
    assert len(view) == 24 and (view["verdict"] == "exploratory").all()
    # no filter: every row; filters combine
    assert len(downstream.verdict_view(v)) == len(v)
    both = downstream.verdict_view(v, analysis="per task", endpoint="confirmatory")
    assert len(both) == int(((v["analysis"] == "per task") & (v["endpoint"] == "confirmatory")).sum()) > 0


def test_forest_plot_highlights_the_confirmatory_rows(verdict):
    _, _, v = verdict
    fig = plots.plot_verdict_forest(v, {"rmqm_noise": "RMQM noise"}, endpoints=("confirmatory", "exploratory"))
    ax = fig.axes[0]
    rows = v[(v["zoo"] == "all encoders") & (v["analysis"] == "per task") & (v["method"] == "spearman")]
    assert len(ax.get_yticklabels()) == len(rows)
    assert ax.get_xlim() == (-1.05, 1.05)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "RMQM noise | fashion-mnist (1nn)" in labels
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["secondary / exploratory",
                                                                    "primary / confirmatory"]
    verdicts = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert verdicts == rows["verdict"].tolist() and {"supported", "contradicted", "exploratory"} <= set(verdicts)
    with pytest.raises(ValueError, match="no spearman rows"):
        plots.plot_verdict_forest(v, zoo="nowhere")


def test_families_count_unmeasurable_rows_and_simulate_the_detectable_effect():
    from rmqm.study.chapters.families import family_verdicts, sensitivity
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 12))  # configuration effects, unrelated; seed noise 0.3
    table = pd.DataFrame([{"method": f"m{c}", "dim": 8, "seed": s, "s": a[c] + 0.3 * rng.normal(),
                           "t": b[c] + 0.3 * rng.normal()} for c in range(12) for s in range(3)])
    base = dict(family="f", score="s", target="t", zoo="z", encoders="without", expected_sign="positive",
                estimate=0.1, ci_low=-0.2, ci_high=0.4)
    rows = pd.DataFrame([{**base, "measurable": True, "p_value": 0.02},
                         {**base, "measurable": False, "p_value": 0.001},  # counted in m with p = 1
                         {**base, "family": "exploratory", "measurable": True, "p_value": 0.001}])
    judged = family_verdicts(rows, 0.05)
    assert judged["p_holm"].iloc[0] == pytest.approx(0.04) and np.isnan(judged["p_holm"].iloc[1])  # m = 2
    assert judged["verdict"].tolist() == ["inconclusive", "not measurable", "exploratory"]  # interval covers 0
    out = sensitivity(judged, lambda r: table, config_cols=("method", "dim"), alpha=0.05, n_sim=100)
    assert out["detectable"].iloc[0].startswith("r >= +") and out["detectable"].iloc[1:].eq("").all()
    assert out["leave_one_out"].iloc[0].endswith(")") and out["leave_one_out"].iloc[2] == ""


def test_only_a_zoo_too_small_for_a_test_is_not_measurable_a_renamed_column_fails():
    from rmqm.stats.inference import crossed_bootstrap
    from rmqm.study.chapters.families import result_row

    two = pd.DataFrame({"method": ["a", "b"], "dim": [8, 8], "seed": [0, 0], "score": [1.0, 2.0], "acc": [0.5, 0.6]})
    row = result_row(downstream._safe(crossed_bootstrap, two, "score", "acc", config_cols=["method", "dim"]))
    assert row["measurable"] is False and np.isnan(row["estimate"])
    assert "need at least 3 configurations" in row["reason"]  # the reason says why, not just "too small"
    with pytest.raises(ValueError, match="renamed"):  # a mistake is not "not measurable"
        downstream._safe(crossed_bootstrap, two, "renamed", "acc", config_cols=["method", "dim"])
