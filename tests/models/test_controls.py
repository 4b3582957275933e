"""Control encoders: their SynBench scores match the closed form of their separation rho.

Tolerance: on a 16-pixel input with n_train = n_test = 1024 the bootstrap 95% half-width of a
score is 0.01-0.03 and the plug-in LDA's estimation loss (d / n_train <= 1.6%) lowers a score by
under 0.01; 0.06 is about twice the largest half-width plus that bias.
"""

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from rmqm.metrics.synbench.directions import linear_encoder_scores, synbench_over_directions
from rmqm.metrics.synbench.evaluate import evaluate_synbench
from rmqm.metrics.synbench.mixture import random_directions
from rmqm.models.controls import CONTROL_ENCODERS, ConstantNoiseControl, build_control

SHAPE = (1, 4, 4)
S = np.round(np.arange(0.2, 4.95, 0.3), 3)
THRESHOLDS = (0.6, 0.7, 0.8, 0.9)
RUN = dict(s_values=S, n_train=1024, n_test=1024, n_bootstrap=0, progress=False, thresholds=THRESHOLDS)
TOL = 0.06


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


def scores(encoder, direction=None, epsilons=(0.0,)):
    return evaluate_synbench(encoder, SHAPE, direction=direction, epsilons=epsilons, **RUN)


@pytest.mark.parametrize("name", ["identity", "invertible-linear"])
@pytest.mark.parametrize("direction", [None, "random", "random-zero-mean"])
def test_score_one_for_invertible_encoders(name, direction):
    result = scores(build_control(name, SHAPE, seed=1), direction)
    assert np.allclose(result.scores["score"], 1.0, atol=TOL)


def test_identity_is_one_at_epsilon_02_too():
    result = scores(build_control("identity", SHAPE), epsilons=(0.0, 0.2))
    assert abs(result.score_at(0.6, 0.2) - 1) < TOL and abs(result.score_at(0.9, 0.2) - 1) < TOL


def test_mean_pixel_scores_one_only_under_all_ones():
    encoder = build_control("mean-pixel", SHAPE)
    ones = scores(encoder).scores["score"].to_numpy()
    assert np.allclose(ones, 1.0, atol=TOL)
    zero_mean = scores(encoder, random_directions(SHAPE, 1, 0, zero_mean=True)[0]).scores["score"]
    assert np.all(zero_mean < 0.02)  # rho = 0: features independent of the label
    directions = random_directions(SHAPE, 4, seed=5)
    _, summary = synbench_over_directions(encoder, SHAPE, directions, **RUN)
    predicted = np.mean([linear_encoder_scores(encoder.separation(d), S, THRESHOLDS) for d in directions], axis=0)
    assert np.allclose(summary["mean"], predicted, atol=TOL)  # rho = |sum u| / 4 here, about N(0, 1/16)
    assert np.all(summary["mean"].to_numpy() < ones - 0.35)


def test_random_projection_matches_its_closed_form():
    encoder = build_control("random-projection", SHAPE, seed=2)
    for direction in (None, random_directions(SHAPE, 1, 3)[0]):
        rho = encoder.separation(direction)
        assert 0.1 < rho < 0.95
        measured = scores(encoder, direction).scores["score"].to_numpy()
        assert np.allclose(measured, linear_encoder_scores(rho, S, THRESHOLDS), atol=TOL)


def test_constant_noise_scores_zero_and_is_reproducible():
    encoder = build_control("constant-noise", SHAPE, seed=4)
    assert np.all(scores(encoder).scores["score"] < 0.02)
    x = torch.zeros(3, *SHAPE)
    a = ConstantNoiseControl(SHAPE, seed=4)(x)
    b = ConstantNoiseControl(SHAPE, seed=4)(torch.ones(3, *SHAPE))
    assert torch.equal(a, b)  # independent of the input, deterministic given the seed
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(encoder(x, generator=g1), encoder(x, generator=g2))


def test_separation_closed_forms():
    u = torch.zeros(SHAPE)
    u[0, 0, 0] = 1.0
    assert build_control("mean-pixel", SHAPE).separation(u) == pytest.approx(0.25)  # 1 / sqrt(16)
    projection = build_control("random-projection", SHAPE, dim=16)  # full rank: keeps everything
    assert projection.separation(u) == pytest.approx(1.0, abs=1e-6)


def test_factory_shapes_and_errors():
    x = torch.rand(5, *SHAPE)
    dims = {"identity": 16, "invertible-linear": 16, "mean-pixel": 1, "random-projection": 4, "constant-noise": 8}
    for name in CONTROL_ENCODERS:
        assert build_control(name, SHAPE, seed=0)(x).shape == (5, dims[name])
    with pytest.raises(ValueError, match="choose one of"):
        build_control("pixels", SHAPE)
    weight = build_control("invertible-linear", SHAPE, seed=0).weight.double()
    singular = torch.linalg.svdvals(weight)
    assert singular.max() / singular.min() == pytest.approx(4.0, rel=1e-4)


def test_linear_encoder_scores_limits():
    assert np.allclose(linear_encoder_scores(1.0), 1.0)
    assert np.allclose(linear_encoder_scores(0.0), 0.0)
    middle = linear_encoder_scores(0.5)
    assert np.all((middle > 0) & (middle < 1)) or np.all(middle[:3] > 0)
    with pytest.raises(ValueError):
        linear_encoder_scores(1.5)
