"""Analysis and plotting helpers of the study notebooks."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from rmqm._utils.validation import check_bounds
from rmqm.experiments.cache import cached_table
from rmqm.experiments.store import ResultsStore
from rmqm.plots.figures import plot_distance_bands, plot_score_scatter
from rmqm.stats.correlations import (
    bootstrap_correlations,
    correlation,
    rank_agreement,
    seed_correlations,
)
from rmqm.stats.curves import level_bands, relative_change_table
from rmqm.stats.intervals import per_seed, t_errorbar, t_interval
from rmqm.stats.verdicts import family_contrast, format_interval, interval_verdict


def levels_table() -> pd.DataFrame:
    # two points (method m), three levels; a grows linearly for point 0, by doubling for point 1
    return pd.DataFrame({
        "method": "m",
        "point": [0, 0, 0, 1, 1, 1],
        "level": [1, 2, 3, 1, 2, 3],
        "strength": [0.1, 0.2, 0.3] * 2,
        "a": [1.0, 2.0, 3.0, 1.0, 2.0, 4.0],
        "b": [1.0, 1.0, 1.0, 0.0, 1.0, 2.0],
    })


def test_cached_table_computes_once(tmp_path):
    store = ResultsStore(tmp_path / "store")
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"x": [1.0, 2.0]})

    config = {"kind": "test", "seed": 0}
    first = cached_table(store, config, compute)
    second = cached_table(ResultsStore(tmp_path / "store"), config, compute)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(first.reset_index(drop=True), second.reset_index(drop=True))
    assert list(second["x"]) == [1.0, 2.0]
    with pytest.raises(TypeError, match="DataFrame"):
        cached_table(store, {"kind": "other", "seed": 0}, lambda: [1, 2])


def test_level_bands_median_and_extremes():
    bands = level_bands(levels_table(), by=("method",), quantiles=(0.0, 1.0))
    a3 = bands[(bands["series"] == "a") & (bands["level"] == 3)].iloc[0]
    assert (a3["low"], a3["median"], a3["high"], a3["n"]) == (3.0, 3.5, 4.0, 2)
    b1 = bands[(bands["series"] == "b") & (bands["level"] == 1)].iloc[0]
    assert (b1["low"], b1["high"]) == (0.0, 1.0)
    assert len(bands) == 2 * 3  # two series, three levels, one method
    with pytest.raises(ValueError, match="quantiles"):
        level_bands(levels_table(), quantiles=(0.9, 0.1))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['family'\]"):
        level_bands(levels_table(), by=("family",))


def test_relative_change_table_matches_definition():
    rc = relative_change_table(levels_table(), by=("method",))
    a0 = rc[(rc["series"] == "a") & (rc["point"] == 0)].sort_values("level")["abs_rel_change"].tolist()
    assert a0 == pytest.approx([1.0, 0.5])           # (2-1)/1, (3-2)/2
    b1 = rc[(rc["series"] == "b") & (rc["point"] == 1)].sort_values("level")["abs_rel_change"].tolist()
    assert np.isinf(b1[0]) and b1[1] == pytest.approx(1.0)  # previous step 0 -> inf
    assert set(rc["level"]) == {2, 3}


def test_correlation_coefficients():
    x = np.arange(1.0, 8.0)
    y = np.exp(x)  # monotone but not linear
    assert correlation(x, y, "spearman")[0] == pytest.approx(1.0)
    assert correlation(x, y, "kendall")[0] == pytest.approx(1.0)
    assert correlation(x, y, "pearson")[0] < 0.95
    assert np.isnan(correlation(x, np.ones_like(x))[0])
    with pytest.raises(ValueError, match="unknown correlation"):
        correlation(x, y, "distance")
    with pytest.raises(ValueError, match="at least 3"):
        correlation([1.0, 2.0], [1.0, 2.0])
    agree = rank_agreement(x, -x)
    assert agree["spearman"] == pytest.approx(-1.0) and agree["kendall"] == pytest.approx(-1.0)


def test_bootstrap_correlations_intervals():
    rng = np.random.default_rng(0)
    n = 40
    x = rng.normal(size=n)
    table = pd.DataFrame({"exact": 2 * x + 1, "noise": rng.normal(size=n), "acc": x})
    table.loc[0, "noise"] = np.nan  # left out of that pair only
    out = bootstrap_correlations(table, ["exact", "noise"], ["acc"], n_boot=200, seed=1)
    assert len(out) == 2 * 3
    exact = out[out["score"] == "exact"]
    assert np.allclose(exact["r"], 1.0) and np.allclose(exact[["ci_low", "ci_high"]], 1.0)
    noise = out[(out["score"] == "noise") & (out["method"] == "pearson")].iloc[0]
    assert noise["n"] == n - 1 and noise["ci_low"] < noise["r"] < noise["ci_high"]
    assert noise["ci_low"] < 0 < noise["ci_high"]  # independent columns: the interval covers 0
    again = bootstrap_correlations(table, ["noise"], ["acc"], n_boot=200, seed=1)
    assert again["ci_low"].tolist() == out[out["score"] == "noise"]["ci_low"].tolist()  # seeded
    with pytest.raises(ValueError, match="lacks column"):
        bootstrap_correlations(table, ["rmqm"], ["acc"])


def test_plots_label_axes():
    bands = level_bands(levels_table(), by=("method",))
    ax = plot_distance_bands(bands, "b", xlabel="noise std (pixels)")
    assert ax.get_xlabel() == "noise std (pixels)" and "b_k" in ax.get_ylabel() and ax.get_title() == "step size"
    with pytest.raises(ValueError, match="series 'c'"):
        plot_distance_bands(bands, "c")
    table = pd.DataFrame({"s1": [1, 2, 3], "s2": [3, 2, 1], "acc": [0.1, 0.5, 0.9], "family": list("abc")})
    fig = plot_score_scatter(table, ["s1", "s2"], "acc", target_label="accuracy")
    assert [a.get_xlabel() for a in fig.axes] == ["s1", "s2"] and fig.axes[0].get_ylabel() == "accuracy"


def test_cached_rmqm_measures_once(tmp_path, monkeypatch):
    import torch

    import rmqm.experiments.cache
    import rmqm.metrics.rmqm.measure
    from rmqm.data.offline import load_digits
    from rmqm.experiments.cache import cached_rmqm
    from rmqm.metrics.rmqm.alterations import WhiteNoise
    from rmqm.models.backbones import TinyCNN
    from rmqm.models.encoder import Encoder

    torch.manual_seed(0)
    encoder = Encoder(TinyCNN(1, dim=8, width=4), (0.2,), (0.3,))
    data = load_digits("test", n=12, seed=0)
    store = ResultsStore(tmp_path / "store")
    noise = WhiteNoise(n_levels=4)
    first = cached_rmqm(store, "tiny", encoder, data, {"name": "digits", "n": 12}, noise, seed=0)
    assert set(first) == {"summary", "points", "levels"} and len(first["levels"]) == 12 * 3
    direct = rmqm.metrics.rmqm.measure.measure_rmqm(encoder, data, noise, progress=False, seed=0)
    assert first["summary"]["rmqm"].iloc[0] == pytest.approx(direct.score)

    def fail(*args, **kw):
        raise AssertionError("measured again although cached")

    monkeypatch.setattr(rmqm.experiments.cache, "measure_rmqm", fail)
    again = cached_rmqm(ResultsStore(tmp_path / "store"), "tiny", encoder, data, {"name": "digits", "n": 12}, noise,
                        seed=0)
    assert again["summary"]["rmqm"].iloc[0] == first["summary"]["rmqm"].iloc[0]
    with pytest.raises(AssertionError, match="measured again"):  # another seed is another key
        cached_rmqm(store, "tiny", encoder, data, {"name": "digits", "n": 12}, noise, seed=1)
    with pytest.raises(ValueError, match="seed"):
        cached_rmqm(store, "tiny", encoder, data, {}, noise)
    with pytest.raises(ValueError, match=r"unknown measure_rmqm options \['n_levels'\]"):
        cached_rmqm(store, "tiny", encoder, data, {}, noise, seed=0, n_levels=4)


# ------------------------------------------------------------------ summaries over seeds


def test_t_interval_matches_the_textbook_formula():
    # mean 2, sample sd 1, n 3: half-width t_{0.975, 2} / sqrt(3) with t_{0.975, 2} = 4.302653
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert high - mean == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6)
    assert mean - low == pytest.approx(high - mean)
    # a higher confidence widens it; a non-finite value is left out
    assert np.diff(t_interval([1.0, 2.0, 3.0], 0.99)[1:])[0] > high - low
    assert t_interval([1.0, np.nan, 2.0, 3.0, np.inf]) == pytest.approx((mean, low, high))


def test_t_interval_degenerate_and_bounded_cases():
    assert t_interval([5.0]) == (5.0, *(pytest.approx(np.nan, nan_ok=True),) * 2)
    assert all(np.isnan(v) for v in t_interval([]))
    assert t_interval([0.4, 0.4, 0.4]) == pytest.approx((0.4, 0.4, 0.4))  # no spread, no width
    # a correlation near 1 over 3 seeds: the raw interval passes 1, the bounded one stops there
    raw = t_interval([0.9, 0.99, 0.6])
    bounded = t_interval([0.9, 0.99, 0.6], bounds=(-1, 1))
    assert raw[2] > 1 and bounded[2] == 1.0 and bounded[:2] == pytest.approx(raw[:2])
    with pytest.raises(ValueError, match="outside bounds"):
        t_interval([2.0, 3.0], bounds=(0, 1))
    with pytest.raises(ValueError, match="confidence"):
        t_interval([1.0, 2.0], confidence=1.0)
    with pytest.raises(ValueError, match="low < high"):
        check_bounds((1, 1))
    with pytest.raises(ValueError, match="pair of numbers"):
        check_bounds("ab")
    assert check_bounds(None) is None and check_bounds([0, np.inf]) == (0.0, np.inf)


def test_t_errorbar_is_the_t_interval_for_seaborn():
    bar = t_errorbar(0.9, bounds=(0, 1))
    values = np.array([0.2, 0.5, 0.95])
    assert bar(values) == pytest.approx(t_interval(values, 0.9, (0, 1))[1:])
    assert bar(np.array([0.3])) == (0.3, 0.3)  # one seed: no whisker rather than NaN
    with pytest.raises(ValueError, match="low < high"):
        t_errorbar(bounds=(1, 0))


def zoo_table(n_seeds: int = 3) -> pd.DataFrame:
    """Four encoders per seed; accuracy = score + seed-dependent noise, so r is known per seed."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(n_seeds):
        for k, family in enumerate(["supervised", "supervised", "self-supervised", "self-supervised"]):
            score = float(k)
            rows.append({"seed": seed, "encoder": f"e{k}", "family": family, "dim": 16, "score": score,
                         "anti": -score, "acc": score + 0.1 * rng.standard_normal(), "step": 1.0 + k + seed})
    return pd.DataFrame(rows)


