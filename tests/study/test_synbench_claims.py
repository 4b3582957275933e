"""SynBench's mean directions and its two claims (rmqm.study.chapters.synbench_claims) on small
synthetic tables with known answers; end to end on a real tiny zoo: tests/study/test_chapters.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from rmqm.experiments.cache import cached_synbench
from rmqm.experiments.store import ResultsStore
from rmqm.models.adapters import InputAdapter
from rmqm.study.chapters import synbench
from rmqm.study.chapters import synbench_claims as claims
from rmqm.study.chapters.external import native_input_shape
from rmqm.training.checkpoints import TrainedModel

KEYS = dict(family="f", optimizer="adam")


def test_direction_plan_splits_the_directions_over_the_seeds():
    assert claims.direction_plan([2, 0, 1], 10) == {0: [0, 1, 2, 3], 1: [4, 5, 6], 2: [7, 8, 9]}
    assert claims.direction_plan([0, 1, 2], 9) == {0: [0, 1, 2], 1: [3, 4, 5], 2: [6, 7, 8]}
    assert claims.direction_plan([5], 3) == {5: [0, 1, 2]}
    assert claims.direction_plan([0, 1, 2], 2) == {0: [0], 1: [1], 2: []}
    with pytest.raises(ValueError, match="n_directions >= 1"):
        claims.direction_plan([0], 0)
    with pytest.raises(ValueError, match="need seeds"):
        claims.direction_plan([], 3)


def test_native_input_shape_of_zoo_model_and_adapter():
    info = {"in_channels": 1, "input_size": [28, 28]}
    zoo_model = TrainedModel("m", nn.Flatten(), None, {}, pd.DataFrame(), info)
    assert native_input_shape(zoo_model) == (1, 28, 28)
    adapted = TrainedModel("e", InputAdapter(nn.Flatten(), 3, 12), None, {}, pd.DataFrame(), info)
    assert native_input_shape(adapted) == (3, 12, 12)
    passthrough = TrainedModel("p", InputAdapter(nn.Flatten()), None, {}, pd.DataFrame(), info)
    assert native_input_shape(passthrough) == (1, 28, 28)


def test_cached_synbench_keys_an_array_direction_by_its_content(tmp_path):
    store = ResultsStore(tmp_path / "store")
    encoder = nn.Flatten()
    u = torch.zeros(1, 4, 4)
    u[0, 0, 0] = 1.0
    kwargs = dict(s_values=[1.0, 2.5], epsilons=[0.0], n_train=64, n_test=16, n_bootstrap=0, seed=0,
                  thresholds=[0.6, 0.7])
    first = cached_synbench(store, "flat", encoder, (1, 4, 4), direction=u, **kwargs)
    stored = len(store)
    again = cached_synbench(store, "flat", encoder, (1, 4, 4), direction=u.clone(), **kwargs)
    assert len(store) == stored  # the same direction: read back
    pd.testing.assert_frame_equal(first["scores"], again["scores"])
    v = torch.zeros(1, 4, 4)
    v[0, 1, 1] = 1.0
    cached_synbench(store, "flat", encoder, (1, 4, 4), direction=v, **kwargs)
    assert len(store) == 2 * stored  # another direction: other records


def direction_rows() -> pd.DataFrame:
    """Encoder a: high under all-ones, low otherwise (a mean-pixel-like encoder); b: steady."""
    rows = []
    for method, scores in (("a", {"all-ones": 0.9, "random-zero-mean": 0.1, "random": 0.2}),
                           ("b", {"all-ones": 0.5, "random-zero-mean": 0.5, "random": 0.5})):
        for seed in (0, 1):
            for choice, value in scores.items():
                labels = [f"random-{k}" for k in (2 * seed, 2 * seed + 1)] if choice == "random" else [choice]
                for k, label in enumerate(labels):
                    for eps in (0.0, 0.2):
                        rows.append(dict(choice=choice, direction=label, threshold=0.7, epsilon=eps,
                                         score=value + 0.01 * k - eps * (method == "a"), method=method,
                                         dim=8, seed=seed, name=f"{method}_s{seed}", **KEYS))
    return pd.DataFrame(rows)


def test_direction_summary_ranks_and_spread():
    summary = claims.direction_summary(direction_rows(), 0.7)
    assert summary.loc[("a", 8), "all-ones"] == pytest.approx(0.9)
    assert summary.loc[("a", 8), "random"] == pytest.approx(0.205)  # mean over 4 runs: 0.2, 0.21 twice
    assert summary.loc[("a", 8), "random directions x seeds"] == 4
    assert summary.loc[("a", 8), "rank all-ones"] == 1 and summary.loc[("a", 8), "rank random"] == 2
    lines = claims.direction_lines(summary)
    assert lines[0].startswith("ranking under all-ones vs random-zero-mean: Spearman -1.00 over 2 encoders")
    assert "a d=8 (1 -> 2)" in lines[0]


def test_direction_lines_count_the_zero_scores():
    rows = direction_rows()
    rows.loc[rows["choice"] == "random", "score"] = 0.0
    lines = claims.direction_lines(claims.direction_summary(rows, 0.7), rows)
    assert lines[0] == "runs that score exactly 0: all-ones 0%, random-zero-mean 0%, random 100%"
    assert "Spearman undefined (a constant score)" in lines[2]


def test_largest_scale_lines_name_the_probe_accuracy_there():
    table = pd.DataFrame([dict(s=s, epsilon=0.0, accuracy=acc + 0.01 * seed, method=m, dim=8, seed=seed)
                          for m, acc in (("a", 0.9), ("b", 0.55)) for s in (1.0, 4.9) for seed in (0, 2)])
    (line,) = synbench.largest_scale_lines(table)
    assert line.startswith("at the largest mean scale s = 4.9 (raw Bayes accuracy 1.0000)")
    assert line.endswith("lowest first: b d=8 0.560, a d=8 0.910")


def test_claim1_table_averages_a_seeds_random_directions():
    zoo = pd.DataFrame([dict(name=f"{m}_s{s}", method=m, dim=8, seed=s, digits_linear=0.5) for m in "ab"
                        for s in (0, 1)])
    table, names = claims.claim1_table(zoo, direction_rows(), (0.7,), (0.0,))
    assert names == ["SynBench all-ones t=0.7 eps=0", "SynBench random-zero-mean t=0.7 eps=0",
                     "SynBench random t=0.7 eps=0"]
    row = table[(table["method"] == "a") & (table["seed"] == 1)].iloc[0]
    assert row["SynBench random t=0.7 eps=0"] == pytest.approx(0.205)
    assert row["SynBench all-ones t=0.7 eps=0"] == pytest.approx(0.9)


def test_claim1_correlations_support_a_score_that_ranks_the_encoders():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        for seed in (0, 1, 2):
            acc = 0.1 * i + 0.01 * rng.standard_normal()
            rows.append(dict(method=f"m{i}", dim=8, seed=seed, good=acc + 0.001 * rng.standard_normal(),
                             noise=rng.standard_normal(), digits_linear=acc))
    corr = claims.claim1_correlations(pd.DataFrame(rows), ["good", "noise"], ["digits"], n_resamples=2000)
    verdict = corr.set_index("score")["verdict"]
    assert verdict["good"] == "supported" and verdict["noise"] == "inconclusive"


def attack_rows(best: dict[str, float], radius: float = 0.01) -> pd.DataFrame:
    """Robust accuracy 0.5 at each encoder's ``best`` epsilon, 0.2 elsewhere."""
    return pd.DataFrame([dict(epsilon=e, accuracy=0.8, robust_accuracy=0.5 if e == b else 0.2, method=m, dim=8,
                              seed=s, name=f"{m}_s{s}", radius=radius, **KEYS)
                         for m, b in best.items() for s in (0, 1) for e in (0.0, 0.1, 0.2)])


