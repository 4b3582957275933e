"""The study's chapter functions (rmqm.study.chapters) on small synthetic tables, and once
end to end on a real tiny zoo."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from tqdm import TqdmWarning

from rmqm.study.chapters import (
    interval_pivot,
    load_zoo,
    model_meta,
    noise_vs_pgd,
    print_lines,
    probe_columns,
    seed_line,
    setup,
    ssl_vs_supervised,
    study_settings,
    synbench,
    synbench_claims,
    zoo,
    zoo_rmqm,
)

matplotlib.use("Agg")

SEEDS = (0, 1, 2)
#: (method, family, accuracy level): trained encoders well above random-init.
ENCODERS = (("cross-entropy", "supervised", 0.8), ("nt-xent", "self-supervised", 0.7),
            ("random-init", "random", 0.3))


def zoo_table() -> pd.DataFrame:
    """A zoo table of 3 encoders x 3 seeds, with the columns train_zoo gives."""
    rows = []
    for seed in SEEDS:
        for method, family, level in ENCODERS:
            rows.append(dict(
                name=f"{method}_s{seed}", method=method, family=family, dim=8, optimizer="adam", seed=seed,
                data="digits", stopped_early=False, train_time_s=1.23456, epochs_completed=1, final_loss=0.5,
                digits_1nn=level + 0.01 * seed, digits_knn=level + 0.02 * seed, digits_linear=level + 0.03 * seed,
                faces_knn=level - 0.1 + 0.01 * seed, rankme=10 * level + seed, alpha_req=2.0 - level,
            ))
    return pd.DataFrame(rows)


def t_half_width(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))


# --- common -----------------------------------------------------------------------------

def test_setup_styles_filters_and_creates_the_folder(tmp_path):
    target = tmp_path / "a" / "results"
    with warnings.catch_warnings(), matplotlib.rc_context(), pd.option_context("display.max_colwidth", 50):
        out = setup(str(target))
        assert out == target and target.is_dir()
        assert pd.get_option("display.max_colwidth") is None  # no claim cut to "..." in a table
        assert tuple(matplotlib.rcParams["figure.figsize"]) == (10.0, 4.5)
        assert matplotlib.rcParams["axes.titleweight"] == "bold"
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("no ipywidgets", TqdmWarning, stacklevel=1)
            warnings.warn("kept", UserWarning, stacklevel=1)
        assert [str(w.message) for w in caught] == ["kept"]
        assert setup(target) == target  # an existing folder is fine
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        setup(tmp_path / "file")
    with pytest.raises(TypeError, match="results_dir must be a path"):
        setup(3)


def test_probe_columns_and_model_meta():
    table = zoo_table().assign(indist_knn=0.9, indist_linear=0.8)  # in-distribution: not a transfer task
    assert probe_columns(table) == ["digits_1nn", "digits_knn", "digits_linear", "faces_knn"]
    row = next(table.itertuples())
    assert model_meta(row) == dict(name="cross-entropy_s0", method="cross-entropy", family="supervised", dim=8,
                                   optimizer="adam", seed=0)


def test_load_zoo_reads_the_table_or_names_the_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match="01_model_zoo"):
        load_zoo(tmp_path)
    zoo_table().to_parquet(tmp_path / "zoo.parquet")
    pd.testing.assert_frame_equal(load_zoo(tmp_path), zoo_table())


def test_interval_pivot_formats_each_group():
    ci = pd.DataFrame({"method": ["a", "a", "b"], "metric": ["x", "y", "x"], "mean": [0.5, -0.25, 0.125],
                       "ci_low": [0.4, -0.5, np.nan], "ci_high": [0.6, 0.0, np.nan]})
    out = interval_pivot(ci, ["method"], "metric", digits=2, signed=True)
    assert out.loc["a", "x"] == "+0.50 [+0.40, +0.60]" and out.loc["a", "y"] == "-0.25 [-0.50, +0.00]"
    assert out.loc["b", "x"] == "+0.12"  # no interval with one seed
    assert pd.isna(out.loc["b", "y"])


def test_seed_line_is_the_t_interval_with_per_seed_values():
    values = [0.1, 0.2, 0.6]
    half = t_half_width(values)
    low, high = max(0.3 - half, -1), min(0.3 + half, 1)
    assert seed_line(values, "rho", (-1, 1)) == (
        f"rho: +0.30 [{low:+.2f}, {high:+.2f}] over 3 seeds (per seed: 0.10, 0.20, 0.60)")
    assert seed_line(values, "fraction", (0, 1), digits=1).startswith("fraction: 0.3 [0.0, ")  # clipped, unsigned


def test_print_lines(capsys):
    print_lines([])
    assert capsys.readouterr().out == ""
    print_lines(["a", "b"])
    assert capsys.readouterr().out == "a\nb\n"


# --- 01 zoo -----------------------------------------------------------------------------

def test_zoo_headline_overview_and_long_accuracy():
    table = zoo_table()
    assert zoo.zoo_headline(table) == ("9 models (3 encoders x 3 seeds) pretrained on digits; transfer tasks: "
                                       "digits, faces; 0 stopped early by a time budget")
    overview = zoo.zoo_overview(table)
    assert list(overview.columns[:4]) == ["method", "family", "dim", "seed"]
    assert "train_time_s" not in overview.columns and "rankme" in overview.columns  # load, not a result
    long = zoo.downstream_long(table)
    assert len(long) == 9 * 4
    assert set(long["task"]) == {"digits", "faces"} and set(long["probe"]) == {"1nn", "knn", "linear"}
    faces = long[long["task_probe"] == "faces_knn"].set_index(["method", "seed"])["accuracy"]
    assert faces.loc[("nt-xent", 2)] == pytest.approx(0.62)


def test_training_times_per_method_and_dim_leave_the_random_init_out():
    table = zoo_table()
    table["train_time_s"] = np.arange(len(table), dtype=float)
    times = zoo.training_times(table)
    trained = table[table["family"] != "random"]
    assert list(times.columns) == ["method", "dim", "models", "mean_s", "min_s", "max_s"]
    assert set(times["method"]) == set(trained["method"]) and times["models"].eq(3).all()
    for r in times.itertuples():
        own = trained.loc[trained["method"] == r.method, "train_time_s"]
        assert (r.mean_s, r.min_s, r.max_s) == (round(own.mean(), 1), own.min(), own.max())
    with pytest.raises(ValueError, match="train_time_s"):
        zoo.training_times(table.drop(columns="train_time_s"))


def test_family_scores_average_each_family():
    out = zoo.family_scores(zoo_table())
    assert set(out.index) == {"supervised", "self-supervised", "random"}
    assert "dim" not in out.columns and "seed" not in out.columns
    assert out.loc["random", "digits_knn"] == pytest.approx(0.32)  # mean of 0.30, 0.32, 0.34


def test_zoo_reading_names_the_best_encoder_and_the_random_baseline():
    lines, table = zoo.zoo_reading(zoo_table())
    assert lines[0].startswith("digits_knn: seed-mean accuracies from 0.320 to 0.820; best: cross-entropy at d=8")
    assert lines[1].startswith("faces_knn: seed-mean accuracies from 0.210 to 0.710")
    assert "over 3 seeds" in lines[2]
    assert lines[3].startswith("trained encoders beat the random-init network on average in 1.00 ")
    assert list(table.columns) == ["digits_knn", "faces_knn"]
    half = t_half_width([0.8, 0.82, 0.84])
    assert table.loc[("cross-entropy", 8, "adam"), "digits_knn"] == f"0.820 [{0.82 - half:.3f}, {0.82 + half:.3f}]"
    no_random = zoo_table().query("family != 'random'")
    assert len(zoo.zoo_reading(no_random)[0]) == 3  # no baseline line without random-init


def test_seed_variance_splits_an_additive_zoo_exactly():
    out = zoo.seed_variance(zoo_table()).set_index("quantity")
    assert list(out.index) == ["digits_1nn", "digits_knn", "digits_linear", "faces_knn", "rankme", "alpha_req"]
    # rankme = 10 level + seed: configuration variance 10^2 var(level) = 7, seed variance 1, no interaction
    assert out.loc["rankme", "seed shift %"] == pytest.approx(12.5)
    assert out.loc["rankme", "configuration %"] == pytest.approx(87.5)
    assert (out["configuration x seed %"].abs() < 1e-9).all()
    assert out.loc["alpha_req", "seed shift %"] == 0.0 and out.loc["digits_1nn", "configurations x seeds"] == "3 x 3"


# --- 02 ssl vs supervised ---------------------------------------------------------------

def summaries_table() -> pd.DataFrame:
    rows = []
    for seed in SEEDS:
        for i, (method, family, _) in enumerate(ENCODERS):
            for setting, sign in (("noise", 1), ("pgd", -1)):
                rows.append(dict(scope="all", rmqm=1.0 + sign * i + 0.1 * seed, mean_A=0.5, mean_B=0.25,
                                 inv_S_a=1.0 + i, inv_S_b=0.25, n_dropped=0, name=f"{method}_s{seed}", method=method,
                                 family=family, dim=8, optimizer="adam", seed=seed, perturbation=setting))
    return pd.DataFrame(rows)


def test_rmqm_intervals_and_components():
    summaries = summaries_table()
    ci = ssl_vs_supervised.rmqm_intervals(summaries)
    assert list(ci.columns) == ["noise", "pgd"]
    half = t_half_width([3.0, 3.1, 3.2])
    assert ci.loc[("random-init", 8, "adam"), "noise"] == f"3.100 [{3.1 - half:.3f}, {3.1 + half:.3f}]"
    comp = ssl_vs_supervised.rmqm_components(summaries)
    nt = comp[(comp["method"] == "nt-xent") & (comp["perturbation"] == "pgd")].iloc[0]
    assert nt["rmqm"] == pytest.approx(0.1) and nt["share_inverse"] == pytest.approx(round(2.25 / 3.0, 3))


def points_table(ssl_b: float) -> pd.DataFrame:
    """Per-point statistics: self-supervised B = ssl_b + noise, supervised B = 1; S_b the other way round."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in SEEDS:
        for setting in ("noise", "pgd"):
            for family, b, s in (("self-supervised", ssl_b, 0.1), ("supervised", 1.0, 0.5)):
                for point in range(5):
                    rows.append(dict(point=point, A=1.0, B=b + 0.01 * rng.standard_normal(), S_a=0.2,
                                     S_b=s + 0.01 * rng.standard_normal(), family=family, dim=8, seed=seed,
                                     perturbation=setting))
    return pd.DataFrame(rows)


