"""Inference over an encoder zoo: Fisher-z means, two-level bootstrap, partial and within-dim
correlations, paired differences, Holm, verdicts, expected signs, per-task tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rmqm.stats import (
    AGGREGATE,
    expected_sign_alpha_req,
    fisher_z_mean,
    holm,
    paired_bootstrap_difference,
    partial_correlation,
    per_task_correlations,
    reference_pooled_correlation,
    seed_means,
    two_level_bootstrap,
    verdict_table,
    within_dim_correlations,
)

FAST = 200  # resamples: enough for the properties tested, fast


def zoo(n_methods: int = 6, dims=(4, 8, 16, 32), n_seeds: int = 3, seed: int = 0, effect: float = 1.0,
        dim_effect: float = 0.0, noise: float = 0.3) -> pd.DataFrame:
    """A zoo: a latent quality per configuration drives `score` and `acc` (with `effect`);
    `noise` is independent of everything; `dim_effect * log d` is added to both."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(n_methods):
        for d in dims:
            quality = rng.normal()
            for s in range(n_seeds):
                rows.append({
                    "method": f"m{m}", "dim": d, "seed": s,
                    "score": effect * quality + noise * rng.normal() + dim_effect * np.log(d),
                    "acc": quality + noise * rng.normal() + dim_effect * np.log(d),
                    "noise": rng.normal(),
                })
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ Fisher-z mean


def test_fisher_z_mean_of_identical_coefficients_is_that_coefficient():
    for r in (-0.3, 0.0, 0.7, 1.0):
        res = fisher_z_mean([r] * 4)
        assert res.estimate == pytest.approx(r) and res.low == pytest.approx(r) and res.high == pytest.approx(r)


def test_fisher_z_mean_is_the_back_transformed_t_interval_of_z():
    rs = np.array([0.2, 0.5, 0.6, 0.9])
    z = np.arctanh(rs)
    low, high = stats.t.interval(0.9, len(z) - 1, loc=z.mean(), scale=stats.sem(z))
    res = fisher_z_mean(rs, confidence=0.9)
    assert res.estimate == pytest.approx(np.tanh(z.mean()))
    assert (res.low, res.high) == pytest.approx((np.tanh(low), np.tanh(high)))
    assert -1 < res.low < res.estimate < res.high < 1


def test_fisher_z_mean_leaves_out_nan_and_rejects_out_of_range():
    assert fisher_z_mean([0.5, np.nan]).n == 1
    assert np.isnan(fisher_z_mean([0.5, np.nan]).low)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        fisher_z_mean([0.5, 1.2])


# ------------------------------------------------------------------ two-level bootstrap


def test_monotone_zoo_gives_one_with_an_interval_at_one():
    table = zoo(noise=0.0).assign(score=lambda t: np.exp(t["acc"]))  # a monotone function row by row
    res = two_level_bootstrap(table, "score", "acc", n_resamples=FAST, random_state=1)
    cap = 1 - 12 / (24 * (24 ** 2 - 1))  # |r| capped at one adjacent swap from perfect before Fisher z
    assert res.estimate == pytest.approx(cap)
    assert res.low == pytest.approx(cap) and res.high == pytest.approx(cap)
    assert res.p_value == pytest.approx(1 / (FAST + 1)) and not res.exact  # no permutation reaches it
    assert res.p_se == pytest.approx(np.sqrt(res.p_value * (1 - res.p_value) / FAST))
    assert (res.n_configs, res.n_seeds) == (24, 3)


def test_independent_noise_gives_an_interval_covering_zero():
    res = two_level_bootstrap(zoo(), "noise", "acc", n_resamples=FAST, random_state=2)
    assert res.low < 0 < res.high
    assert res.p_value > 0.05


def test_a_real_association_is_found_and_the_statistic_is_the_seed_fisher_mean():
    table = zoo(noise=0.5)
    res = two_level_bootstrap(table, "score", "acc", method="pearson", n_resamples=FAST, random_state=3)
    per_seed = [stats.pearsonr(g["score"], g["acc"])[0] for _, g in table.groupby("seed")]
    assert res.estimate == pytest.approx(fisher_z_mean(per_seed).estimate)
    assert res.low > 0 and res.p_value < 0.05
    again = two_level_bootstrap(table, "score", "acc", method="pearson", n_resamples=FAST, random_state=3)
    assert again == res  # seeded


