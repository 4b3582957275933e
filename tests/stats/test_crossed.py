"""The crossed design's inference (configurations x seed labels), each case against a brute-force
or exact answer: the permutation p-value, seed-shift invariance, capped Fisher z, +/-inf ranks,
undefined resamples, strata and partial correlations, the calibration of the test on null zoos,
the interaction, the tie rule, the variance breakdown, the power simulation."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rmqm.stats import (
    crossed_bootstrap,
    detectable_effect,
    fisher_z_mean,
    interaction_contrast,
    leave_one_out,
    tie_weights,
    two_level_bootstrap,
    uniform_tie_choice,
    variance_breakdown,
)
from rmqm.stats.crossed import capped_z


def grid(n_configs: int, n_seeds: int, seed: int = 0, effect: float = 0.0, seed_sd: float = 0.0) -> pd.DataFrame:
    """A crossed zoo: config effects (a, b) correlated through ``effect``, a shift per seed label."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n_configs)
    b = effect * a + rng.normal(size=n_configs)
    u, v = rng.normal(0, seed_sd, size=(2, n_seeds))
    rows = [{"method": f"m{c}", "dim": 8 * (1 + c % 2), "seed": s, "score": a[c] + u[s] + 0.5 * rng.normal(),
             "acc": b[c] + v[s] + 0.5 * rng.normal()} for c in range(n_configs) for s in range(n_seeds)]
    return pd.DataFrame(rows)


def brute_statistic(table: pd.DataFrame, x: str = "score", y: str = "acc") -> float:
    """Per seed Spearman by scipy, |r| capped, Fisher mean, tanh."""
    z = []
    for _, g in table.groupby("seed"):
        r = stats.spearmanr(g[x], g[y])[0]
        cap = 1 - 12 / (len(g) * (len(g) ** 2 - 1))
        z.append(np.arctanh(np.clip(r, -cap, cap)))
    return float(np.tanh(np.mean(z)))


def test_exact_permutation_p_matches_brute_force_enumeration():
    table = grid(6, 2, seed=3, effect=1.0)
    res = crossed_bootstrap(table, "score", "acc", n_resamples=50, n_permutations=720)
    assert res.exact and res.n_permutations == 720 and res.p_se == 0.0
    assert res.estimate == pytest.approx(brute_statistic(table))
    configs = sorted(table["method"].unique())
    hits = 0
    for perm in itertools.permutations(range(6)):  # the same permutation for every seed label
        mapping = dict(zip(configs, [configs[i] for i in perm], strict=True))
        moved = table.set_index(["method", "seed"])["score"]
        permuted = table.assign(score=[moved[(mapping[m], s)] for m, s in zip(table["method"], table["seed"],
                                                                                strict=True)])
        hits += abs(brute_statistic(permuted)) >= abs(res.estimate) - 1e-12
    assert res.p_value == pytest.approx(hits / 720)


def test_a_shift_shared_by_every_encoder_of_a_seed_changes_nothing():
    table = grid(10, 3, seed=1, effect=0.5)
    shifted = table.assign(score=table["score"] + table["seed"].map({0: 5.0, 1: -3.0, 2: 11.0}))
    a = crossed_bootstrap(table, "score", "acc", method="pearson", n_resamples=200, random_state=2)
    b = crossed_bootstrap(shifted, "score", "acc", method="pearson", n_resamples=200, random_state=2)
    assert (b.estimate, b.low, b.high, b.p_value) == pytest.approx((a.estimate, a.low, a.high, a.p_value))