def test_step_verdicts_support_and_contradict():
    verdict = ssl_vs_supervised.step_verdicts(points_table(ssl_b=1.5))
    assert list(verdict["perturbation"]) == ["noise", "pgd"] and set(verdict["seeds"]) == {3}
    assert set(verdict["larger steps"]) == {"supported: positive"}
    assert set(verdict["steadier steps"]) == {"supported: positive"}
    assert ssl_vs_supervised.verdict_lines(verdict) == [
        "larger steps: supported in 2 of 2, contradicted in 0 of 2, inconclusive in 0 of 2",
        "steadier steps: supported in 2 of 2, contradicted in 0 of 2, inconclusive in 0 of 2",
        "Verdict: the paper's claim (larger AND steadier) holds in every comparison.",
    ]
    smaller = ssl_vs_supervised.step_verdicts(points_table(ssl_b=0.5))
    assert set(smaller["larger steps"]) == {"contradicted: negative"}
    assert ssl_vs_supervised.verdict_lines(smaller)[-1] == (
        "Verdict: the paper's claim (larger AND steadier, both supported over seeds) holds in 0 of 2 comparisons.")


def _verdict_of(setting: str, steadier: bool) -> pd.DataFrame:
    """Per-point rows of one setting: self-supervised steps steadier (S_b 0.1 vs 0.5) or not."""
    points = points_table(ssl_b=1.5).query("perturbation == 'pgd'")
    if not steadier:
        points = points.assign(S_b=np.where(points["family"] == "supervised", 0.1, 0.5)
                               + 0.01 * np.random.default_rng(1).standard_normal(len(points)))
    return points.assign(perturbation=setting)