def test_bootstrap_leaves_out_non_finite_rows():
    table = zoo()
    table.loc[[0, 5], "score"] = np.nan
    table.loc[7, "acc"] = np.inf
    res = two_level_bootstrap(table, "score", "acc", n_resamples=50)
    assert np.isfinite(res.estimate) and res.n_configs == 24


def test_bootstrap_errors_name_the_problem():
    table = zoo()
    with pytest.raises(ValueError, match="'missing'"):
        two_level_bootstrap(table, "missing", "acc", n_resamples=10)
    with pytest.raises(ValueError, match="at least 3 configurations"):
        two_level_bootstrap(table[table["dim"] == 4].query("method in ['m0', 'm1']"), "score", "acc", n_resamples=10)
    with pytest.raises(ValueError, match="repeat"):
        two_level_bootstrap(pd.concat([table, table.head(1)]), "score", "acc", n_resamples=10)
    with pytest.raises(ValueError, match="unknown method"):
        two_level_bootstrap(table, "score", "acc", method="kendal", n_resamples=10)


# ------------------------------------------------------------------ paired difference


def test_paired_difference_of_a_score_with_itself_is_exactly_zero():
    res = paired_bootstrap_difference(zoo(), "score", "score", "acc", n_resamples=FAST)
    assert (res.estimate, res.low, res.high) == (0.0, 0.0, 0.0)
    assert res.p_value == 1.0


def test_paired_difference_finds_the_better_score():
    table = zoo(noise=0.3)
    res = paired_bootstrap_difference(table, "score", "noise", "acc", n_resamples=FAST, random_state=4)
    single = [two_level_bootstrap(table, s, "acc", n_resamples=10).estimate for s in ("score", "noise")]
    assert res.estimate == pytest.approx(single[0] - single[1])
    assert res.low > 0 and res.p_value < 0.05


# ------------------------------------------------------------------ confounding by dimension


def confounded(seed: int = 0) -> pd.DataFrame:
    """x and y both follow log d, with independent noise: no association at a fixed d."""
    rng = np.random.default_rng(seed)
    dims = np.repeat([2, 4, 8, 16, 32, 64, 128, 256], 8)
    log_d = np.log(dims)
    return pd.DataFrame({"method": np.tile([f"m{i}" for i in range(8)], 8), "dim": dims, "seed": 0,
                         "x": 2 * log_d + 0.5 * rng.normal(size=dims.size),
                         "y": np.sqrt(log_d) + 0.1 * rng.normal(size=dims.size)})


def test_partial_correlation_removes_a_correlation_due_to_the_covariate():
    table = confounded()
    raw = stats.spearmanr(table["x"], table["y"])[0]
    part = partial_correlation(table, "x", "y")
    assert raw > 0.8
    assert abs(part.r) < 0.3 and part.p_value > 0.05
    assert part.n == 64 and part.covariates == ("log_dim",)


def test_partial_correlation_matches_residual_correlation_by_hand():
    table = confounded(1).assign(log_dim=lambda t: np.log(t["dim"]))
    part = partial_correlation(table, "x", "y", method="pearson")
    design = np.column_stack([np.ones(len(table)), table["log_dim"]])
    res = [v - design @ np.linalg.lstsq(design, v, rcond=None)[0] for v in (table["x"], table["y"])]
    assert part.r == pytest.approx(np.corrcoef(*res)[0, 1])


def test_partial_correlation_needs_enough_configurations():
    with pytest.raises(ValueError, match="at least 4 configurations"):
        partial_correlation(confounded().head(3), "x", "y")