def test_per_seed_stacks_frames_dicts_and_scalars():
    table = zoo_table()
    scalar = per_seed(table, lambda rows: rows["score"].sum())
    assert list(scalar.columns) == ["seed", "value"] and scalar["value"].tolist() == [6.0, 6.0, 6.0]
    as_dict = per_seed(table, lambda rows: {"n": len(rows), "seed": -1})  # fn's own seed column is replaced
    assert as_dict["seed"].tolist() == [0, 1, 2] and as_dict["n"].tolist() == [4, 4, 4]
    frames = per_seed(table, lambda rows: rows[["encoder"]])
    assert len(frames) == 12 and frames["seed"].tolist() == sorted(table["seed"])
    with pytest.raises(ValueError, match="no seed column 'run'"):
        per_seed(table, len, seed_column="run")
    with pytest.raises(ValueError, match="empty"):
        per_seed(table.iloc[:0], len)


def test_seed_correlations_one_coefficient_per_seed():
    table = zoo_table()
    out = seed_correlations(table, ["score", "anti"], ["acc"], methods=("spearman", "pearson"))
    assert len(out) == 3 * 2 * 2 and set(out["n"]) == {4}
    spearman = out[out["method"] == "spearman"]
    # accuracy is the score plus small noise: the ranks agree exactly in every seed
    assert (spearman.loc[spearman["score"] == "score", "r"] == 1.0).all()
    assert (spearman.loc[spearman["score"] == "anti", "r"] == -1.0).all()
    for seed, rows in table.groupby("seed"):  # noqa: B007 - the query reads @seed
        r = out.query("seed == @seed and score == 'score' and method == 'pearson'")["r"].item()
        assert r == pytest.approx(np.corrcoef(rows["score"], rows["acc"])[0, 1])
    few = seed_correlations(table[table["encoder"].isin(["e0", "e1"])], ["score"], ["acc"])
    assert few["r"].isna().all() and set(few["n"]) == {2}  # under 3 encoders: undefined, not an error
    with pytest.raises(ValueError, match="unknown correlation 'cosine'"):
        seed_correlations(table, ["score"], ["acc"], methods=("cosine",))
    with pytest.raises(ValueError, match="lacks column"):
        seed_correlations(table, ["nope"], ["acc"])


