"""Every figure of the book (rmqm.plots) on small synthetic tables: axes, labels, titles,
scales, and the error that names a missing column."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from rmqm import plots  # noqa: E402
from rmqm.metrics.synbench.mixture import expected_bound, raw_accuracy  # noqa: E402

SEEDS = (0, 1, 2)
METHODS = (("cross-entropy", "supervised"), ("nt-xent", "self-supervised"))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def test_book_style_sets_the_figure_size():
    with matplotlib.rc_context():
        plots.book_style()
        assert tuple(matplotlib.rcParams["figure.figsize"]) == (plots.BOOK_WIDTH, 4.5)
        assert matplotlib.rcParams["figure.dpi"] == 100


def test_training_curves_one_panel_per_method():
    curves = pd.DataFrame([dict(step=step, loss=1.0 / (step + 1), **{"smoothed loss": 1.0 / (step + 1)}, method=m,
                                dim="d=8", seed=s) for m, _ in METHODS for s in SEEDS for step in range(5)])
    fig = plots.plot_training_curves(curves)
    assert titles(fig) == ["method = cross-entropy", "method = nt-xent"]
    assert fig.axes[0].get_xlabel() == "optimisation step"
    assert fig.axes[0].get_ylabel() == "training loss (method's own units)"
    assert fig._suptitle.get_text() == "Training curves per pretraining method"
    with pytest.raises(ValueError, match=r"curves lacks column\(s\) \['smoothed loss'\]"):
        plots.plot_training_curves(curves.drop(columns="smoothed loss"))


def test_learning_curves_log2_epochs_one_panel_per_probe_and_dim():
    curves = pd.DataFrame([dict(method=m, dim=d, seed=s, epoch=e, probe=p, accuracy=1 - 0.5 / e)
                           for m, _ in METHODS for d in (8, 16) for s in SEEDS for e in (1, 2, 4)
                           for p in ("in-distribution k-NN", "in-distribution linear")])
    fig = plots.plot_learning_curves(curves)
    assert titles(fig) == ["in-distribution k-NN, d=8", "in-distribution k-NN, d=16",
                           "in-distribution linear, d=8", "in-distribution linear, d=16"]
    assert fig.axes[0].get_xscale() == "log"
    line = fig.axes[0].get_lines()[0]
    assert np.allclose(line.get_xdata(), [1, 2, 4]) and np.allclose(line.get_ydata(), [0.5, 0.75, 0.875])
    with pytest.raises(ValueError, match=r"learning curves lacks column\(s\) \['epoch'\]"):
        plots.plot_learning_curves(curves.drop(columns="epoch"))
    plateaus = pd.DataFrame({"method": ["cross-entropy", "nt-xent"] * 2, "dim": [8, 8, 16, 16],
                             "plateau": [True, False, True, True]})
    fig = plots.plot_learning_curves(curves, plateaus)
    notes = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert notes == ["still improving: nt-xent", "still improving: none"] * 2


def test_downstream_accuracy_panels_per_dim_and_task():
    acc = pd.DataFrame([dict(method=m, family=f, dim=d, seed=s, task=t, probe=p, accuracy=0.5 + 0.1 * s)
                        for m, f in METHODS for d in (8, 16) for s in SEEDS for t in ("digits", "faces")
                        for p in ("1nn", "knn")])
    fig = plots.plot_downstream_accuracy(acc)
    assert titles(fig) == ["digits, d=8", "faces, d=8", "digits, d=16", "faces, d=16"]
    assert fig.axes[-1].get_xlabel() == "accuracy (fraction)"
    bars = [p for p in fig.axes[0].patches if p.get_width() > 0]
    assert sorted({round(p.get_width(), 6) for p in bars}) == [0.6]  # bars are seed means


def summaries() -> pd.DataFrame:
    return pd.DataFrame([dict(rmqm=1.0 + s, method=m, family=f, dim=8, seed=s, perturbation=p)
                         for m, f in METHODS for s in SEEDS for p in ("noise", "pgd")])


def test_rmqm_bars_one_panel_per_alteration():
    fig = plots.plot_rmqm_bars(summaries())
    assert titles(fig) == ["noise", "pgd"]
    assert fig.axes[0].get_xlabel() == "RMQM (dimensionless)" and fig.axes[0].get_ylabel() == "pretraining method"


def levels() -> pd.DataFrame:
    rows = []
    for m, f in METHODS:
        for p in ("noise", "pgd"):
            for d in (8, 16):
                for point in range(4):
                    for k in range(3):
                        rows.append(dict(method=m, family=f, perturbation=p, dim=d, point=point, level=k,
                                         strength=0.1 * k, a=k * (1 + point), b=1.0 + point))
    return pd.DataFrame(rows)


def test_distance_curves_one_column_per_setting_noise_first():
    both = levels()
    three = pd.concat([both[both["perturbation"] == "pgd"].assign(perturbation="pgd-reference"),
                       both.assign(perturbation=both["perturbation"].replace({"pgd": "pgd-own-loss"}))])
    fig = plots.plot_distance_curves(three)
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == [
        "noise: distance from the original", "pgd-reference: distance from the original",
        "pgd-own-loss: distance from the original"]
    assert fig.axes[1].get_xlabel() == "PGD steps $k$"


def test_distance_curves_two_by_two_at_the_largest_dim():
    fig = plots.plot_distance_curves(levels())
    assert titles(fig) == ["noise: distance from the original", "pgd: distance from the original",
                           "noise: step size", "pgd: step size"]
    assert "sigma" in fig.axes[0].get_xlabel() and fig.axes[1].get_xlabel() == "PGD steps $k$"
    assert fig._suptitle.get_text() == "Per-point distance curves, median and 10-90 % band (d = 16)"
    assert fig.axes[0].get_legend() is not None and all(ax.get_legend() is None for ax in fig.axes[1:])
    median = fig.axes[2].get_lines()[0].get_ydata()  # b of cross-entropy: points 1..4, median 2.5
    assert np.allclose(median, 2.5)


def test_point_statistics_log_scale_for_relative_changes():
    points = pd.DataFrame([dict(family=f, perturbation=p, dim=8, A=1.0 + i, B=0.5 + i, S_a=0.1 * (i + 1),
                                S_b=0.0 if i == 0 else 0.2 * i) for _, f in METHODS for p in ("noise", "pgd")
                           for i in range(5)])
    fig = plots.plot_point_statistics(points)
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "linear", "log", "log"]
    assert fig.axes[0].get_ylabel() == "A per point (embedding units)"
    assert fig.axes[3].get_ylabel() == "S_b per point (relative change, log)"


def test_noise_vs_pgd_scatter_one_point_per_model():
    scores = pd.DataFrame({"noise": [1.0, 2.0, 3.0], "pgd": [3.0, 2.0, 1.0], "method": ["a", "b", "c"], "dim": 8})
    fig = plots.plot_noise_vs_pgd(scores)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "RMQM under white noise" and ax.get_ylabel().startswith("RMQM under PGD")
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    assert sorted(map(tuple, offsets)) == [(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)]


def test_relative_change_spikes_log_scale_per_alteration():
    spikes = pd.DataFrame([dict(perturbation=p, family=f, level=k, median=0.1 * k, p99=k)
                           for p in ("noise", "pgd") for _, f in METHODS for k in (1, 2, 3)])
    fig = plots.plot_relative_change_spikes(spikes)
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "log"]
    assert [ax.get_xlabel() for ax in fig.axes] == ["noise level $k$", "PGD step $k$"]
    assert fig.axes[0].get_legend() is not None and fig.axes[1].get_legend() is None
    assert len(fig.axes[1].get_lines()) == 4  # median and p99 of two families


@pytest.mark.parametrize("fn, column, xlabel", [
    (plots.plot_noise_schedules, "noise", "RMQM under white noise"),
    (plots.plot_attack_losses, "attack", "RMQM under PGD"),
])
def test_variant_bars_one_panel_per_dim(fn, column, xlabel):
    table = pd.DataFrame([dict(method=m, dim=d, seed=s, rmqm=1.0, **{column: v})
                          for m, _ in METHODS for d in (8, 16) for s in SEEDS for v in ("x", "y")])
    fig = fn(table)
    assert titles(fig) == ["d = 8", "d = 16"] and fig.axes[0].get_xlabel() == xlabel
    with pytest.raises(ValueError, match=column):
        fn(table.drop(columns=column))


def test_synbench_reference_is_the_closed_form():
    fig = plots.plot_synbench_reference(n=50)
    left, right = fig.axes
    s, a = left.get_lines()[0].get_data()
    assert len(s) == 50 and np.allclose(a, raw_accuracy(s))
    x, e = right.get_lines()[0].get_data()
    assert np.allclose(e, expected_bound(x)) and right.get_yscale() == "log"


def test_synbench_curves_add_the_raw_curve_to_each_method():
    rows = []
    for m, f in METHODS:
        for d in (8, 16):
            for s in SEEDS:
                for src in ("raw", "epsilon=0", "epsilon=0.1"):
                    for t in (0.6, 0.8):
                        rows.append(dict(method=m, family=f, dim=d, seed=s, source=src, accuracy_threshold=t,
                                         expected_bound=1.0 - t if src == "raw" else 0.5 - t / 2))
    fig = plots.plot_synbench_curves(pd.DataFrame(rows))
    assert titles(fig) == ["cross-entropy", "nt-xent"]
    assert fig._suptitle.get_text().startswith("SynBench curves per method (d = 16)")
    raw = [line for line in fig.axes[0].get_lines() if line.get_label() == "raw data"]
    assert len(raw) == 1 and np.allclose(raw[0].get_ydata(), [0.4, 0.2])


def test_synbench_scores_one_line_per_encoder():
    ci = pd.DataFrame([dict(method=m, dim=8, optimizer="adam", epsilon=e, threshold=t, mean=0.5, ci_low=0.4,
                            ci_high=0.6) for m, _ in METHODS for e in (0.0, 0.1) for t in (0.6, 0.7, 0.8)])
    fig = plots.plot_synbench_scores(ci)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["cross-entropy d=8", "nt-xent d=8"]
    assert ax.get_title().startswith("SynBench score per encoder at epsilon = 0:")
    with pytest.raises(ValueError, match="no SynBench score at epsilon 0.5"):
        plots.plot_synbench_scores(ci, epsilon=0.5)


def test_robust_attack_panels_and_title():
    attacks = pd.DataFrame([dict(method=m, dim=d, epsilon=e, robust_accuracy=0.5 - e - r, seed=s, radius=r)
                            for m, _ in METHODS for d in (8, 16) for e in (0.0, 0.2) for s in (0, 1)
                            for r in (0.003, 0.03)])
    fig = plots.plot_robust_attack(attacks, "faces")
    assert titles(fig) == ["L-inf radius 0.003", "L-inf radius 0.03"]
    assert fig._suptitle.get_text().startswith("faces: accuracy under L-inf PGD through encoder and probe")
    assert fig.axes[0].get_ylabel() == "robust accuracy (fraction)"
    with pytest.raises(ValueError, match="robust_accuracy"):
        plots.plot_robust_attack(attacks.drop(columns="robust_accuracy"), "faces")


def test_direction_scores_orders_by_all_ones():
    rows = [dict(choice=c, threshold=0.7, epsilon=0.0, score=base + shift, method=m, dim=8)
            for (m, _), base in zip(METHODS, (0.2, 0.9), strict=False)
            for c, shift in (("all-ones", 0.0), ("pca", -0.1), ("random", 0.05))]
    fig = plots.plot_direction_scores(pd.DataFrame(rows), 0.7)
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"{METHODS[1][0]} d=8", f"{METHODS[0][0]} d=8"]  # the higher all-ones score first
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["all-ones", "pca", "random"]


def test_score_scatter_title():
    table = pd.DataFrame({"s1": [1, 2, 3], "acc": [0.1, 0.5, 0.9], "family": list("abc")})
    fig = plots.plot_score_scatter(table, ["s1"], "acc", title="Scores")
    assert fig._suptitle.get_text() == "Scores"
    assert plots.plot_score_scatter(table, ["s1"], "acc")._suptitle is None


def test_correlations_mean_interval_and_seed_dots():
    scores = ["x", "y"]
    corr = pd.DataFrame([dict(zoo=z, score=s, target="mean_1nn", method=m, mean=0.5, ci_low=0.25, ci_high=0.75)
                         for z in ("all", "trained") for s in scores for m in ("pearson", "spearman", "kendall")])
    per_seed = pd.DataFrame([dict(zoo=z, score=s, target="mean_1nn", method=m, r=0.5 + 0.1 * k)
                             for z in ("all", "trained") for s in scores for m in ("pearson", "spearman", "kendall")
                             for k in range(3)])
    labels = {"x": "score X", "y": "score Y"}
    fig = plots.plot_correlations(corr, per_seed, scores, labels)
    assert titles(fig) == ["Pearson", "Spearman", "Kendall"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["score X", "score Y"]
    assert fig.axes[0].get_xlim() == (-1.05, 1.05)
    dots = [c for c in fig.axes[0].collections if len(c.get_offsets()) == 6]  # 3 seeds x 2 scores per zoo
    assert len(dots) == 2
    assert "95% t-interval" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match=r"score\(s\) \['y'\] have no label"):
        plots.plot_correlations(corr, per_seed, scores, {"x": "score X"})