def test_per_class_rmqm_means_over_seeds_and_spread():
    per_class = pd.DataFrame([dict(scope=f"label={c}", rmqm=1.0 + c + 0.1 * seed, method="nt-xent", dim=8,
                                   perturbation="noise", seed=seed) for c in (0, 1, 10) for seed in SEEDS])
    table = ssl_vs_supervised.per_class_rmqm(per_class)
    assert list(table.columns) == ["0", "1", "10", "spread"]  # classes in numeric order
    assert table.loc[("nt-xent", 8, "noise")].tolist() == pytest.approx([1.1, 2.1, 11.1, 10.0])


# --- 03 noise vs PGD --------------------------------------------------------------------

def test_noise_pgd_scores_and_their_agreement():
    scores = noise_vs_pgd.noise_pgd_scores(summaries_table())
    assert len(scores) == 9 and {"noise", "pgd"} <= set(scores.columns)
    lines = noise_vs_pgd.alteration_agreement(scores)
    assert lines[0] == "Rank agreement of noise and pgd over the 3 encoders of each seed:"
    # pgd reverses the noise order in every seed: rho = tau = -1 with no spread
    assert lines[1] == "  Spearman rho: -1.00 [-1.00, -1.00] over 3 seeds (per seed: -1.00, -1.00, -1.00)"
    assert lines[2].startswith("  Kendall tau: -1.00 [-1.00, -1.00] over 3 seeds")


