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


def test_real_pca_direction_is_a_unit_vector_of_the_encoders_shape():
    u = claims.real_pca_direction("digits", (3, 12, 12), n=200)
    assert u.shape == (3, 12, 12) and float(u.norm()) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(u[0], u[1]) and torch.allclose(u[1], u[2])  # grey images repeated to RGB


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
    for method, scores in (("a", {"all-ones": 0.9, "pca": 0.1, "random": 0.2}),
                           ("b", {"all-ones": 0.5, "pca": 0.5, "random": 0.5})):
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
    assert lines[0].startswith("ranking under all-ones vs pca: Spearman -1.00 over 2 encoders")
    assert "a d=8 (1 -> 2)" in lines[0]


def test_direction_lines_count_the_zero_scores():
    rows = direction_rows()
    rows.loc[rows["choice"] == "random", "score"] = 0.0
    lines = claims.direction_lines(claims.direction_summary(rows, 0.7), rows)
    assert lines[0] == "runs that score exactly 0: all-ones 0%, pca 0%, random 100%"
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
    assert names == ["SynBench all-ones t=0.7 eps=0", "SynBench pca t=0.7 eps=0", "SynBench random t=0.7 eps=0"]
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


def attack_rows(best: dict[str, float]) -> pd.DataFrame:
    """Robust accuracy 0.5 at each encoder's ``best`` epsilon, 0.2 elsewhere."""
    return pd.DataFrame([dict(epsilon=e, accuracy=0.8, robust_accuracy=0.5 if e == b else 0.2, method=m, dim=8,
                              seed=s, name=f"{m}_s{s}", **KEYS)
                         for m, b in best.items() for s in (0, 1) for e in (0.0, 0.1, 0.2)])


def synbench_favours(favoured: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([dict(choice="all-ones", direction="all-ones", threshold=t, epsilon=e,
                              score=0.9 if e == f else 0.4, method=m, dim=8, seed=s, name=f"{m}_s{s}")
                         for m, f in favoured.items() for s in (0, 1) for e in (0.0, 0.1, 0.2) for t in (0.7, 0.8)])


def test_claim2_guidance_and_verdict_when_synbench_names_the_best_epsilon():
    best = {"a": 0.1, "b": 0.2, "c": 0.0, "d": 0.1}
    guidance = claims.claim2_guidance(attack_rows(best), synbench_favours(best), 0.7)
    assert guidance["agree"].all() and len(guidance) == 8
    assert guidance["robust_synbench"].tolist() == pytest.approx([0.5] * 8)
    assert guidance["robust_random"].tolist() == pytest.approx([0.3] * 8)
    lines, table = claims.claim2_lines(guidance, n_resamples=500)
    assert table.loc[0, "verdict"] == "supported" and table.loc[0, "agreement"].startswith("1.000")
    assert table.loc[0, "gain over random"].startswith("+0.200 [+0.200, +0.200]")
    assert lines[0].startswith("claim 2, all-ones direction: SynBench's epsilon gains +0.200")


def test_claim2_contradicted_when_synbench_names_the_worst_epsilon():
    best = {"a": 0.1, "b": 0.2, "c": 0.0}
    wrong = {"a": 0.0, "b": 0.0, "c": 0.2}
    guidance = claims.claim2_guidance(attack_rows(best), synbench_favours(wrong), 0.7)
    assert not guidance["agree"].any()
    _, table = claims.claim2_lines(guidance, n_resamples=500)
    assert table.loc[0, "verdict"] == "contradicted"


def test_claim2_ties_take_the_smallest_epsilon():
    attacks = attack_rows({"a": 0.1}).assign(robust_accuracy=0.3)  # every epsilon ties
    flat = synbench_favours({"a": 0.1}).assign(score=0.5)
    guidance = claims.claim2_guidance(attacks, flat, 0.7)
    assert (guidance["best_epsilon"] == 0.0).all() and (guidance["synbench_epsilon"] == 0.0).all()
