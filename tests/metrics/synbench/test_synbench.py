"""SynBench against closed forms, KKT conditions and encoders with known answers."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from threadpoolctl import threadpool_limits
from torch import nn

from rmqm.metrics.synbench.curves import (
    ACCURACY_GRID,
    DEFAULT_S_VALUES,
    DEFAULT_THRESHOLDS,
    accuracy_grid,
    expected_bound_curve,
    synbench_scores,
)
from rmqm.metrics.synbench.evaluate import SynBenchResult, evaluate_synbench
from rmqm.metrics.synbench.mixture import (
    expected_bound,
    mixture_direction,
    raw_accuracy,
    sample_gaussian_mixture,
)
from rmqm.metrics.synbench.qcqp import (
    accuracy_and_bound,
    class_statistics,
    robust_linear_rule,
    solve_robust_qcqp,
)
from rmqm.models.encoder import Encoder
from rmqm.plots.figures import plot_synbench

SHAPE = (3, 4, 4)
DIM = 48
FAST = dict(s_values=[0.5, 1.0, 1.5, 2.0, 3.0], n_train=256, n_test=256, n_bootstrap=20, progress=False)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny matrices: threads only add contention on a shared 2-core machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


def invertible_linear(seed: int = 0) -> nn.Module:
    """Flatten then an invertible affine map with condition number 4."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(DIM, DIM, generator=g))
    layer = nn.Linear(DIM, DIM)
    with torch.no_grad():
        layer.weight.copy_(q * torch.linspace(0.5, 2.0, DIM))
        layer.bias.copy_(torch.randn(DIM, generator=g))
    return nn.Sequential(nn.Flatten(), layer)


