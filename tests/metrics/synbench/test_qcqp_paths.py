"""The two root finders of the secular equation (Newton, log-space Brent) agree where they meet."""

import numpy as np
import pytest

from rmqm.metrics.synbench.qcqp import NEWTON_MIN_EPSILON, solve_robust_qcqp


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_newton_and_log_space_paths_agree_at_the_switch(seed):
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=50)
    d = np.exp(3 * rng.normal(size=50))  # eigenvalues spread over ~8 decades
    above = solve_robust_qcqp(mu, d, NEWTON_MIN_EPSILON * 1.001)  # Newton
    below = solve_robust_qcqp(mu, d, NEWTON_MIN_EPSILON * 0.999)  # log-space Brent
    # for a tiny budget gamma is linear in epsilon: gamma ~ epsilon ||mu|| / ||D^-1 mu||
    assert above.ridge / below.ridge == pytest.approx(1.001 / 0.999, rel=1e-9)
    expected = NEWTON_MIN_EPSILON * np.linalg.norm(mu) / np.linalg.norm(mu / d)
    assert above.ridge == pytest.approx(expected * 1.001, rel=1e-9)


@pytest.mark.parametrize("epsilon", [1e-6, 0.05, 0.2, 0.5, 0.95, 0.999])
def test_newton_root_is_on_the_constraint(epsilon):
    rng = np.random.default_rng(7)
    mu = rng.normal(size=300)
    d = np.exp(2 * rng.normal(size=300))
    sol = solve_robust_qcqp(mu, d, epsilon)
    assert np.linalg.norm(sol.z) / np.linalg.norm(mu) == pytest.approx(epsilon, rel=1e-12)
