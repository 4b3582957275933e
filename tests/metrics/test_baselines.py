"""RankMe and alpha-ReQ on spectra known in closed form."""

import numpy as np
import pytest
import torch

from rmqm.metrics.baselines import alpha_req, eigenspectrum, label_free_scores, rankme


def test_rankme_of_isotropic_gaussian_is_close_to_d():
    z = np.random.default_rng(0).standard_normal((4000, 32))
    assert rankme(z) == pytest.approx(32, rel=0.02)


@pytest.mark.parametrize("r", [1, 3, 8])
def test_rankme_of_rank_r_matrix_is_close_to_r(r):
    rng = np.random.default_rng(r)
    basis, _ = np.linalg.qr(rng.standard_normal((24, r)))
    z = rng.standard_normal((3000, r)) @ basis.T  # rank r, near-equal singular values
    assert rankme(z) == pytest.approx(r, rel=0.03)
    assert rankme(z) <= r + 1e-3


def test_rankme_of_equal_singular_values_is_exact_and_scale_free():
    z = np.zeros((10, 6))
    z[np.arange(4), np.arange(4)] = 1.0  # singular values 1, 1, 1, 1, 0, 0
    assert rankme(z, eps=0) == pytest.approx(4.0, abs=1e-9)
    assert rankme(7 * z, eps=0) == pytest.approx(4.0, abs=1e-9)
    assert rankme(torch.from_numpy(z)) == pytest.approx(rankme(z))


def test_eigenspectrum_matches_the_covariance():
    z = np.random.default_rng(1).standard_normal((50, 5))
    np.testing.assert_allclose(eigenspectrum(z), np.sort(np.linalg.eigvalsh(np.cov(z.T)))[::-1], rtol=1e-10)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alpha_req_recovers_an_exact_planted_power_law(alpha):
    d, n = 20, 200
    lam = np.arange(1, d + 1, dtype=float) ** -alpha
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.standard_normal((n, d)))
    u -= u.mean(axis=0)  # centred columns ...
    u, _ = np.linalg.qr(u)  # ... that stay orthonormal (span is orthogonal to the ones vector)
    v, _ = np.linalg.qr(rng.standard_normal((d, d)))
    z = u * np.sqrt(lam * (n - 1)) @ v.T  # covariance eigenvalues exactly lam
    np.testing.assert_allclose(eigenspectrum(z), lam, rtol=1e-8)
    assert alpha_req(z) == pytest.approx(alpha, abs=1e-8)


def test_alpha_req_recovers_a_sampled_power_law():
    lam = np.arange(1, 33, dtype=float) ** -1.5
    z = np.random.default_rng(2).standard_normal((20000, 32)) * np.sqrt(lam)
    assert alpha_req(z) == pytest.approx(1.5, abs=0.05)
    assert alpha_req(z, fit_range=(1, 9)) == pytest.approx(1.5, abs=0.05)


def test_label_free_scores_and_bad_input():
    scores = label_free_scores(torch.randn(100, 8, generator=torch.Generator().manual_seed(0)))
    assert set(scores) == {"rankme", "alpha_req"} and 1 <= scores["rankme"] <= 8
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        rankme(np.ones(5))
    with pytest.raises(ValueError, match="NaN or inf"):
        rankme(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="all zero"):
        rankme(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="at least 2 non-zero eigenvalues"):
        alpha_req(np.outer(np.arange(10.0), np.ones(3)))  # rank one
    with pytest.raises(ValueError, match="fit_range"):
        alpha_req(np.random.default_rng(0).standard_normal((20, 4)), fit_range=(3, 2))