class DropDirection(nn.Module):
    """Flatten and project out one unit direction: rank d - 1 features."""

    def __init__(self, u: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("u", u.flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x.flatten(1)
        return f - (f @ self.u)[:, None] * self.u


def small_mlp() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(DIM, 16), nn.Tanh(), nn.Linear(16, 8))


class Scaled(nn.Module):
    def __init__(self, inner: nn.Module, factor: float) -> None:
        super().__init__()
        self.inner, self.factor = inner, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * self.factor


# ------------------------------------------------------------------ closed form
@pytest.mark.parametrize("s", [0.3, 1.0, 2.2])
def test_closed_form_matches_monte_carlo_on_sampled_raw_data(s):
    n = 40_000
    g = torch.Generator().manual_seed(1)
    x, y = sample_gaussian_mixture(n, s, SHAPE, generator=g)
    u = mixture_direction(SHAPE)
    # Bayes rule sign(mu . (x - 0.5)); signed projection t ~ N(s, 1) for both classes
    t = ((2 * y - 1) * ((x - 0.5).flatten(1) @ u.flatten())).double().numpy()
    correct = t > 0
    a = correct.mean()
    assert abs(a - raw_accuracy(s)) < 4 * math.sqrt(a * (1 - a) / n)
    radius = t[correct] / s  # |margin| / ||mu||^2 = distance to the boundary / ||mu||
    tol = 4 * radius.std() / math.sqrt(correct.sum())
    assert abs(radius.mean() - expected_bound(raw_accuracy(s))) < tol


def test_expected_bound_is_truncated_normal_mean_over_s():
    s = np.array([0.1, 0.7, 2.0, 4.9])
    truncated_mean = stats.truncnorm.mean(-s, np.inf, loc=s)  # N(s, 1) given > 0
    np.testing.assert_allclose(expected_bound(stats.norm.cdf(s)), truncated_mean / s, rtol=1e-7)
    assert expected_bound(1.0) == 1.0
    for bad in (0.5, 0.3, 1.01, np.nan):
        with pytest.raises(ValueError, match=r"\(0.5, 1\]"):
            expected_bound(bad)


def test_sampler_shapes_moments_and_no_clipping():
    g = torch.Generator().manual_seed(0)
    x, y = sample_gaussian_mixture(4000, 2.0, SHAPE, generator=g)
    assert x.shape == (4000, *SHAPE) and x.dtype == torch.float32
    assert set(y.unique().tolist()) == {0, 1}
    assert x.min() < 0 and x.max() > 1  # not clipped to [0, 1]
    u = mixture_direction(SHAPE)
    for label, sign in ((1, 1.0), (0, -1.0)):
        mean = x[y == label].mean(0)
        expected = 0.5 + sign * 2.0 * u
        assert (mean - expected).abs().max() < 5 / math.sqrt((y == label).sum())
    # a custom direction is normalised and used
    direction = torch.zeros(SHAPE)
    direction[0, 0, 0] = 7.0
    x, y = sample_gaussian_mixture(4000, 3.0, SHAPE, direction=direction, generator=g)
    gap = x[y == 1].mean(0) - x[y == 0].mean(0)
    assert abs(gap[0, 0, 0] - 6.0) < 0.15 and gap.flatten()[1:].abs().max() < 0.2


# ------------------------------------------------------------------------ QCQP
def _random_problem(seed, k=7):
    rng = np.random.default_rng(seed)
    return rng.normal(size=k), 10 ** rng.uniform(-2, 2, size=k)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("epsilon", [0.05, 0.3, 0.8])
def test_qcqp_secular_solution_satisfies_kkt_and_matches_a_numeric_solve(seed, epsilon):
    mu, d = _random_problem(seed)
    sol = solve_robust_qcqp(mu, d, epsilon)
    radius = epsilon * np.linalg.norm(mu)
    # KKT: active constraint, stationarity D^-1 (z - mu) + lambda z = 0, lambda > 0
    assert np.linalg.norm(sol.z) == pytest.approx(radius, rel=1e-10)
    assert sol.multiplier > 0
    np.testing.assert_allclose((sol.z - mu) / d + sol.multiplier * sol.z, 0, atol=1e-9 * np.abs(mu / d).max())
    np.testing.assert_allclose(sol.weight, (mu - sol.z) / d, rtol=1e-9)
    assert sol.objective == pytest.approx(((mu - sol.z) ** 2 / d).sum(), rel=1e-12)
    # an independent exact solve: plain bisection on the KKT multiplier lambda, where
    # z(lambda) = mu / (1 + lambda d) and ||z(lambda)|| falls monotonically from ||mu|| to 0
    def norm_z(lam):
        return np.linalg.norm(mu / (1.0 + lam * d))

    lo, hi = 0.0, 1.0
    while norm_z(hi) > radius:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if norm_z(mid) > radius else (lo, mid)
    z_bisect = mu / (1.0 + hi * d)
    np.testing.assert_allclose(sol.z, z_bisect, rtol=1e-7, atol=1e-12 * np.linalg.norm(mu))
    assert sol.multiplier == pytest.approx(hi, rel=1e-6)
    # and no feasible point does better (random points in the ball and on its surface)
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(20000, mu.size))
    u *= (radius * rng.uniform(0.0, 1.0, size=(20000, 1)) ** (1 / mu.size)) / np.linalg.norm(u, axis=1, keepdims=True)
    assert sol.objective <= (((mu - u) ** 2) / d).sum(axis=1).min() * (1 + 1e-12)