def test_within_dim_correlations_and_their_pooled_estimate():
    table = confounded()
    out = within_dim_correlations(table, "x", "y", method="pearson")
    assert list(out.columns) == ["dim", "n", "r", "ci_low", "ci_high", "p_value", "weight"]
    per_dim = out[out["dim"] != "pooled"]
    for dim, row in per_dim.set_index("dim").iterrows():
        g = table[table["dim"] == dim]
        assert row["r"] == pytest.approx(stats.pearsonr(g["x"], g["y"])[0])
        assert row["n"] == 8 and row["weight"] == 5
    pooled = out.iloc[-1]
    z = np.average(np.arctanh(per_dim["r"].astype(float)), weights=per_dim["weight"].astype(float))
    assert pooled["dim"] == "pooled" and pooled["r"] == pytest.approx(np.tanh(z))
    assert pooled["ci_low"] < 0.3 and pooled["ci_low"] < pooled["r"] < pooled["ci_high"]
    half = stats.norm.ppf(0.975) / np.sqrt(40)
    assert (pooled["ci_low"], pooled["ci_high"]) == pytest.approx((np.tanh(z - half), np.tanh(z + half)))


def test_within_dim_averages_seeds_first():
    table = zoo(n_seeds=3)
    means = seed_means(table, ["score", "acc"])
    assert len(means) == 24 and (means["n_seeds"] == 3).all()
    out = within_dim_correlations(table, "score", "acc")
    assert (out.loc[out["dim"] != "pooled", "n"] == 6).all()


# ------------------------------------------------------------------ Holm and verdicts


def test_holm_against_a_hand_computed_example():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(0.06, 1*0.04)
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])


def test_holm_is_monotone_capped_and_skips_nan():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=30)
    adj = holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0) and np.all(adj >= p) and adj.max() <= 1
    np.testing.assert_allclose(holm([0.01, np.nan, 0.02]), [0.02, np.nan, 0.02])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.5, 1.5])


def test_verdict_table_uses_the_adjusted_p_and_the_interval_sign():
    rows = pd.DataFrame({
        "p_value": [0.001, 0.001, 0.03, 0.001],
        "ci_low": [0.2, -0.6, 0.1, -0.1],
        "ci_high": [0.5, -0.2, 0.4, 0.3],
        "expected_sign": ["positive", "positive", "positive", "positive"],
    })
    out = verdict_table(rows, alpha=0.05)
    np.testing.assert_allclose(out["p_holm"], [0.004, 0.004, 0.03, 0.004])
    assert list(out["verdict"]) == ["supported", "contradicted", "supported", "inconclusive"]
    # four more tests in the family push the third row's adjusted p above alpha
    more = pd.concat([rows, rows.assign(p_value=0.5)], ignore_index=True)
    assert verdict_table(more)["verdict"].iloc[2] == "inconclusive"
    with pytest.raises(ValueError, match="expected_sign"):
        verdict_table(rows.drop(columns="expected_sign"))


# ------------------------------------------------------------------ alpha-ReQ's expected sign


def test_expected_sign_alpha_req():
    above = expected_sign_alpha_req([1.2, 1.5, np.nan, 3.0])
    assert (above.column, above.sign) == ("alpha_req", "negative")
    below = expected_sign_alpha_req(np.array([0.3, 0.9]))
    assert (below.column, below.sign) == ("alpha_req", "positive")
    mixed = expected_sign_alpha_req([0.5, 1.0, 2.0])
    assert mixed.sign == "positive" and mixed.column != "alpha_req"
    table = pd.DataFrame({"alpha_req": [0.5, 1.0, 2.0]})
    np.testing.assert_allclose(mixed.values(table), [-0.5, 0.0, -1.0])
    np.testing.assert_allclose(above.values(table), [0.5, 1.0, 2.0])
    with pytest.raises(ValueError, match="finite alpha"):
        expected_sign_alpha_req([np.nan])


# ------------------------------------------------------------------ per-task statistics


