"""Width-aware SynBench: the unbiased separation, the corrected score and the lossless controls."""

import numpy as np
import pytest
import torch
from torch import nn

from rmqm.metrics.synbench.evaluate import evaluate_synbench
from rmqm.metrics.synbench.qcqp import class_statistics
from rmqm.metrics.synbench.width import (
    corrected_scores,
    effective_scale,
    lossless_probe,
    separation_estimate,
    width_penalty,
)

S7 = np.round(np.arange(0.7, 4.91, 0.7), 6)


def test_unbiased_separation_is_unbiased_where_the_plug_in_is_not():
    rng = np.random.default_rng(0)
    p, n, delta = 40, 120, 2.0
    plug, unbiased = [], []
    for _ in range(400):
        y = np.arange(n) < n // 2
        x = rng.standard_normal((n, p))
        x[:, 0] += np.where(y, delta / 2, -delta / 2)
        d2, d2_hat = separation_estimate(class_statistics(x, y), int(y.sum()), int((~y).sum()))
        plug.append(d2)
        unbiased.append(d2_hat)
    # E D^2 = (n - 2) / (n - p - 3) (Delta^2 + p (1/n1 + 1/n0)) = 118/77 * (4 + 40/30) = 8.17
    assert np.mean(plug) == pytest.approx(118 / 77 * (4 + 40 / 30), rel=0.05)
    assert np.mean(unbiased) == pytest.approx(delta**2, abs=0.15)


def test_separation_is_undefined_without_enough_samples():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((20, 30)), np.arange(20) < 10
    stats_ = class_statistics(x, y, allow_rank_deficient=True)
    assert np.isnan(separation_estimate(stats_, 10, 10)[1]) and np.isnan(effective_scale(stats_, 10, 10))
    with pytest.raises(ValueError, match="at least 2"):
        separation_estimate(stats_, 1, 19)


def test_corrected_score_of_the_raw_scales_is_one_and_of_none_is_zero():
    assert corrected_scores(S7, S7) == pytest.approx(1.0)
    assert corrected_scores(np.zeros(7), S7) == pytest.approx(0.0)
    half = corrected_scores(S7 / 2, S7, thresholds=(0.6, 0.9))
    assert 0 < half[1] < half[0] < 1
    with pytest.raises(ValueError, match="s_eff"):
        corrected_scores([np.nan] * 7, S7)


@pytest.mark.parametrize("width", [16, 64, 256, 768, 1280])
def test_lossless_control_corrected_score_is_one_at_every_width(width):
    # the reference score of a lossless encoder falls with width at n = 2048; the corrected one stays
    # within 0.02 of 1 (mean of 8 draws: the estimate is unbiased, one draw has a spread of a few 0.01)
    runs = [lossless_probe(width, 2048, S7, thresholds=(0.6, 0.7), seed=k) for k in range(8)]
    corrected = np.mean([r["corrected"].to_numpy() for r in runs], axis=0)
    reference = np.mean([r["reference"].to_numpy() for r in runs], axis=0)
    assert np.abs(corrected - 1).max() < 0.02
    if width >= 768:
        assert reference.max() < 0.9  # the penalty the correction removes


def test_lossless_probe_matches_a_sampled_identity_encoder():
    # the Wishart shortcut against the real protocol on the raw mixture (identity encoder, d = 48)
    identity = nn.Flatten()
    sampled = evaluate_synbench(identity, (3, 4, 4), s_values=S7, n_train=256, n_test=4096, n_bootstrap=0,
                                thresholds=(0.6,), progress=False, seed=0)
    drawn = np.mean([lossless_probe(48, 256, S7, thresholds=(0.6,), seed=k)["reference"].iloc[0]
                     for k in range(10)])
    assert sampled.score == pytest.approx(drawn, abs=0.03)
    assert sampled.score < 0.97  # n = 256 for 48 dims: a visible penalty
    assert sampled.scores["corrected"].iloc[0] == pytest.approx(1.0, abs=0.05)
    assert sampled.table["effective_scale"].iloc[-1] == pytest.approx(4.9, rel=0.1)


def test_evaluate_synbench_corrected_column_of_a_constant_direction_encoder():
    class MeanPixel(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1).mean(1, keepdim=True)

    res = evaluate_synbench(MeanPixel(), (1, 4, 4), s_values=S7, n_train=512, n_test=256, n_bootstrap=0,
                            thresholds=(0.6,), progress=False, direction="random-zero-mean")
    assert res.scores["corrected"].iloc[0] < 0.05  # no separation along a zero-mean direction


def test_width_penalty_grid_and_rank_deficient_cells():
    table = width_penalty((16, 64), (40, 400), S7, thresholds=(0.6,))
    assert len(table) == 4 and set(table["width"]) == {16, 64}
    cell = table[(table["width"] == 64) & (table["n_train"] == 40)]
    assert cell["corrected"].isna().all() and cell["reference"].iloc[0] < 0.9