def test_qcqp_limits_isotropic_case_and_scale():
    mu, d = _random_problem(9)
    lda = solve_robust_qcqp(mu, d, 0.0)
    np.testing.assert_allclose(lda.weight, mu / d)
    assert np.all(lda.z == 0) and lda.multiplier == math.inf
    # isotropic D: z* = epsilon mu, so w stays parallel to mu
    iso = solve_robust_qcqp(mu, np.full_like(d, 2.5), 0.4)
    np.testing.assert_allclose(iso.z, 0.4 * mu, rtol=1e-10)
    # features scaled by c: D -> c^2 D, mu -> c mu gives z -> c z at any scale
    c = 1e-6
    tiny = solve_robust_qcqp(c * mu, c**2 * d, 0.3)
    np.testing.assert_allclose(tiny.z, c * solve_robust_qcqp(mu, d, 0.3).z, rtol=1e-9)
    # larger budgets pull w towards mu (ridge path)
    cosines = [np.dot(mu, s.weight) / np.linalg.norm(s.weight) for s in
               (solve_robust_qcqp(mu, d, e) for e in (0.0, 0.2, 0.5, 0.9))]
    assert np.all(np.diff(cosines) > 0)


def test_qcqp_rejects_bad_input():
    mu, d = _random_problem(0)
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        solve_robust_qcqp(mu, d, -0.1)
    with pytest.raises(ValueError, match="epsilon must be < 1"):
        solve_robust_qcqp(mu, d, 1.0)
    with pytest.raises(ValueError, match="positive"):
        solve_robust_qcqp(mu, np.r_[d[:-1], 0.0], 0.2)
    with pytest.raises(ValueError, match="equal length"):
        solve_robust_qcqp(mu, d[:-1], 0.2)


# ----------------------------------------------------- statistics and curves
def test_class_statistics_cut_and_sample_count():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(200, 5))
    h[:, 4] = h[:, 0] - h[:, 1]  # exactly dependent column: rank 4
    labels = np.arange(200) % 2 == 0
    h[labels, 2] += 3.0
    st = class_statistics(h, labels)
    assert st.rank == 4 and st.basis.shape == (5, 4)
    rule = robust_linear_rule(st, 0.0)
    acc, bnd = accuracy_and_bound(rule, h, labels)
    assert acc > 0.9 and bnd > 0
    with pytest.raises(ValueError, match=r"need at least d \+ 2 = 12 samples"):
        class_statistics(h[:10].repeat(2, axis=1)[:, :10], labels[:10])
    ok = class_statistics(rng.normal(size=(6, 10)), labels[:6], allow_rank_deficient=True)
    assert ok.rank <= 4
    with pytest.raises(ValueError, match="at least 2 samples"):
        class_statistics(h, np.arange(200) == 0)
    with pytest.raises(ValueError, match="NaN"):
        class_statistics(np.where(h > 2, np.nan, h), labels)
    with pytest.raises(ValueError, match="zero variance"):
        class_statistics(np.ones((20, 3)), labels[:20])


def test_curve_and_score_by_hand():
    grid = np.array([0.6, 0.7, 0.8, 0.9])
    curve = expected_bound_curve([0.65, 0.85, 0.95], [3.0, 2.0, 1.0], grid)
    np.testing.assert_allclose(curve, [6 / 3, 3 / 3, 3 / 3, 1 / 3])
    half = synbench_scores(curve / 2, curve, grid, [0.6, 0.85])
    np.testing.assert_allclose(half, [0.5, 0.5])
    # a representation that is good only at low accuracy loses area at high thresholds
    rep = expected_bound_curve([0.65, 0.85, 0.5], [3.0, 2.0, 1.0], grid)
    np.testing.assert_allclose(synbench_scores(rep, curve, grid, [0.85]), [0.0])
    np.testing.assert_allclose(accuracy_grid(DEFAULT_THRESHOLDS), ACCURACY_GRID)
    low = accuracy_grid([0.55, 0.7])
    assert low[0] <= 0.55 and np.allclose(low[-100:], ACCURACY_GRID)
    with pytest.raises(ValueError, match="no raw-data area"):
        synbench_scores(curve, curve, grid, [0.95])


