"""measure_rmqm end to end: analytic noise cases, determinism, tables, errors."""

import math

import numpy as np
import pytest
import torch
from scipy.special import gammaln
from torch import nn

from rmqm.metrics.rmqm.alterations import PGD, WhiteNoise, alteration_from_keywords
from rmqm.metrics.rmqm.manifold import rmqm_score
from rmqm.metrics.rmqm.measure import measure_rmqm, summary_table


def _chi_mean(d: int) -> float:
    """E||eps|| for eps ~ N(0, I_d)."""
    return math.sqrt(2) * math.exp(gammaln((d + 1) / 2) - gammaln(d / 2))


def test_identity_encoder_nested_noise_moves_exactly_sigma_times_norm(flatten_encoder):
    x = torch.full((5, 1, 6, 6), 0.5)
    res = measure_rmqm(
        flatten_encoder, x, WhiteNoise(n_levels=11, sigma_max=2.0, schedule="nested", clip=False),
        normalize=False, seed=3, progress=False,
    )
    a, b = res.distances()
    sigmas = res.strengths[1:]
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(3)).flatten(1).norm(dim=1).double()
    np.testing.assert_allclose(a, np.outer(eps.numpy(), sigmas), rtol=1e-5)
    # constant steps of sigma_max / (L - 1) * ||eps||: no relative change at all
    np.testing.assert_allclose(b, np.outer(eps.numpy(), np.full(10, 0.2)), rtol=1e-4)
    assert res.points["S_b"].abs().max() < 1e-4


def test_identity_encoder_fresh_noise_mean_distance_is_sigma_sqrt_d(flatten_encoder):
    n, d = 400, 64
    x = torch.full((n, 1, 8, 8), 0.5)
    res = measure_rmqm(
        flatten_encoder, x, WhiteNoise(n_levels=5, sigma_max=1.0, clip=False),
        normalize=False, seed=0, progress=False, batch_size=128,
    )
    a, b = res.distances()
    sig = res.strengths
    # ||eps|| is chi-distributed with standard deviation below 1/sqrt(2): 5 standard errors
    tol = 5 * (1 / math.sqrt(2)) / math.sqrt(n)
    for k in range(1, 5):
        assert a[:, k - 1].mean() / sig[k] == pytest.approx(_chi_mean(d), abs=tol)
        # fresh draws: x_k - x_{k-1} ~ N(0, (s_k^2 + s_{k-1}^2) I)
        assert b[:, k - 1].mean() / math.hypot(sig[k], sig[k - 1]) == pytest.approx(_chi_mean(d), abs=tol)


def test_results_are_seeded_and_tables_are_consistent(tiny_encoder, digits_small):
    kw = dict(alteration=WhiteNoise(n_levels=6), progress=False, batch_size=25)
    r1 = measure_rmqm(tiny_encoder, digits_small, seed=11, **kw)
    r2 = measure_rmqm(tiny_encoder, digits_small, seed=11, **kw)
    r3 = measure_rmqm(tiny_encoder, digits_small, seed=12, **kw)
    assert r1.summary.equals(r2.summary) and r1.levels.equals(r2.levels)
    assert not np.allclose(r1.levels["a"], r3.levels["a"])
    n = len(digits_small)
    assert len(r1.points) == n and len(r1.levels) == n * 5
    assert set(r1.levels["level"]) == set(range(1, 6))
    # the summary's over-all score is the formula applied to the per-point table
    assert r1.score == pytest.approx(rmqm_score(r1.points)["rmqm"])
    classes = sorted(set(digits_small.labels.tolist()))
    assert r1.summary["scope"].tolist() == ["all"] + [f"label={c}" for c in classes]
    assert r1.config["seed"] == 11 and r1.config["n_points"] == n


def test_pgd_levels_grow_and_batching_does_not_change_deterministic_attacks(tiny_encoder, digits_small):
    kw = dict(alteration=PGD(n_levels=6, step_size=2 / 255), progress=False, seed=0)
    small = measure_rmqm(tiny_encoder, digits_small, batch_size=60, **kw)
    a, _ = small.distances()
    assert (a[:, -1] > a[:, 0]).mean() > 0.9  # moving further away from the clean embedding
    assert small.strengths.tolist() == [0, 1, 2, 3, 4, 5]
    table = summary_table(small, measure_rmqm(tiny_encoder, digits_small, WhiteNoise(n_levels=4), progress=False))
    assert table["perturbation"].tolist() == ["pgd", "noise"]
    assert np.isfinite(table["rmqm"]).all()


