"""Chapter 4's calibration controls (rmqm.study.chapters.controls) on a small input."""

from __future__ import annotations

import numpy as np
import pytest

from rmqm.study.chapters import controls

S_VALUES = [0.7, 1.4, 2.1, 2.8, 3.5, 4.2, 4.9]


@pytest.fixture(scope="module")
def measured():
    return controls.synbench_controls((1, 4, 4), S_VALUES, [0.0, 0.2], 512, n_directions=4, threshold=0.7)


def test_every_control_under_every_direction_choice(measured):
    assert set(measured["control"]) == {"identity", "invertible-linear", "mean-pixel", "random-projection",
                                        "constant-noise"}
    per = measured.groupby(["control", "choice", "epsilon"]).size()
    assert set(per.xs(controls.ALL_ONES, level="choice")) == {1}
    assert set(per.xs(controls.RANDOM, level="choice")) == {4}
    assert set(per.xs(controls.ZERO_MEAN, level="choice")) == {4}


def test_known_scores_are_met(measured):
    eps0 = measured[measured["epsilon"] == 0.0]
    mean = eps0.groupby(["control", "choice"])["score"].mean()
    # identity and an invertible map keep the whole separation: 1 up to estimation error (16-d, 512 samples)
    for name in ("identity", "invertible-linear"):
        assert mean[(name, controls.ALL_ONES)] == pytest.approx(1.0, abs=0.08)
    assert mean[("constant-noise", controls.ALL_ONES)] == pytest.approx(0.0, abs=0.02)
    # the mean pixel: the whole separation under all-ones (the flaw), a fraction under random directions
    assert mean[("mean-pixel", controls.ALL_ONES)] > 0.9 > mean[("mean-pixel", controls.RANDOM)] + 0.3
    # orthogonal to all-ones the mean pixel carries nothing: its expected score is exactly 0
    assert mean[("mean-pixel", controls.ZERO_MEAN)] == pytest.approx(0.0, abs=0.02)
    assert eps0[eps0["choice"] == controls.ZERO_MEAN].query("control == 'mean-pixel'")["expected"].max() < 1e-6
    # the lossless controls keep everything along every direction; so does their corrected score
    for name in ("identity", "invertible-linear"):
        for choice in (controls.ZERO_MEAN, controls.RANDOM):
            assert mean[(name, choice)] == pytest.approx(1.0, abs=0.08)
    lossless = eps0[eps0["control"].isin(["identity", "invertible-linear"])]
    assert lossless["corrected"].mean() == pytest.approx(1.0, abs=0.03)
    assert np.allclose(eps0["expected"].between(0, 1), True)
    gaps = (eps0["score"] - eps0["expected"]).abs()
    assert gaps.max() < 0.15, eps0.assign(gap=gaps).sort_values("gap").tail()


def test_table_and_lines(measured):
    table = controls.control_table(measured)
    assert list(table.columns) == ["score", "spread_sd", "lowest", "highest", "corrected", "expected", "directions"]
    assert table.loc[("mean-pixel", controls.ALL_ONES, 0.0), "spread_sd"] == 0.0
    lines = controls.control_lines(measured)
    assert lines[0].startswith("largest gap between a control's measured and expected score (epsilon 0): ")
    assert lines[1].startswith("the mean-pixel map, useless downstream, scores ")


def test_small_sample_sizes_are_raised_to_what_the_identity_needs():
    # 16 pixels: 18 samples at least, whatever is asked (fewer would make its covariance singular)
    table = controls.synbench_controls((1, 4, 4), S_VALUES, [0.0], 4, n_directions=1)
    assert table["score"].notna().all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_directions must be at least 1"):
        controls.synbench_controls((1, 4, 4), S_VALUES, [0.0], 64, n_directions=0)
    with pytest.raises(ValueError):
        controls.synbench_controls((4, 4), S_VALUES, [0.0], 64)