def synbench_favours(favoured: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([dict(choice="all-ones", direction="all-ones", threshold=t, epsilon=e,
                              score=0.9 if e == f else 0.4, method=m, dim=8, seed=s, name=f"{m}_s{s}")
                         for m, f in favoured.items() for s in (0, 1) for e in (0.0, 0.1, 0.2) for t in (0.7, 0.8)])


def endpoints_with_radii(tmp_path, radii):
    """book/endpoints.yaml with claim 2's declared radii replaced."""
    from rmqm.study.endpoints import default_endpoints_path, load_endpoints

    text = default_endpoints_path().read_text()
    start = text.index("radii: [")
    path = tmp_path / "endpoints.yaml"
    path.write_text(text[:start] + f"radii: {list(radii)}" + text[text.index("]", start) + 1:])
    return load_endpoints(path)


EIGHT = dict(zip("abcdefgh", (0.1, 0.2, 0.0, 0.1, 0.2, 0.0, 0.1, 0.2), strict=True))


def test_claim2_guidance_and_verdict_when_synbench_names_the_best_epsilon(tmp_path):
    guidance = claims.claim2_guidance(attack_rows(EIGHT), synbench_favours(EIGHT), 0.7)
    assert guidance["agree"].all() and len(guidance) == 16 and set(guidance["radius"]) == {0.01}
    assert guidance["robust_synbench"].tolist() == pytest.approx([0.5] * 16)
    assert guidance["robust_random"].tolist() == pytest.approx([0.3] * 16)
    judged = claims.claim2_verdicts(guidance, tmp_path, endpoints=endpoints_with_radii(tmp_path, [0.01, 0.03]),
                                    n_resamples=500)
    assert judged["label"].tolist() == ["r = 0.01, all-ones", "r = 0.03, all-ones"]
    found = judged.iloc[0]
    # 8 encoders, every gain +0.2: the exact sign-flip p is its floor, 2 / 2^8
    assert found["p_value"] == pytest.approx(2 / 256) and found["p_method"] == "sign-flip (exact)"
    assert found["verdict"] == "supported" and found["agreement"].startswith("1.000")
    # the undeclared-radius row counts in the family (p = 1), so Holm doubles the first p
    assert found["estimate"] == pytest.approx(0.2) and found["p_holm"] == pytest.approx(2 * 2 / 256)
    missing = judged.iloc[1]  # declared, never attacked: a row that says so, counted in the family
    assert missing["verdict"] == "not measurable" and "attacked no encoder at radius 0.03" in missing["reason"]
    saved = pd.read_parquet(tmp_path / "family_synbench-claim2.parquet")
    assert saved["verdict"].tolist() == judged["verdict"].tolist()
    lines = claims.claim2_lines(judged)
    assert lines[0].startswith("claim 2 compares two threat models: SynBench's epsilon is an L2 shift of the features")
    assert "L-infinity PGD on the input pixels" in lines[0] and "2 tests, Holm within the family" in lines[0]
    assert lines[1].startswith("claim 2, r = 0.01, all-ones direction: SynBench's epsilon gains +0.200")
    assert lines[2] == "claim 2, r = 0.03, all-ones: not measurable (this build attacked no encoder at radius 0.03)"


def test_claim2_contradicted_when_synbench_names_the_worst_epsilon(tmp_path):
    wrong = {m: (0.2 if b == 0.0 else 0.0) for m, b in EIGHT.items()}
    guidance = claims.claim2_guidance(attack_rows(EIGHT), synbench_favours(wrong), 0.7)
    assert not guidance["agree"].any()
    judged = claims.claim2_verdicts(guidance, tmp_path, endpoints=endpoints_with_radii(tmp_path, [0.01]),
                                    n_resamples=500)
    assert judged["verdict"].tolist() == ["contradicted"] and judged["estimate"].iloc[0] == pytest.approx(-0.1)


def test_claim2_with_too_few_encoders_cannot_pass_and_says_so(tmp_path):
    best = {"a": 0.1, "b": 0.2, "c": 0.0}  # 3 encoders: the exact sign-flip p cannot go below 2 / 8
    guidance = claims.claim2_guidance(attack_rows(best), synbench_favours(best), 0.7)
    judged = claims.claim2_verdicts(guidance, tmp_path, endpoints=endpoints_with_radii(tmp_path, [0.01]),
                                    n_resamples=200)
    row = judged.iloc[0]
    assert row["p_value"] == pytest.approx(0.25) and row["p_floor"] == pytest.approx(0.25)
    assert row["verdict"] == "inconclusive" and row["detectable"].startswith("no gain detectable")


def test_claim2_ties_are_a_uniform_choice_among_the_tied_epsilons(tmp_path):
    attacks = attack_rows({"a": 0.1})  # robust 0.5 at epsilon 0.1, 0.2 at 0 and 0.2
    flat = synbench_favours({"a": 0.1}).assign(score=0.5)  # SynBench ties all three epsilons
    guidance = claims.claim2_guidance(attacks, flat, 0.7)
    assert (guidance["n_tied"] == 3).all() and (guidance["synbench_epsilon"] == 0.0).all()
    # a uniform pick among the ties gets the mean robust accuracy, and is the best one time in three
    assert guidance["robust_synbench"].tolist() == pytest.approx([0.3, 0.3])
    assert guidance["agree"].tolist() == pytest.approx([1 / 3, 1 / 3])
    two = synbench_favours({"a": 0.1}).assign(score=lambda f: np.where(f["epsilon"] == 0.2, 0.1, 0.5))
    g2 = claims.claim2_guidance(attacks, two, 0.7)  # ties at 0 and 0.1
    assert g2["robust_synbench"].tolist() == pytest.approx([0.35, 0.35]) and g2["agree"].tolist() == [0.5, 0.5]
    judged = claims.claim2_verdicts(guidance, tmp_path, endpoints=endpoints_with_radii(tmp_path, [0.01]),
                                    n_resamples=200)
    row = judged.iloc[0]  # one encoder: no test, and the family says why
    assert row["ties"] == "100%" and row["verdict"] == "not measurable" and "a test needs 2" in row["reason"]


def test_claim1_table_folds_an_added_encoder_into_one_row_and_keeps_corrected_scores():
    rows = direction_rows()
    rows["corrected"] = rows["score"] + 0.05
    ext = rows[rows["method"] == "b"].assign(family="external", optimizer="external")
    rows = pd.concat([rows[rows["method"] == "a"], ext.assign(name="b")], ignore_index=True)
    zoo = pd.DataFrame([dict(name=f"a_s{s}", method="a", dim=8, seed=s, family="f", optimizer="adam",
                             digits_linear=0.5 + s) for s in (0, 1)]
                       + [dict(name="b", method="b", dim=1280, seed=s, family="external", optimizer="external",
                               digits_linear=0.9) for s in (0, 1)])
    table, names = claims.claim1_table(zoo, rows, (0.7,), (0.0, 0.2))
    assert "corrected random t=0.7" in names and "corrected random t=0.7 eps=0" not in names
    assert (table["method"] == "b").sum() == 1 and (table["method"] == "a").sum() == 2  # an encoder counts once
    b = table[table["method"] == "b"].iloc[0]
    assert b["seed"] == 0 and b["corrected all-ones t=0.7"] == pytest.approx(0.55)
    assert b["SynBench random t=0.7 eps=0"] == pytest.approx(0.505)


def ranked_table(n=8, seeds=(0, 1, 2)):
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        for seed in seeds:
            acc = 0.1 * i
            rows.append({"method": f"m{i}", "dim": 16 if i % 2 else 64, "seed": seed, "family": "f",
                         "digits_linear": acc + 0.01 * rng.standard_normal(),
                         "corrected all-ones t=0.7": rng.standard_normal(),
                         "corrected random t=0.7": acc + 0.001 * rng.standard_normal(),
                         "corrected random-zero-mean t=0.7": acc + 0.001 * rng.standard_normal()})
    return pd.DataFrame(rows)


def test_claim1_differences_detect_a_better_direction_with_the_paired_bootstrap():
    diff = claims.claim1_differences(ranked_table(), ["digits"], 0.7, n_resamples=500)
    assert set(diff["choice"]) == {"random-zero-mean", "random"}
    assert (diff["verdict"] == "differs").all() and (diff["difference"] > 0.5).all()
    same = ranked_table().assign(**{"corrected all-ones t=0.7": lambda f: f["corrected random t=0.7"]})
    flat = claims.claim1_differences(same, ["digits"], 0.7, n_resamples=500)
    row = flat.set_index("choice").loc["random"]
    assert row["difference"] == pytest.approx(0.0) and row["verdict"] == "no detectable difference"
    assert claims.claim1_difference_lines(diff)[0].startswith("claim 1, rho(random-zero-mean) - rho(all-ones)")


def test_claim1_strata_by_width_and_without_added_encoders():
    table = ranked_table()
    names = ["corrected random t=0.7"]
    corr = claims.claim1_strata(table, names, ["digits"], n_resamples=500)
    assert set(corr["stratum"]) == {"all encoders", "zoo d=16", "zoo d=64"}  # no added encoders: no "zoo only"
    assert (corr.groupby("stratum")["n_configs"].first() == pd.Series({"all encoders": 8, "zoo d=16": 4,
                                                                         "zoo d=64": 4})).all()
    lines = claims.claim1_lines(corr, 0.7, 0.0, kind="corrected")
    assert lines[0].startswith("claim 1, all encoders (8 encoders), corrected score, random direction")


def test_lossless_penalty_lines_and_figure():
    import matplotlib

    matplotlib.use("Agg")
    from rmqm.plots import plot_width_penalty

    penalty = synbench.lossless_penalty([0.7, 1.4, 2.1, 2.8, 3.5, 4.2, 4.9], 0.7, 1536)
    assert {1000, 1536, 16000} <= set(penalty["n_train"]) and set(penalty["width"]) == {16, 64, 256, 768, 1280}
    at = penalty[penalty["n_train"] == 1536].set_index("width")
    assert at.loc[1280, "reference"] < 0.8 < at.loc[16, "reference"]  # the width penalty
    assert np.isnan(penalty.query("width == 1280 and n_train == 1000")["corrected"]).all()  # n <= d + 3
    (line,) = synbench.lossless_lines(penalty, 1536)
    assert line.startswith("lossless encoder at n = 1536 train samples per scale, t = 0.7") and "d = 1280: 0." in line
    fig = plot_width_penalty(penalty, 0.7, n_study=1536)
    assert len(fig.axes[0].get_lines()) == 2 * 5 + 2


def test_gate_survey_table_or_a_note():
    table = synbench.gate_survey(sizes=(48,))
    if "note" in table.columns:
        assert table["note"].iloc[0].startswith("gate not measured")
    else:
        assert table.iloc[0].to_dict() == {**table.iloc[0].to_dict(), "input_size": 48, "passes": False}


def test_detectable_gain_shrinks_with_the_square_root_of_the_encoder_count():
    import matplotlib

    matplotlib.use("Agg")
    from scipy import stats as st

    from rmqm.plots import plot_detectable_gain

    best = {"a": 0.1, "b": 0.2, "c": 0.0, "d": 0.1}
    favoured = {"a": 0.1, "b": 0.0, "c": 0.0, "d": 0.2}  # right for a and c: gains +0.2, -0.1, +0.2, -0.1
    guidance = claims.claim2_guidance(attack_rows(best), synbench_favours(favoured), 0.7)
    table = claims.detectable_gain(guidance, n_encoders=[4, 16])
    sd = np.std([0.2, -0.1, 0.2, -0.1], ddof=1)
    # the t-test's power at the returned gain is 0.8 (non-central t), and it shrinks faster than
    # 1/sqrt(n) from 4 to 16 encoders because the t's critical value falls with the dof
    for n, gain in zip([4, 16], table["detectable"], strict=True):
        crit, nc = st.t.ppf(0.975, n - 1), gain * np.sqrt(n) / sd
        assert st.nct.sf(crit, n - 1, nc) + st.nct.cdf(-crit, n - 1, nc) == pytest.approx(0.8, abs=1e-6)
    z = st.norm.ppf(0.975) + st.norm.ppf(0.8)
    assert table["detectable"].iloc[0] > z * sd / 2 and table["detectable"].iloc[1] > z * sd / 4
    assert table["detectable"].iloc[0] / table["detectable"].iloc[1] > 2
    assert table["n_study"].iloc[0] == 4 and table["observed"].iloc[0] == pytest.approx(0.05)
    fig = plot_detectable_gain(claims.detectable_gain(guidance))
    assert len(fig.axes[0].get_lines()) == 2
    with pytest.raises(ValueError, match="power"):
        claims.detectable_gain(guidance, power=1.0)
    both = pd.concat([guidance, guidance.assign(radius=0.03)], ignore_index=True)
    with pytest.raises(ValueError, match="pick one with radius="):
        claims.detectable_gain(both)
    pd.testing.assert_frame_equal(claims.detectable_gain(both, n_encoders=[4, 16], radius=0.03), table)


def test_lossless_lines_one_per_distinct_size_and_undefined_differences_say_so():
    penalty = synbench.lossless_penalty([0.7, 2.8, 4.9], 0.7, [256, 128, 256])
    lines = synbench.lossless_lines(penalty, [256, 128, 256])
    assert [line.split(" train")[0] for line in lines] == ["lossless encoder at n = 256", "lossless encoder at n = 128"]
    table = ranked_table().assign(**{"corrected random t=0.7": 0.5})  # a constant score: no correlation
    diff = claims.claim1_differences(table, ["digits"], 0.7, n_resamples=200)
    line = claims.claim1_difference_lines(diff)[1]
    assert "digits not measurable" in line and "constant" in line and "corrected score, paired bootstrap" in line
    assert diff.set_index("choice").loc["random", "verdict"] == "not measurable"