def test_relative_changes_count_infinite_points():
    # point 1 of model m has a zero step at level 1: an infinite relative change at level 2
    levels = pd.DataFrame({
        "perturbation": "noise", "family": "f", "name": "m", "seed": 0,
        "point": [0, 0, 0, 1, 1, 1], "level": [1, 2, 3, 1, 2, 3], "strength": [0.1, 0.2, 0.3] * 2,
        "a": [1.0, 2.0, 3.0, 1.0, 2.0, 4.0], "b": [1.0, 1.0, 1.0, 0.0, 1.0, 2.0],
    })
    spikes, counts = noise_vs_pgd.relative_changes(levels)
    assert list(spikes["level"]) == [2, 3]
    assert spikes["median"].tolist() == pytest.approx([0.0, 0.5])  # b: 1 -> 1 (0), point 1: 1 -> 2 (1)
    assert counts.loc[("noise", "f")].tolist() == [1, 2]


def variant_table(column: str, labels: tuple[str, str], n_methods: int) -> pd.DataFrame:
    rows = []
    for seed in SEEDS:
        for i in range(n_methods):
            for j, label in enumerate(labels):
                rows.append(dict(method=f"m{i}", dim=8, optimizer="adam", seed=seed, **{column: label},
                                 rmqm=1.0 + i + 0.5 * j))
    return pd.DataFrame(rows)


def test_schedule_summary_fraction_and_agreement():
    lines, means = noise_vs_pgd.schedule_summary(
        variant_table("noise", (noise_vs_pgd.FRESH, noise_vs_pgd.NESTED), 3))
    assert lines[0].startswith("fraction of encoders that nested noise scores higher: 1.00 [1.00, 1.00] over 3 seeds")
    assert lines[1].startswith("rank agreement of fresh and nested noise, Spearman rho: +1.00")
    assert means.loc[("m2", 8, "adam")].tolist() == [3.0, 3.5]


MODES = {"pgd-reference": "reference", "pgd-own-loss": "own loss", "pgd-displacement": "displacement"}


def mode_summaries(n_methods: int) -> pd.DataFrame:
    """Summaries under three PGD modes and noise: own loss ranks like the reference, displacement reverses it."""
    rows = []
    for seed in SEEDS:
        for i in range(n_methods):
            for setting, rmqm in (("noise", 0.0), ("pgd-reference", i), ("pgd-own-loss", 2 * i),
                                  ("pgd-displacement", -i)):
                rows.append(dict(name=f"m{i}_s{seed}", method=f"m{i}", family="f", dim=8, optimizer="adam", seed=seed,
                                 perturbation=setting, rmqm=rmqm + 0.1 * seed))
    return pd.DataFrame(rows)


def test_pgd_mode_table_and_summary():
    table = noise_vs_pgd.pgd_mode_table(mode_summaries(3), MODES)
    assert list(dict.fromkeys(table["attack"])) == list(MODES.values()) and len(table) == 27
    lines, means = noise_vs_pgd.mode_summary(table, "reference")
    assert lines[0] == "rank agreement of reference and own loss over 3 encoders:"
    assert lines[1].startswith("  Spearman rho: +1.00 [+1.00, +1.00] over 3 seeds")
    assert lines[4].startswith("  Spearman rho: -1.00 [-1.00, -1.00] over 3 seeds")  # displacement reverses
    assert list(means.columns) == list(MODES.values())
    assert means.loc[("m2", 8, "adam")].tolist() == pytest.approx([2.1, 4.1, -1.9])
    lines, _ = noise_vs_pgd.mode_summary(noise_vs_pgd.pgd_mode_table(mode_summaries(2), MODES), "reference")
    assert lines == []  # fewer than 3 encoders per seed: no rank agreement
    with pytest.raises(ValueError, match=r"no RMQM summaries for PGD mode\(s\) \['pgd-x'\]"):
        noise_vs_pgd.pgd_mode_table(mode_summaries(3), {"pgd-x": "x"})
    with pytest.raises(ValueError, match="reference mode 'nope' is not among"):
        noise_vs_pgd.mode_summary(table, "nope")