def test_one_perfect_seed_does_not_make_the_mean_one():
    rng = np.random.default_rng(0)
    acc = rng.normal(size=(8, 3))
    score = acc.copy()
    score[:, 1:] = rng.normal(size=(8, 2))  # seed 0 ranks perfectly, seeds 1, 2 do not
    table = pd.DataFrame([{"method": f"m{c}", "dim": 1, "seed": s, "score": score[c, s], "acc": acc[c, s]}
                          for c in range(8) for s in range(3)])
    res = crossed_bootstrap(table, "score", "acc", n_resamples=20)
    assert res.estimate < 0.999 and res.estimate == pytest.approx(brute_statistic(table))
    assert capped_z(np.array(1.0), 8) == pytest.approx(np.arctanh(1 - 12 / (8 * 63)))
    per_seed = [stats.spearmanr(score[:, s], acc[:, s])[0] for s in range(3)]
    assert fisher_z_mean(per_seed).estimate == 1.0  # uncapped: one perfect seed decides
    assert fisher_z_mean(per_seed, n_items=8).estimate == pytest.approx(res.estimate)


def test_infinite_scores_are_ranked_not_dropped():
    table = grid(8, 2, seed=4, effect=1.0)
    best = table["score"] == table["score"].max()
    inf = table.assign(score=np.where(best, np.inf, table["score"]))
    big = table.assign(score=np.where(best, 1e9, table["score"]))
    a = crossed_bootstrap(inf, "score", "acc", n_resamples=100)
    b = crossed_bootstrap(big, "score", "acc", n_resamples=100)
    assert (a.estimate, a.low, a.high, a.p_value, a.n_dropped) == (b.estimate, b.low, b.high, b.p_value, 0)
    pearson = crossed_bootstrap(inf, "score", "acc", method="pearson", n_resamples=20)
    assert pearson.n_dropped == 1  # Pearson cannot use it, and says so


def test_undefined_resamples_are_counted_and_make_the_row_not_measurable():
    table = grid(12, 3, seed=5)
    zero = table.assign(score=np.where(table["method"].isin(["m0", "m1"]), table["score"].abs() + 1, 0.0))
    res = crossed_bootstrap(zero, "score", "acc", n_resamples=400)
    assert res.share_zero == pytest.approx(10 / 12)
    # a resample without m0 and m1 is all zeros: probability (10/12)^12 per draw
    assert res.n_undefined > 0 and res.n_valid == 400 - res.n_undefined
    assert res.n_undefined / 400 == pytest.approx((10 / 12) ** 12, abs=0.04)
    assert not res.measurable and "83% of scores are exactly 0" in res.reason
    assert two_level_bootstrap is crossed_bootstrap


def test_within_strata_pooling_and_partial_match_a_hand_computation():
    table = grid(18, 2, seed=6, effect=1.0).assign(dim=lambda t: np.repeat([4, 8, 16], 12))  # 6 configs per dim
    res = crossed_bootstrap(table, "score", "acc", strata_col="dim", n_resamples=50, n_permutations=50)
    z = []
    for _, g in table.groupby("seed"):
        parts = [(len(h) - 3, np.arctanh(np.clip(stats.spearmanr(h["score"], h["acc"])[0], -1 + 12 / 210, 1 - 12 / 210)))
                 for _, h in g.groupby("dim")]
        z.append(sum(w * v for w, v in parts) / sum(w for w, _ in parts))
    assert res.estimate == pytest.approx(np.tanh(np.mean(z)))
    part = crossed_bootstrap(table.assign(logd=np.log(table["dim"])), "score", "acc", covariate="logd",
                             method="pearson", n_resamples=20)
    z = []
    for _, g in table.assign(logd=np.log(table["dim"])).groupby("seed"):
        design = np.column_stack([np.ones(len(g)), g["logd"]])
        resid = [g[c] - design @ np.linalg.lstsq(design, g[c], rcond=None)[0] for c in ("score", "acc")]
        z.append(np.arctanh(np.corrcoef(*resid)[0, 1]))
    assert part.estimate == pytest.approx(np.tanh(np.mean(z)))


