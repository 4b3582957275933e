"""Mean-shift tests of the seed- and encoder-level families (rmqm.stats.shift), against scipy,
brute force and simulation."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rmqm.stats.shift import detectable_shift, mean_shift_test, step_family


def test_t_test_matches_scipy_and_the_interval_its_p():
    x = np.array([0.3, -0.1, 0.5, 0.2, 0.4])
    r = mean_shift_test(x, confidence=0.9)
    ref = stats.ttest_1samp(x, 0.0)
    assert r.p_value == pytest.approx(ref.pvalue) and r.estimate == pytest.approx(x.mean())
    ci = ref.confidence_interval(0.9)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high))
    assert r.p_se == 0 and r.p_floor == 0 and r.n_valid == 5 and r.measurable


def test_exact_sign_flip_equals_brute_force_enumeration():
    x = np.array([0.4, -0.2, 0.1, 0.3, 0.25, -0.05])
    brute = np.mean([abs(np.mean(np.array(s) * x)) >= abs(x.mean()) - 1e-12
                     for s in itertools.product((1, -1), repeat=x.size)])
    r = mean_shift_test(x, test="sign-flip")
    assert r.p_value == pytest.approx(brute) and r.p_method == "sign-flip (exact)" and r.p_floor == 2 / 64


def test_monte_carlo_sign_flip_reports_its_error_and_agrees_with_the_exact_p():
    x = np.random.default_rng(3).normal(0.3, 1.0, 12)
    exact = mean_shift_test(x, test="sign-flip")
    mc = mean_shift_test(x, test="sign-flip", max_exact=1024, n_monte_carlo=20000, seed=1)
    assert mc.p_method == "sign-flip (Monte Carlo, 20000)" and mc.p_se > 0
    assert abs(mc.p_value - exact.p_value) < 4 * mc.p_se + 1e-4


def test_detectable_shift_has_the_stated_power_in_simulation():
    n, sd, alpha = 6, 2.0, 0.01
    delta = detectable_shift(sd, n, alpha)
    rng = np.random.default_rng(0)
    samples = rng.normal(delta, sd, size=(20000, n))
    power = np.mean(stats.ttest_1samp(samples, 0.0, axis=1).pvalue <= alpha)
    assert power == pytest.approx(0.8, abs=0.015)
    assert np.isnan(detectable_shift(0.0, n, alpha)) and np.isnan(detectable_shift(1.0, 1, alpha))


def test_t_test_type_one_error_is_its_level_under_the_null():
    rng = np.random.default_rng(7)
    p = np.array([mean_shift_test(rng.normal(0.0, 1.0, 5)).p_value for _ in range(4000)])
    assert np.mean(p <= 0.05) == pytest.approx(0.05, abs=0.012)  # MC sd of the rate: 0.0034


def test_too_few_replicates_are_not_measurable_and_nan_ones_are_counted():
    r = mean_shift_test([0.5, np.nan])
    assert not r.measurable and r.n_valid == 1 and r.n_resamples == 2 and "a test needs 2" in r.reason
    assert np.isnan(r.p_value)
    floor = mean_shift_test([0.1, 0.2, 0.3], test="sign-flip", alpha=0.05)
    assert floor.p_value == 0.25 and np.isnan(floor.detectable)  # the floor 2/8 is above the level


@pytest.mark.parametrize("values, kwargs, message", [
    ([1.0, 2.0], {"test": "wilcoxon"}, "unknown test 'wilcoxon'"),
    ([[1.0, 2.0]], {}, "must be 1-D"),
    ([1.0, np.inf], {}, "infinite replicate"),
    ([1.0, 2.0], {"alpha": 1.5}, "alpha"),
])
def test_bad_input_is_named(values, kwargs, message):
    with pytest.raises(ValueError, match=message):
        mean_shift_test(values, **kwargs)


def _points(b_gap: float, seeds=range(5), dims=(16, 64), settings=("noise", "pgd-reference")) -> pd.DataFrame:
    """Per-point B and S_b: the self-supervised B larger by ``b_gap``, S_b equal (plus noise);
    a seed shift shared by both families cancels in the contrast."""
    rng = np.random.default_rng(0)
    rows = []
    for setting, seed, dim, family in itertools.product(settings, seeds, dims, ("self-supervised", "supervised")):
        shift = 0.3 * seed
        gap = b_gap if family == "self-supervised" else 0.0
        for _ in range(9):
            rows.append(dict(perturbation=setting, seed=seed, dim=dim, family=family,
                             B=1.0 + shift + gap + 0.01 * rng.standard_normal(),
                             S_b=0.5 + shift + 0.01 * rng.standard_normal()))
    return pd.DataFrame(rows)


def test_step_family_tests_each_alteration_and_claim_over_seeds():
    family = step_family(_points(0.2), alpha=0.05)
    assert family["label"].tolist() == ["noise: larger steps", "noise: steadier steps",
                                        "pgd-reference: larger steps", "pgd-reference: steadier steps"]
    larger = family[family["claim"] == "larger steps"]
    assert larger["estimate"].tolist() == pytest.approx([0.2, 0.2], abs=0.02)
    assert (larger["p_value"] < 1e-4).all() and (larger["n_valid"] == 5).all() and (larger["dims"] == "16, 64").all()
    steadier = family[family["claim"] == "steadier steps"]
    assert (steadier["p_value"] > 1e-3).all() and (steadier["ci_low"] < 0).all() and (steadier["ci_high"] > 0).all()
    assert steadier["detectable"].str.startswith("|shift| >= ").all()


def test_step_family_flips_the_sign_of_s_b_so_steadier_is_positive():
    points = _points(0.0)
    points.loc[points["family"] == "supervised", "S_b"] += 0.1  # supervised less steady: the paper's direction
    family = step_family(points).set_index("label")
    assert family.loc["noise: steadier steps", "estimate"] == pytest.approx(0.1, abs=0.02)