# --- 04 SynBench ------------------------------------------------------------------------

def test_mean_scales():
    assert synbench.mean_scales(0.7) == [0.7, 1.4, 2.1, 2.8, 3.5, 4.2, 4.9]
    assert len(synbench.mean_scales(0.1)) == 49
    for bad in (0.0, -1.0, 5.0, float("nan")):
        with pytest.raises(ValueError, match="syn_s_step"):
            synbench.mean_scales(bad)
    assert synbench.synbench_headline(zoo_table(), [0.7, 1.4], 64) == (
        "9 models (3 seeds), 2 mean scales s from 0.7 to 1.4, 64 train + 64 test samples each")


def test_probe_task_split():
    task, split = synbench.probe_task("digits")
    assert split == ("all" if task in ("digits", "faces", "textures") else "test")


def test_synbench_intervals_and_table():
    rows = [dict(method="m", dim=8, optimizer="adam", epsilon=eps, threshold=t, seed=s, score=0.5 + 0.1 * s + eps)
            for eps in (0.0, 0.1) for t in (0.6, 0.65, 0.7) for s in SEEDS]
    ci = synbench.synbench_intervals(pd.DataFrame(rows))
    assert len(ci) == 6 and set(ci["n_seeds"]) == {3}
    table = synbench.synbench_score_table(ci)
    assert [c[1] for c in table.columns] == [0.6, 0.7, 0.6, 0.7]  # 0.65 is not shown
    assert table.iloc[0, 0].startswith("0.600 [")


# --- end to end on a real tiny zoo ------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    results = tmp_path_factory.mktemp("results")
    table = zoo.build_zoo(results, ["cross-entropy", "nt-xent", "random-init"], [8], [0, 1], data="digits",
                          arch="tiny", optimizers=["adam"], epochs=2, checkpoints=[1, 2], n_train=128,
                          time_budget_s=None, n_eval=40, n_transfer=60)
    return results, table