# ---------------------------------------------------------- end to end scores
def test_invertible_linear_map_scores_like_raw_data():
    identity = evaluate_synbench(nn.Flatten(), SHAPE, n_bootstrap=50, seed=2, progress=False)
    mapped = evaluate_synbench(invertible_linear(), SHAPE, n_bootstrap=50, seed=2, progress=False)
    wrapped = evaluate_synbench(Encoder(invertible_linear(), mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4)),
                                SHAPE, n_bootstrap=0, seed=2, progress=False)
    # LDA is affine invariant: the same samples give the same margins through any invertible map
    np.testing.assert_allclose(mapped.scores["score"], identity.scores["score"], atol=2e-3)
    np.testing.assert_allclose(wrapped.scores["score"], identity.scores["score"], atol=2e-3)
    # and the identity keeps the raw trade-off (finite-sample LDA in d = 48 costs ~2%)
    s = mapped.scores.set_index("threshold")["score"]
    assert (abs(s.loc[0.6:0.95] - 1) < 0.05).all(), s
    assert mapped.feature_dim == DIM and len(mapped.table) == len(DEFAULT_S_VALUES)
    raw_gap = mapped.table["accuracy"].to_numpy() - raw_accuracy(mapped.table["s"].to_numpy())
    assert np.abs(raw_gap).max() < 0.05


def test_encoder_that_discards_the_mean_direction_scores_zero():
    result = evaluate_synbench(DropDirection(mixture_direction(SHAPE)), SHAPE, **FAST)
    assert (result.scores["score"] < 0.05).all()
    assert (abs(result.table["accuracy"] - 0.5) < 0.12).all()


def test_scores_are_invariant_to_feature_scale_and_reproducible():
    run = dict(FAST, epsilons=(0.0, 0.3))
    base = evaluate_synbench(small_mlp(), SHAPE, **run)
    again = evaluate_synbench(small_mlp(), SHAPE, **run)
    pd.testing.assert_frame_equal(base.scores, again.scores)
    pd.testing.assert_frame_equal(base.table, again.table)
    for factor in (2.0**-12, 2.0**9):
        scaled = evaluate_synbench(Scaled(small_mlp(), factor), SHAPE, **run)
        np.testing.assert_allclose(scaled.table[["accuracy", "bound"]], base.table[["accuracy", "bound"]], rtol=1e-8)
        np.testing.assert_allclose(scaled.scores[["score", "ci_low", "ci_high"]],
                                   base.scores[["score", "ci_low", "ci_high"]], rtol=1e-8)
    other = evaluate_synbench(small_mlp(), SHAPE, **dict(run, seed=1))
    assert not np.allclose(other.table["bound"], base.table["bound"])


def test_result_tables_interval_and_figure():
    result = evaluate_synbench(small_mlp(), SHAPE, **dict(FAST, epsilons=(0.0, 0.2), thresholds=(0.55, 0.7),
                                                          n_bootstrap=100))
    assert isinstance(result, SynBenchResult)
    assert list(result.table.columns) == ["s", "epsilon", "accuracy", "bound", "effective_scale"]
    assert len(result.table) == 10
    assert list(result.scores.columns) == ["threshold", "epsilon", "score", "ci_low", "ci_high", "corrected"]
    assert len(result.scores) == 4
    sc = result.scores
    assert ((sc.ci_low <= sc.score + 1e-12) & (sc.score <= sc.ci_high + 1e-12)).all()
    assert result.score_at(0.7, 0.2) == sc.query("threshold == 0.7 and epsilon == 0.2").score.item()
    # the headline score, a property like RMQMResult.score: first threshold, first epsilon
    assert result.score == sc.query("threshold == 0.55 and epsilon == 0.0").score.item() != result.score_at(0.7, 0.2)
    with pytest.raises(ValueError, match="no score at threshold=0.8"):
        result.score_at(0.8)
    assert set(result.curves["source"]) == {"raw", "epsilon=0", "epsilon=0.2"}
    assert result.curves["accuracy_threshold"].min() <= 0.55
    ax = plot_synbench(result)
    assert len(ax.get_lines()) >= 3 and ax.get_xlabel().startswith("threshold accuracy")
    none = evaluate_synbench(small_mlp(), SHAPE, **dict(FAST, n_bootstrap=0))
    assert none.scores[["ci_low", "ci_high"]].isna().all().all()