def test_family_contrast_differences_of_medians():
    table = zoo_table()
    out = family_contrast(table, "step", by=["seed"])
    # per seed: self-supervised steps 3+s, 4+s (median 3.5+s); supervised 1+s, 2+s (median 1.5+s)
    assert out["step_diff"].tolist() == [2.0, 2.0, 2.0]
    assert out["step_self-supervised"].tolist() == [3.5, 4.5, 5.5]
    mean = family_contrast(table, ["step", "score"], by=["seed"], statistic="mean")
    assert mean["score_diff"].tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(ValueError, match="no rows of family"):
        family_contrast(table, "step", by=["seed"], second="random")
    with pytest.raises(ValueError, match="statistic"):
        family_contrast(table, "step", by=["seed"], statistic="mode")


def test_interval_verdict_and_format():
    assert interval_verdict(0.1, 0.5) == "supported: positive"
    assert interval_verdict(-0.5, -0.1) == "contradicted: negative"
    assert interval_verdict(-0.1, 0.5) == "inconclusive"
    assert interval_verdict(0.5, 0.9, null=0.6) == "inconclusive"
    assert interval_verdict(np.nan, np.nan) == "no interval"
    assert interval_verdict(-0.5, -0.1, expected="negative") == "supported: negative"
    assert interval_verdict(0.1, 0.5, expected="negative") == "contradicted: positive"
    with pytest.raises(ValueError, match="expected must be"):
        interval_verdict(0.1, 0.5, expected="up")
    with pytest.raises(ValueError, match="exceeds"):
        interval_verdict(0.5, 0.1)
    assert format_interval(0.96, 0.941, 0.984) == "+0.96 [+0.94, +0.98]"
    assert format_interval(0.5, 0.25, 0.75, digits=1, signed=False) == "0.5 [0.2, 0.8]"
    assert format_interval(0.5, np.nan, np.nan) == "+0.50"