def test_calibration_type_one_error_on_null_zoos_with_seed_effects():
    """400 null zoos of 14 configurations x 5 seeds with seed shifts of SD 1: the permutation
    test at 0.05 rejects within 3 Monte-Carlo SE (0.011) of 0.05 (the nested two-level
    bootstrap it replaces rejects about 14 % here)."""
    rng = np.random.default_rng(2024)
    n, rejections = 400, 0
    for i in range(n):
        table = grid(14, 5, seed=int(rng.integers(1 << 31)), seed_sd=1.0)
        rejections += crossed_bootstrap(table, "score", "acc", n_resamples=1, n_permutations=99,
                                        random_state=i).p_value <= 0.05
    rate = rejections / n
    assert abs(rate - 0.05) <= 3 * np.sqrt(0.05 * 0.95 / n), rate


def test_interaction_against_a_hand_computation_and_an_exact_sign_flip():
    a = pd.DataFrame({"seed": [0, 0, 1, 1, 2, 2], "dim": [16, 64] * 3, "contrast": [0.5, 0.7, 0.4, 0.6, 0.9, 0.3]})
    b = a.assign(contrast=[0.1, 0.3, 0.2, 0.2, 0.5, 0.5])
    res = interaction_contrast(a, b)
    per_seed = np.array([0.4, 0.3, 0.1])  # mean over dims of a - b per seed
    assert res.estimate == pytest.approx(per_seed.mean())
    half = stats.t.ppf(0.975, 2) * per_seed.std(ddof=1) / np.sqrt(3)
    assert (res.low, res.high) == pytest.approx((per_seed.mean() - half, per_seed.mean() + half))
    assert res.p_value == pytest.approx(2 / 8)  # all positive: only the identity and its negation reach it
    same = interaction_contrast(a, a)
    assert (same.estimate, same.p_value) == (0.0, 1.0)
    with pytest.raises(ValueError, match="no \\(seed, dim\\) pair"):
        interaction_contrast(a, b.assign(seed=b["seed"] + 10))


def test_ties_are_a_uniform_choice_among_the_tied_epsilons():
    scores = np.array([[0.0, 0.0, 0.0], [0.2, 0.5, 0.5], [0.9, 0.1, 0.3], [np.nan, 0.4, np.nan]])
    w = tie_weights(scores)
    np.testing.assert_allclose(w, [[1 / 3] * 3, [0, 0.5, 0.5], [1, 0, 0], [0, 1, 0]])
    robust = np.array([[0.1, 0.4, 0.7], [0.3, 0.2, 0.6], [0.5, 0.1, 0.1], [0.2, 0.3, 0.9]])
    np.testing.assert_allclose(uniform_tie_choice(scores, robust), [0.4, 0.4, 0.5, 0.3])
    best = robust == robust.max(axis=1, keepdims=True)  # chance of naming the best epsilon
    np.testing.assert_allclose(uniform_tie_choice(scores, best), [1 / 3, 0.5, 1.0, 0.0])


def test_variance_breakdown_recovers_an_exact_additive_table():
    config, seed = np.array([0.0, 2.0, 4.0, 6.0]), np.array([1.0, -1.0, 0.0])
    table = pd.DataFrame([{"method": f"m{c}", "dim": 1, "seed": s, "v": config[c] + seed[s]}
                          for c in range(4) for s in range(3)])
    out = variance_breakdown(table, ["v"]).iloc[0]
    assert out["var_residual"] == pytest.approx(0.0, abs=1e-12)
    assert out["var_config"] == pytest.approx(np.var(config, ddof=1))
    assert out["var_seed"] == pytest.approx(np.var(seed, ddof=1))
    assert out["share_seed"] == pytest.approx(1 / (1 + np.var(config, ddof=1)))


def test_detectable_effect_shrinks_with_more_configurations_and_leave_one_out():
    small = detectable_effect(grid(8, 3, seed=7), "score", "acc", n_sim=200)
    large = detectable_effect(grid(40, 3, seed=7), "score", "acc", n_sim=200)
    assert 0 < large.rho < small.rho <= 0.95 or np.isnan(small.rho)
    assert (large.n_configs, large.n_seeds) == (40, 3)
    loo = leave_one_out(grid(6, 2, seed=8, effect=1.0), "score", "acc")
    assert list(loo["left_out"]) == [f"m{i}" for i in range(6)] and (loo["n_configs"] == 5).all()