@pytest.mark.slow
def test_chapters_end_to_end_on_a_tiny_zoo(tiny_results):
    results, checkpoints = tiny_results
    assert set(checkpoints.loc[checkpoints["family"] != "random", "epoch"]) == {1, 2}
    pd.testing.assert_frame_equal(pd.read_parquet(results / "zoo_checkpoints.parquet"), checkpoints)
    table = load_zoo(results)  # the last checkpoint of each model
    pd.testing.assert_frame_equal(table, zoo.headline_checkpoints(checkpoints))
    assert len(table) == 6 and set(table["seed"]) == {0, 1}
    assert set(table.loc[table["family"] != "random", "epoch"]) == {2}
    curves = zoo.learning_curves_long(checkpoints)
    assert set(curves["epoch"]) == {1, 2} and set(curves["method"]) == {"cross-entropy", "nt-xent"}
    assert len(curves) == 2 * 2 * 2 * 2  # 2 methods x 2 seeds x 2 epochs x 2 probes
    lines, plateaus = zoo.plateau_summary(checkpoints)
    assert len(plateaus) == 2 and lines[-1].endswith(("on a plateau at their last checkpoint.",
                                                      "partly trained encoders."))
    curves = zoo.training_curves(table, results / "zoo", window=3)
    assert set(curves["method"]) == {"cross-entropy", "nt-xent"} and set(curves["dim"]) == {"d=8"}
    first = curves[(curves["method"] == "nt-xent") & (curves["seed"] == 0)]
    assert first["smoothed loss"].iloc[0] == first["loss"].iloc[0]

    settings = study_settings(3, 1.0, 3, 0.01, 0.3, ["reference", "own-loss", "displacement"], 4)
    rmqm_of = zoo_rmqm(results, table, 6, settings, batch_size=8)
    measured = ssl_vs_supervised.rmqm_scores(table, rmqm_of, results)
    written = pd.read_parquet(results / "rmqm_scores.parquet")
    assert len(written) == 24 and "scope" not in written.columns
    assert list(written.columns[-6:]) == ["name", "method", "family", "dim", "optimizer", "seed"]
    assert written.groupby("perturbation").size().to_dict() == {
        "noise": 6, "pgd-displacement": 6, "pgd-own-loss": 6, "pgd-reference": 6}
    assert len(measured.points) == 24 * 6 and len(measured.levels) == 24 * 6 * 2  # levels 1, 2 (0 is clean)
    assert set(measured.per_class["scope"]) <= {f"label={c}" for c in range(10)} and len(measured.per_class)
    verdict = ssl_vs_supervised.step_verdicts(measured.points, results)
    pd.testing.assert_frame_equal(pd.read_parquet(results / "rmqm_step_verdicts.parquet"), verdict)
    modes = noise_vs_pgd.pgd_mode_table(measured.summaries, {s: s for s in settings if s != "noise"})
    assert len(modes) == 18

    nested = noise_vs_pgd.noise_schedules(table, rmqm_of)
    assert len(nested) == 12 and set(nested["noise"]) == {noise_vs_pgd.FRESH, noise_vs_pgd.NESTED}
    fresh = nested[nested["noise"] == noise_vs_pgd.FRESH].reset_index(drop=True)["rmqm"]
    noise_rows = measured.summaries[measured.summaries["perturbation"] == "noise"].reset_index(drop=True)["rmqm"]
    assert fresh.tolist() == noise_rows.tolist()  # the same cached measurement

    tables = synbench.synbench_zoo(table, results, [1.0, 2.5], [0.0], 32, 5, 64)  # Phi(2.5) > 0.99
    assert set(tables) == {"curves", "scores", "table"}
    pd.testing.assert_frame_equal(pd.read_parquet(results / "synbench_scores.parquet"), tables["scores"])
    assert set(tables["scores"]["seed"]) == {0, 1} and set(tables["curves"]["method"]) == set(table["method"])
    directions = synbench_claims.synbench_directions(table, results, tables["scores"], [1.0, 2.5], [0.0, 0.2], 32,
                                                     16, 3, 64)
    pd.testing.assert_frame_equal(pd.read_parquet(results / "synbench_directions.parquet"), directions)
    per = directions.groupby(["choice", "seed"])["direction"].nunique().to_dict()
    assert per == {**{("all-ones", s): 1 for s in (0, 1)}, ("random-zero-mean", 0): 2, ("random-zero-mean", 1): 1,
                   ("random", 0): 2, ("random", 1): 1}  # 3 random directions of each kind over 2 seeds
    assert directions["score"].notna().all()
    summary = synbench_claims.direction_summary(directions, 0.7)
    assert len(summary) == 3 and {"rank all-ones", "rank random-zero-mean", "rank random"} <= set(summary.columns)
    attacks, task = synbench_claims.claim2_attacks(table, results, 200, 20, [0.0, 0.2], [0.02], 3)
    assert task == synbench.probe_task("digits")[0]
    assert len(attacks) == 12 and (attacks["robust_accuracy"] <= attacks["accuracy"]).all()
    assert set(attacks["radius"]) == {0.02}
    again, _ = synbench_claims.claim2_attacks(table, results, 200, 20, [0.0, 0.2], [0.02], 3)  # from the store
    pd.testing.assert_frame_equal(again, attacks)
    guidance = synbench_claims.claim2_guidance(attacks, directions, 0.7)
    assert len(guidance) == 6 * 3 and set(guidance["choice"]) == set(synbench_claims.DIRECTION_CHOICES)


def _ablation_points(factors, gap_of, seeds=(0, 1, 2, 3), dims=(8, 16)):
    """Per-point S_b of every ablation cell: self-supervised 0.2, supervised 0.2 + gap_of(cell)."""
    from rmqm.study.chapters.common import factorial_settings

    ablation = factorial_settings(5, 2 / 255, 0.3, factors)
    rng = np.random.default_rng(0)
    rows = []
    for cell in ablation.cells.to_dict("records"):
        for seed in seeds:
            for dim in dims:
                shift = 0.05 * seed  # shared by both families of a seed: cancels in the gap
                for family, s_b in (("self-supervised", 0.2), ("supervised", 0.2 + gap_of(cell))):
                    for point in range(5):
                        rows.append(dict(point=point, S_b=s_b + shift + 0.001 * rng.standard_normal(),
                                         family=family, dim=dim, seed=seed, perturbation=cell["setting"]))
    return ablation, pd.DataFrame(rows)