def test_reference_pooled_correlation_on_a_hand_made_two_task_table():
    table = pd.DataFrame({
        "dim": [2, 4, 8, 16, 32],
        "score": [9.0, 1.0, 2.0, 3.0, 4.0],
        "a_1nn": [0.0, 0.2, 0.3, 0.4, 0.5],
        "b_1nn": [0.9, 0.6, 0.7, 0.8, np.nan],
    })
    res = reference_pooled_correlation(table, "score", ["a", "b"])
    # d > 3 leaves dims 4..32; a / 0.5 and b / 0.8 (its NaN row left out)
    x = [1, 2, 3, 4, 1, 2, 3]
    y = [0.4, 0.6, 0.8, 1.0, 0.75, 0.875, 1.0]
    r, p = stats.pearsonr(x, y)
    assert (res.r, res.p_value, res.n, res.tasks) == (pytest.approx(r), pytest.approx(p), 7, ("a", "b"))
    with pytest.raises(ValueError, match="c_1nn"):
        reference_pooled_correlation(table, "score", ["a", "c"])


def test_per_task_correlations_table():
    table = zoo(n_seeds=2).assign(
        **{"t1_1nn": lambda t: 0.5 + 0.1 * t["acc"], "t2_1nn": lambda t: 0.2 + 0.05 * t["acc"]})
    out = per_task_correlations(table, ["score", "noise"], ["t1", "t2"], n_resamples=50,
                                chance={"t1": 0.1, "t2": 0.02})
    assert list(out.columns) == ["score", "task", "target", "kind", "method", "estimate", "ci_low", "ci_high",
                                 "p_value", "p_holm", "n_configs", "n_seeds", "n_valid", "p_se", "measurable", "reason"]
    assert len(out) == 2 * 3 * 2
    np.testing.assert_allclose(out["p_holm"], holm(out["p_value"]))
    agg = out[out["kind"] == "aggregate"]
    assert set(agg["task"]) == {AGGREGATE} and len(agg) == 4
    # every target is an increasing function of acc: the same Spearman estimate for each
    spear = out[(out["score"] == "score") & (out["method"] == "spearman")]["estimate"]
    np.testing.assert_allclose(spear, spear.iloc[0])
    with pytest.raises(ValueError, match="no chance level for task 't2'"):
        per_task_correlations(table, ["score"], ["t1", "t2"], n_resamples=5, chance={"t1": 0.1})


def test_with_one_seed_per_configuration_it_is_the_paired_row_bootstrap():
    table = zoo(n_seeds=1, noise=0.8, seed=5)
    ours = two_level_bootstrap(table, "score", "acc", n_resamples=2000, random_state=0)
    assert ours.estimate == pytest.approx(stats.spearmanr(table["score"], table["acc"])[0])
    ref = stats.bootstrap((table["score"].to_numpy(), table["acc"].to_numpy()),
                          lambda x, y: stats.spearmanr(x, y)[0], paired=True, vectorized=False,
                          n_resamples=2000, method="percentile", rng=np.random.default_rng(1))
    ci = ref.confidence_interval
    assert (ours.low, ours.high) == pytest.approx((ci.low, ci.high), abs=0.05)  # Monte-Carlo error only


def test_bca_interval_is_defined_in_degenerate_cases_and_brackets_a_real_estimate():
    table = zoo(noise=0.0).assign(score=lambda t: np.exp(t["acc"]))
    perfect = two_level_bootstrap(table, "score", "acc", n_resamples=FAST, interval="bca")
    cap = 1 - 12 / (24 * (24 ** 2 - 1))
    assert (perfect.low, perfect.high) == pytest.approx((cap, cap)) and perfect.interval == "bca"
    same = paired_bootstrap_difference(zoo(), "score", "score", "acc", n_resamples=FAST, interval="bca")
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)
    res = two_level_bootstrap(zoo(noise=0.8), "score", "acc", n_resamples=FAST, interval="bca")
    assert res.low < res.estimate < res.high
    with pytest.raises(ValueError, match="unknown interval"):
        two_level_bootstrap(table, "score", "acc", n_resamples=FAST, interval="basic")


def test_a_constant_score_is_no_association_and_not_measurable():
    table = zoo().assign(flat=0.1)
    for method in ("pearson", "spearman"):
        res = two_level_bootstrap(table, "flat", "acc", method=method, n_resamples=20)
        assert res.estimate == 0.0 and res.n_valid == 0 and res.n_undefined == 20
        assert not res.measurable and "100% of resamples undefined" in res.reason