def test_zoo_rmqm_measures_each_seed_on_its_own_points_once(tmp_path, monkeypatch):
    import rmqm.experiments.cache
    import rmqm.metrics.rmqm.measure
    from rmqm.data.registry import load_dataset
    from rmqm.experiments.cache import ZooRMQM, alteration_settings
    from rmqm.metrics.rmqm.alterations import alteration_from_keywords
    from rmqm.training.checkpoints import load_or_train, model_config, model_name

    names = {}
    for seed in (0, 1):  # random-init models: built, not trained
        config = model_config("digits", "random-init", 8, width=4, n_train=None, seed=seed)
        load_or_train(config, tmp_path / "zoo", progress=False)
        names[seed] = model_name(config)
    settings = alteration_settings(4, 0.5, 3, 2 / 255, 0.3)
    assert settings["noise"]["nested"] is False and settings["pgd"]["attack_loss"] == "displacement"
    measure = ZooRMQM(ResultsStore(tmp_path / "store"), tmp_path / "zoo", "digits", 10, settings, batch_size=8)

    first = measure(names[1], 1, "noise")
    # the same as measuring by hand with seed 1 on the 10 test points drawn with seed 1
    from rmqm.training.checkpoints import load_model

    direct = rmqm.metrics.rmqm.measure.measure_rmqm(
        load_model(names[1], tmp_path / "zoo").encoder, load_dataset("digits", split="test", n=10, seed=1),
        alteration_from_keywords({k: v for k, v in settings["noise"].items() if k != "drop"}), progress=False,
        batch_size=8, seed=1, drop=settings["noise"]["drop"])
    assert first["summary"]["rmqm"].iloc[0] == pytest.approx(direct.score)
    assert not measure.data(0).images.equal(measure.data(1).images)  # each seed its own points
    nested = measure(names[1], 1, "noise", nested=True)
    assert nested["summary"]["rmqm"].iloc[0] != first["summary"]["rmqm"].iloc[0]

    def fail(*args, **kw):
        raise AssertionError("measured again although cached")

    monkeypatch.setattr(rmqm.experiments.cache, "measure_rmqm", fail)
    again = measure(names[1], 1, "noise")
    pd.testing.assert_frame_equal(again["summary"], first["summary"])
    with pytest.raises(ValueError, match="unknown alteration setting 'blur'"):
        measure(names[0], 0, "blur")