def test_cross_entropy_and_nt_xent_attacks_run_through_measure(tiny_encoder, digits_small):
    head = nn.Linear(16, 10)
    ce = measure_rmqm(tiny_encoder, digits_small, PGD.for_method("cross-entropy", n_levels=4), head=head,
                      progress=False)
    aug = lambda x, g: (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    nt = measure_rmqm(tiny_encoder, digits_small, PGD.for_method("nt-xent", n_levels=4), augment=aug,
                      progress=False)
    assert ce.config["attack_loss"] == "cross-entropy" and nt.config["attack_loss"] == "nt-xent"
    assert np.isfinite(ce.levels["a"]).all() and (nt.levels["a"] > 0).any()


def test_measure_restores_the_training_mode(tiny_encoder, digits_small):
    tiny_encoder.train()
    measure_rmqm(tiny_encoder, digits_small.images[:4], WhiteNoise(n_levels=3), progress=False)
    assert tiny_encoder.training


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(tiny_encoder, digits_small):
    kw = dict(alteration=WhiteNoise(n_levels=5), progress=False, seed=0)
    cpu = measure_rmqm(tiny_encoder, digits_small, device="cpu", **kw)
    gpu = measure_rmqm(tiny_encoder, digits_small, device="cuda", **kw)
    np.testing.assert_allclose(cpu.levels["a"], gpu.levels["a"], atol=1e-4)


class _NaNEncoder(nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0], 3), float("nan"))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(perturbation="blur"), ValueError, "unknown perturbation"),
        (dict(n_levels=2), ValueError, "n_levels"),
        (dict(sigma_max=-1.0), ValueError, "sigma_max"),
        (dict(perturbation="pgd", step_size=-0.1), ValueError, "step_size"),
        (dict(perturbation="pgd", epsilon=-0.1), ValueError, "epsilon"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(perturbation="pgd", attack_loss="hinge"), ValueError, "attack loss"),
        (dict(perturbation="pgd", attack_loss="cross-entropy"), ValueError, "head"),
        (dict(perturbation="pgd", attack_loss="nt-xent", pgd_mode="displacement"), ValueError, "does not fit"),
        (dict(perturbation="pgd", pgd_mode="reference"), ValueError, "does not fit"),
        (dict(perturbation="pgd", pgd_mode="bogus", attack_loss="nt-xent"), ValueError, "pgd mode"),
        (dict(perturbation="pgd", attack_loss="supervised-triplet"), ValueError, "labels"),
        (dict(perturbation="pgd", attack_loss="nt-xent", augment_output=True), ValueError, "reference"),
        (dict(drop="rows"), ValueError, "drop rule"),
    ],
)
def test_bad_parameters_raise_clear_errors(flatten_encoder, kwargs, error, match):
    options = {k: kwargs.pop(k) for k in ("batch_size", "drop") if k in kwargs}
    with pytest.raises(error, match=match):  # the spec refuses its own values; measure_rmqm what it lacks
        measure_rmqm(flatten_encoder, torch.rand(4, 1, 3, 3), alteration_from_keywords(kwargs), progress=False,
                     **options)


def test_bad_inputs_and_encoders_raise_clear_errors(flatten_encoder):
    ok = torch.rand(4, 1, 3, 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        measure_rmqm(flatten_encoder, ok * 255, progress=False)
    with pytest.raises(ValueError, match="rank 4"):
        measure_rmqm(flatten_encoder, ok[0], progress=False)
    with pytest.raises(ValueError, match="NaN"):
        measure_rmqm(flatten_encoder, torch.full((4, 1, 3, 3), float("inf")), progress=False)
    with pytest.raises(ValueError, match="labels must have shape"):
        measure_rmqm(flatten_encoder, ok, labels=torch.zeros(3), progress=False)
    with pytest.raises(ValueError, match="NaN or inf embeddings"):
        measure_rmqm(_NaNEncoder(), ok, WhiteNoise(n_levels=3), progress=False)
    with pytest.raises(ValueError, match=r"\(batch, dim\)"):
        measure_rmqm(nn.Identity(), ok, WhiteNoise(n_levels=3), progress=False)
    with pytest.raises(TypeError, match="nn.Module"):
        measure_rmqm(lambda x: x, ok, progress=False)


def test_the_alteration_must_be_a_spec(flatten_encoder):
    with pytest.raises(TypeError, match="WhiteNoise or PGD spec"):
        measure_rmqm(flatten_encoder, torch.rand(4, 1, 3, 3), "pgd", progress=False)


def test_the_pgd_attack_needs_its_head_and_labels(flatten_encoder):
    x = torch.rand(4, 1, 3, 3)
    with pytest.raises(ValueError, match="head"):
        measure_rmqm(flatten_encoder, x, PGD.for_method("triplet-entropy"), labels=torch.zeros(4), progress=False)
    with pytest.raises(ValueError, match="labels"):
        measure_rmqm(flatten_encoder, x, PGD.for_method("supervised-triplet"), progress=False)