def test_factorial_settings_cells_and_errors():
    from rmqm.study.chapters.common import factorial_settings

    small = factorial_settings(30, 2 / 255, 0.3, ["augment_output", "augment_gradient"], 128)
    assert len(small.settings) == 4 and not small.cells["restarts"].any()  # restarts held off: one trajectory
    assert all(s["pgd_mode"] == "reference" and s["batch_size"] == 128 for s in small.settings.values())
    full = factorial_settings(30, 2 / 255, 0.3, ["augment_output", "augment_gradient", "restarts", "rotation"])
    assert len(full.settings) == 9 and full.cells["sensitivity"].sum() == 1
    assert full.cells.loc[full.cells["sensitivity"], "rotation"].item() == "image"
    with pytest.raises(ValueError, match="distinct names"):
        factorial_settings(30, 2 / 255, 0.3, ["rotation"])
    with pytest.raises(ValueError, match="distinct names"):
        factorial_settings(30, 2 / 255, 0.3, ["restarts", "restarts"])


def test_factorial_chapter_recovers_planted_effects_and_says_them():
    factors = ["augment_output", "augment_gradient", "restarts", "rotation"]

    def gap(cell):  # output rotation +0.3, gradient +0.1, restarts 0, per image +0.05 at the all-on cell
        return 0.02 + 0.3 * cell["augment_output"] + 0.1 * cell["augment_gradient"] + 0.05 * cell["sensitivity"]

    ablation, points = _ablation_points(factors, gap)
    gaps = ssl_vs_supervised.factorial_gaps(points, ablation.cells)
    assert len(gaps) == 9 * 4 * 2
    effects = ssl_vs_supervised.factorial_effect_table(gaps, ablation.factors).set_index("effect")
    assert effects.loc["output rotation", "estimate"] == pytest.approx(0.3, abs=0.01)
    assert effects.loc["randomness in the gradient path", "estimate"] == pytest.approx(0.1, abs=0.01)
    assert abs(effects.loc["per-level restarts", "estimate"]) < 0.01
    assert effects.loc["rotation per image instead of per batch", "estimate"] == pytest.approx(0.05, abs=0.01)
    table = ssl_vs_supervised.factorial_cell_table(gaps, ablation.factors)
    assert len(table) == 9 and {"d=8", "d=16", "gap, mean over dims"} <= set(table.columns)
    text = ssl_vs_supervised.factorial_headline(gaps, effects.reset_index(), ablation.factors)
    assert text.startswith("The steadier-steps gap (supervised minus self-supervised median S_b")
    assert "output rotation contributes +0.300" in text and "per-level restarts contributes" in text
    assert "unresolved" in text.split("per-level restarts contributes")[1].split(";")[0]
    assert "fivefold" not in text


def test_claim_headline_puts_the_artefact_free_settings_first(tmp_path):
    steadier = _verdict_of("pgd-reference", True)
    unsteady = _verdict_of("pgd-own-loss", False)
    points = pd.concat([steadier, unsteady], ignore_index=True)
    judged = ssl_vs_supervised.step_family_verdicts(points, tmp_path)
    assert pd.read_parquet(tmp_path / "family_rmqm-steps.parquet")["verdict"].tolist() == judged["verdict"].tolist()
    assert judged["label"].tolist() == ["pgd-reference: larger steps", "pgd-reference: steadier steps",
                                        "pgd-own-loss: larger steps", "pgd-own-loss: steadier steps"]
    lines = ssl_vs_supervised.claim_headline(judged)
    assert lines[0].startswith("pgd-own-loss (artefact-free): steadier steps -0.4")
    assert lines[0].endswith("-> contradicted.") and "over the family's 4 tests" in lines[0]
    assert lines[1].startswith("pgd-reference (what the paper computed): steadier steps +0.4")
    assert lines[1].endswith("-> supported.") and "over 3 seeds (d = 8 averaged" in lines[1]


def test_factorial_headline_with_one_seed_says_there_is_no_interval():
    factors = ["augment_output", "augment_gradient"]
    ablation, points = _ablation_points(factors, lambda cell: 0.3 * cell["augment_output"], seeds=(0,))
    gaps = ssl_vs_supervised.factorial_gaps(points, ablation.cells)
    effects = ssl_vs_supervised.factorial_effect_table(gaps, ablation.factors)
    text = ssl_vs_supervised.factorial_headline(gaps, effects, ablation.factors)
    assert "output rotation contributes +0.300 (no interval: fewer than two seeds)" in text
