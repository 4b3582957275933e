"""Mean directions (random, PCA, named) and the score table over thresholds and epsilons."""

import numpy as np
import pytest
import torch

from rmqm.metrics.synbench.evaluate import evaluate_synbench
from rmqm.metrics.synbench.mixture import named_direction, pca_direction, random_directions
from rmqm.models.controls import build_control

SHAPE = (3, 4, 4)


def test_random_directions_unit_seeded_distinct():
    a = random_directions(SHAPE, 5, seed=1)
    assert a.shape == (5, *SHAPE)
    assert torch.allclose(torch.linalg.vector_norm(a.flatten(1), dim=1), torch.ones(5))
    assert torch.equal(a, random_directions(SHAPE, 5, seed=1))
    assert torch.equal(a[:2], random_directions(SHAPE, 2, seed=1))
    assert not torch.equal(a, random_directions(SHAPE, 5, seed=2))
    gram = a.flatten(1) @ a.flatten(1).T
    assert (gram - torch.eye(5)).abs().max() < 0.99  # no two equal or opposite
    zero_mean = random_directions(SHAPE, 3, seed=1, zero_mean=True)
    assert zero_mean.flatten(1).sum(1).abs().max() < 1e-5


def test_pca_direction_is_the_top_eigenvector_of_a_constructed_covariance():
    rng = np.random.default_rng(0)
    d = int(np.prod(SHAPE))
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    scales = np.linspace(0.2, 1.0, d)
    scales[-1] = 3.0  # one dominant axis: q[:, -1]
    x = (rng.normal(size=(4000, d)) * scales) @ q.T + 7.0
    v = pca_direction(x.reshape(-1, *SHAPE)).double().flatten().numpy()
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-6)
    truth = q[:, -1] * np.sign(q[:, -1].sum())
    assert abs(v @ truth) > 0.995
    assert v.sum() > 0  # sign fixed
    assert np.allclose(pca_direction(-x.reshape(-1, *SHAPE)), pca_direction(x.reshape(-1, *SHAPE)))
    with pytest.raises(ValueError, match="zero variance"):
        pca_direction(np.ones((3, *SHAPE)))


def test_named_directions_and_unknown_name():
    ones = named_direction(SHAPE, "all-ones")
    assert torch.allclose(ones, torch.full(SHAPE, 1 / np.sqrt(48)))
    assert torch.equal(named_direction(SHAPE, "random", 3), random_directions(SHAPE, 1, 3)[0])
    with pytest.raises(ValueError, match="choose one of"):
        named_direction(SHAPE, "diagonal")


def test_evaluate_accepts_a_direction_name_and_sweeps_thresholds():
    encoder = build_control("identity", (1, 3, 3))
    run = dict(s_values=[0.5, 1.0, 2.0, 3.0], n_train=128, n_test=128, n_bootstrap=0, progress=False)
    result = evaluate_synbench(encoder, (1, 3, 3), direction="random", direction_seed=2, epsilons=(0.0, 0.2), **run)
    assert result.config["direction"] == "random:seed=2"
    table = result.scores_table(np.arange(0.6, 0.91, 0.05), (0.0, 0.2))
    assert list(table.columns) == ["threshold", "epsilon", "score"] and len(table) == 14
    robust = table[table["epsilon"] == 0.2]
    for t in (0.6, 0.7, 0.9):  # recomputed from the curves = what was evaluated
        recomputed = robust.loc[np.isclose(robust["threshold"], t), "score"].item()
        assert recomputed == pytest.approx(result.score_at(t, 0.2))
    with pytest.raises(ValueError, match="not evaluated"):
        result.scores_table([0.6], [0.1])
