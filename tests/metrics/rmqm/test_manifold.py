"""The manifold statistics and the RMQM formula against hand-computed values."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from rmqm.metrics.rmqm.manifold import (
    distance_series,
    point_statistics,
    relative_changes,
    rmqm_score,
    summarize,
)


def test_distance_series_on_a_hand_made_trajectory():
    # one point moving along the x axis: 0 -> 1 -> 3 -> 6 (no normalisation)
    z = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [6.0, 0.0]]])
    a, b = distance_series(z, normalize=False)
    assert a.tolist() == [[1.0, 3.0, 6.0]]
    assert b.tolist() == [[1.0, 2.0, 3.0]]


def test_distance_series_normalises_to_the_unit_sphere():
    # directions at 0, 90 and 180 degrees, different lengths: chords of the unit circle
    z = torch.tensor([[[5.0, 0.0], [0.0, 2.0], [-3.0, 0.0]]], dtype=torch.float64)
    a, b = distance_series(z, normalize=True)
    assert torch.allclose(a, torch.tensor([[math.sqrt(2), 2.0]], dtype=torch.float64))
    assert torch.allclose(b, torch.tensor([[math.sqrt(2), math.sqrt(2)]], dtype=torch.float64))


def test_relative_changes_keep_inf_and_nan_for_zero_denominators():
    r = relative_changes(np.array([[1.0, 2.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    assert r[0].tolist() == [1.0, -0.5]
    assert np.isinf(r[1, 0]) and r[1, 1] == -1.0
    assert np.isnan(r[2, 0]) and np.isinf(r[2, 1])


def test_point_statistics_and_rmqm_by_hand():
    a = np.array([[1.0, 2.0, 4.0], [2.0, 2.0, 2.0], [0.0, 1.0, 1.0]])
    b = np.array([[1.0, 1.0, 2.0], [2.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    pts = point_statistics(a, b)
    # point 0: r_a = [1, 1], r_b = [0, 1]; point 1: r_a = [0, 0], r_b = [-0.5, 0]
    assert pts["A"].tolist() == pytest.approx([7 / 3, 2.0, 2 / 3])
    assert pts["B"].tolist() == pytest.approx([4 / 3, 4 / 3, 1 / 3])
    assert pts["S_a"].iloc[:2].tolist() == pytest.approx([1.0, 0.0])
    assert pts["S_b"].iloc[:2].tolist() == pytest.approx([0.5, 0.25])
    assert pts["total_a"].tolist() == pytest.approx([7.0, 6.0, 2.0])
    assert pts["spikes_a"].iloc[:2].tolist() == pytest.approx([2.0, 0.0])
    assert pts["spikes_b"].iloc[:2].tolist() == pytest.approx([1.0, 0.5])
    # point 2 starts with a zero distance: dropped from the S means only
    assert pts["finite"].tolist() == [True, True, False]
    assert np.isnan(pts.loc[2, "S_a"]) and np.isnan(pts.loc[2, "spikes_b"])

    score = rmqm_score(pts)
    mean_a, mean_b = (7 / 3 + 2 + 2 / 3) / 3, (4 / 3 + 4 / 3 + 1 / 3) / 3
    s_a, s_b = 0.5, 0.375
    assert score["mean_A"] == pytest.approx(mean_a)
    assert score["mean_B"] == pytest.approx(mean_b)
    assert score["mean_S_a"] == pytest.approx(s_a)
    assert score["mean_S_b"] == pytest.approx(s_b)
    assert score["rmqm"] == pytest.approx(math.log(1 + mean_a + mean_b + 1 / s_a + 1 / s_b))
    assert (score["n_points"], score["n_dropped"]) == (3, 1)


def test_per_series_drop_keeps_the_finite_series_and_joint_drop_does_not():
    # point 0: r_a = [1, 1] finite, b starts at 0 so r_b = [inf, 0]; point 1: both finite,
    # r_a = [0, 0.5], r_b = [1, 0]; point 2: a starts at 0 (r_a = [inf, 0]), r_b = [0, 1]
    a = np.array([[1.0, 2.0, 4.0], [2.0, 2.0, 3.0], [0.0, 1.0, 1.0]])
    b = np.array([[0.0, 1.0, 1.0], [1.0, 2.0, 2.0], [1.0, 1.0, 2.0]])
    per = point_statistics(a, b)  # the default: pandas dropna on each series, as the reference
    assert per["finite_a"].tolist() == [True, True, False] and per["finite_b"].tolist() == [False, True, True]
    assert per["S_a"].tolist()[:2] == pytest.approx([1.0, 0.25]) and np.isnan(per["S_a"].iloc[2])
    assert np.isnan(per["S_b"].iloc[0]) and per["S_b"].tolist()[1:] == pytest.approx([0.5, 0.5])
    s = rmqm_score(per)
    assert s["mean_S_a"] == pytest.approx((1.0 + 0.25) / 2) and s["mean_S_b"] == pytest.approx(0.5)
    assert (s["n_dropped_a"], s["n_dropped_b"], s["n_dropped"]) == (1, 1, 2)
    joint = rmqm_score(point_statistics(a, b, drop="joint"))  # only point 1 is finite in both
    assert joint["mean_S_a"] == pytest.approx(0.25) and joint["mean_S_b"] == pytest.approx(0.5)
    assert (joint["n_dropped_a"], joint["n_dropped_b"], joint["n_dropped"]) == (2, 2, 2)
    assert joint["mean_A"] == s["mean_A"] and joint["rmqm"] != s["rmqm"]  # A and B never drop points
    with pytest.raises(ValueError, match="unknown drop rule"):
        point_statistics(a, b, drop="rows")


def test_rmqm_is_infinite_for_perfectly_constant_steps():
    a = np.array([[1.0, 2.0, 3.0]])
    b = np.array([[1.0, 1.0, 1.0]])  # S_b = 0
    assert math.isinf(rmqm_score(point_statistics(a, b))["rmqm"])


def test_rmqm_is_infinite_when_every_point_is_dropped():
    pts = point_statistics(np.array([[0.0, 1.0, 2.0]]), np.array([[0.0, 1.0, 1.0]]))
    score = rmqm_score(pts)
    assert score["n_dropped"] == 1 and math.isinf(score["rmqm"])


def test_summarize_scores_each_class_on_its_own_points():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.1, 1.0, (30, 5)).cumsum(axis=1)
    b = rng.uniform(0.1, 1.0, (30, 5))
    pts = point_statistics(a, b)
    pts["label"] = np.arange(30) % 3
    table = summarize(pts, by="label")
    assert table["scope"].tolist() == ["all", "label=0", "label=1", "label=2"]
    for c in range(3):
        expected = rmqm_score(pts[pts["label"] == c])["rmqm"]
        assert table.loc[table["scope"] == f"label={c}", "rmqm"].item() == pytest.approx(expected)


@pytest.mark.parametrize(
    "z, match",
    [
        (torch.zeros(4, 3), "shape"),
        (torch.zeros(4, 2, 3), "at least 3 levels"),
        (torch.full((2, 3, 4), float("nan")), "NaN"),
        ("not a tensor", "torch.Tensor"),
    ],
)
def test_distance_series_rejects_bad_input(z, match):
    with pytest.raises((ValueError, TypeError), match=match):
        distance_series(z)


def test_point_statistics_rejects_mismatched_shapes_and_too_few_steps():
    with pytest.raises(ValueError, match="a and b"):
        point_statistics(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="two steps"):
        point_statistics(np.ones((2, 1)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="no points"):
        rmqm_score(pd.DataFrame(columns=["A", "B", "S_a", "S_b", "finite"]))