class _Returns(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(epsilons=(0.0, -0.1)), ValueError, "epsilon must be >= 0"),
        (dict(epsilons=(1.0,)), ValueError, "epsilon must be < 1"),
        (dict(thresholds=(0.6, 1.0)), ValueError, r"thresholds must lie in \(0.5, 1\)"),
        (dict(thresholds=(0.5,)), ValueError, r"thresholds must lie in \(0.5, 1\)"),
        (dict(thresholds=(0.999,)), ValueError, "no raw-data area"),
        (dict(s_values=[0.0, 1.0]), ValueError, "s_values must be finite and > 0"),
        (dict(n_train=20), ValueError, r"need at least d \+ 2 = 50 samples"),
        (dict(n_bootstrap=-1), ValueError, "n_bootstrap must be an integer >= 0"),
        (dict(direction=np.zeros(DIM)), ValueError, "zero vector"),
        (dict(direction=np.ones(5)), ValueError, "direction must have prod"),
    ],
)
def test_bad_parameters_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        evaluate_synbench(nn.Flatten(), SHAPE, **dict(FAST, **kwargs))


def test_bad_encoders_raise_clear_errors():
    with pytest.raises(ValueError, match=r"shape \(batch, dim\)"):
        evaluate_synbench(nn.Identity(), SHAPE, **FAST)
    with pytest.raises(ValueError, match="NaN or inf"):
        evaluate_synbench(_Returns(lambda x: x.flatten(1).log()), SHAPE, **FAST)
    with pytest.raises(ValueError, match="zero variance"):
        evaluate_synbench(_Returns(lambda x: torch.ones(x.shape[0], 4)), SHAPE, **FAST)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        evaluate_synbench(lambda x: x, SHAPE, **FAST)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        evaluate_synbench(nn.Flatten(), (4, 4), **FAST)


def test_rank_deficient_run_relies_on_the_eigenvalue_cut():
    result = evaluate_synbench(nn.Flatten(), SHAPE, **dict(FAST, n_train=32), allow_rank_deficient=True)
    assert np.isfinite(result.scores["score"]).all()


def test_encoder_mode_is_restored():
    encoder = small_mlp().train()
    evaluate_synbench(encoder, SHAPE, **dict(FAST, n_bootstrap=0))
    assert encoder.training


def test_cli_prints_the_score_table(tmp_path, capsys):
    from rmqm.cli.main import main

    out, figure = tmp_path / "scores.csv", tmp_path / "synbench.png"
    common = ["synbench", "--data", "digits", "--method", "random-init", "--zoo-dir", str(tmp_path / "zoo"),
              "--device", "cpu", "--no-progress", "--s-values", "0.5", "1", "2", "3", "--n-train", "64"]
    torch.set_num_threads(2)  # the run uses --threads 1 (default) and must restore this
    scores = main(common + ["--n-test", "64", "--n-bootstrap", "10", "--thresholds", "0.6", "0.8",
                            "--out", str(out), "--figure", str(figure)])
    printed = capsys.readouterr().out
    assert "SynBench of" in printed and "d=32" in printed and "ci_high" in printed
    assert list(scores["epsilon"]) == [0.0, 0.0, 0.2, 0.2] and np.isfinite(scores["score"]).all()
    assert pd.read_csv(out)["score"].tolist() == pytest.approx(scores["score"].tolist())
    assert figure.stat().st_size > 0
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
    for bad, message in ((["--epsilons", "-0.2"], "--epsilons"), (["--threads", "-1"], "--threads")):
        with pytest.raises(SystemExit) as exc:
            main(common + bad)
        assert exc.value.code == 2 and message in capsys.readouterr().err
