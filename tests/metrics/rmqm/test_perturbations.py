"""Noise and PGD schedules: analytic cases, the one-trajectory scheme, projections, errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rmqm.metrics.rmqm.perturbations import (
    check_images,
    make_attack_loss,
    noise_levels,
    pgd_attack,
    pgd_trajectory,
    white_noise_levels,
)


def test_noise_levels_are_a_linspace_from_zero():
    s = noise_levels(1.0, 5)
    assert s.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_nested_noise_reuses_one_draw_and_fresh_noise_does_not():
    x = torch.full((2, 1, 4, 4), 0.5)
    sig = noise_levels(1.0, 4)
    nested = list(white_noise_levels(x, sig, torch.Generator().manual_seed(0), nested=True, clip=False))
    d1, d3 = nested[1] - x, nested[3] - x
    assert torch.allclose(d3, 3 * d1, atol=1e-6)
    fresh = list(white_noise_levels(x, sig, torch.Generator().manual_seed(0), nested=False, clip=False))
    assert not torch.allclose(fresh[3] - x, 3 * (fresh[1] - x), atol=1e-3)
    assert torch.equal(fresh[0], x) and torch.equal(nested[0], x)


def test_noise_is_clipped_to_the_unit_interval():
    x = torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    for x_k in white_noise_levels(x, noise_levels(5.0, 3), torch.Generator().manual_seed(0)):
        assert float(x_k.min()) >= 0.0 and float(x_k.max()) <= 1.0


def test_noise_is_seeded():
    x = torch.rand(3, 1, 5, 5, generator=torch.Generator().manual_seed(1))
    run = lambda seed: torch.stack(list(white_noise_levels(x, noise_levels(1.0, 4), torch.Generator().manual_seed(seed))))
    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))


@pytest.mark.parametrize("loss_name", ["displacement", "cross-entropy", "nt-xent"])
def test_one_trajectory_equals_independent_attacks(tiny_encoder, digits_small, loss_name):
    x, y = digits_small.images[:12], digits_small.labels[:12]
    torch.manual_seed(3)
    head = nn.Linear(16, 10)
    with torch.no_grad():
        z_clean = tiny_encoder(x)
        view = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4))).clamp(0, 1)
        z_view = tiny_encoder(view)
    make = lambda: make_attack_loss(
        loss_name, z_clean, labels=y, head=head, z_view=z_view, generator=torch.Generator().manual_seed(5)
    )
    n_levels, alpha = 8, 2 / 255
    traj = list(pgd_trajectory(tiny_encoder, x, make(), n_levels, alpha, 0.3))
    assert len(traj) == n_levels
    for k, (x_k, z_k) in enumerate(traj):
        x_ref = pgd_attack(tiny_encoder, x, make(), k, alpha, 0.3)
        assert torch.allclose(x_k, x_ref, atol=1e-6), f"level {k}"
        with torch.no_grad():
            assert torch.allclose(z_k, tiny_encoder(x_ref), atol=1e-6), f"level {k}"
    # the attack moved the images, and increased its loss
    assert float((traj[-1][0] - x).abs().max()) > 0
    loss = make()
    assert loss(traj[-1][1]).mean() > loss(traj[0][1]).mean()


def test_pgd_respects_the_linf_ball_and_pixel_range(tiny_encoder, digits_small):
    x = digits_small.images[:10]
    eps, alpha = 3 / 255, 1 / 255
    loss = make_attack_loss("displacement", tiny_encoder(x).detach(), generator=torch.Generator().manual_seed(0))
    for k, (x_k, _) in enumerate(pgd_trajectory(tiny_encoder, x, loss, 10, alpha, eps)):
        dist = float((x_k - x).abs().max())
        assert dist <= min(k * alpha, eps) + 1e-6
        assert float(x_k.min()) >= 0.0 and float(x_k.max()) <= 1.0


def test_displacement_loss_moves_a_linear_encoder_at_the_first_step():
    # a plain ||f(x') - f(x)||^2 has zero gradient at x' = x; the anchor shift breaks the tie
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    x = torch.full((3, 1, 4, 4), 0.5)
    loss = make_attack_loss("displacement", enc(x).detach(), generator=torch.Generator().manual_seed(0))
    x1, _ = list(pgd_trajectory(enc, x, loss, 3, 1 / 255, 0.3))[1]
    assert torch.allclose((x1 - x).abs(), torch.full_like(x, 1 / 255), atol=1e-7)


def test_nt_xent_attack_loss_matches_the_textbook_formula():
    torch.manual_seed(0)
    z, v = torch.randn(4, 3), torch.randn(4, 3)
    tau = 0.5
    loss = make_attack_loss("nt-xent", z, z_view=v, temperature=tau)(z)
    u = F.normalize(torch.cat([z, v]), dim=1)
    sim = torch.exp(u @ u.T / tau)
    expected = []
    for i in range(4):
        l_i = -torch.log(sim[i, i + 4] / (sim[i].sum() - sim[i, i]))
        l_j = -torch.log(sim[i + 4, i] / (sim[i + 4].sum() - sim[i + 4, i + 4]))
        expected.append(0.5 * (l_i + l_j))
    assert torch.allclose(loss, torch.stack(expected), atol=1e-5)


def _previous_nt_xent_attack(z_view, temperature):
    """The attack loss as it was written before it called ``pretrain.nt_xent_loss`` (bit for bit)."""
    view = F.normalize(z_view.detach(), dim=1)

    def nt_xent(z):
        both = torch.cat([F.normalize(z, dim=1), view])
        sim = both @ both.T / temperature
        sim.fill_diagonal_(float("-inf"))
        n = z.shape[0]
        per_anchor = F.cross_entropy(sim, torch.cat([torch.arange(n, 2 * n), torch.arange(n)]), reduction="none")
        return 0.5 * (per_anchor[:n] + per_anchor[n:])

    return nt_xent


@pytest.mark.parametrize("b, d, tau, dtype", [(1, 3, 0.07, torch.float32), (2, 1, 0.5, torch.float64),
                                              (7, 5, 0.07, torch.float32), (33, 16, 1.0, torch.float64)])
def test_nt_xent_attack_loss_and_gradient_are_unchanged(b, d, tau, dtype):
    g = torch.Generator().manual_seed(b)
    z, v = torch.randn(b, d, generator=g, dtype=dtype) * 3, torch.randn(b, d, generator=g, dtype=dtype)
    z_old, z_new = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    old = _previous_nt_xent_attack(v, tau)(z_old)
    new = make_attack_loss("nt-xent", z, z_view=v, temperature=tau)(z_new)
    assert new.shape == (b,) and torch.equal(new, old)
    assert torch.equal(torch.autograd.grad(new.sum(), z_new)[0], torch.autograd.grad(old.sum(), z_old)[0])


def test_nt_xent_attack_on_a_single_point_is_zero_and_does_not_move():
    enc = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z, v = enc(x), enc(x.flip(-1))
    loss = make_attack_loss("nt-xent", z, z_view=v)
    assert loss(z).tolist() == [0.0]  # no negatives: nothing to contrast
    for x_k, _ in pgd_trajectory(enc, x, loss, 3, 1 / 255, 0.3):
        assert torch.equal(x_k, x)  # zero gradient, sign(0) = 0


@pytest.mark.parametrize(
    "x, error, match",
    [
        (torch.rand(2, 1, 4, 4) + 1.0, ValueError, r"\[0, 1\]"),
        (torch.rand(2, 16), ValueError, "rank 4"),
        (torch.full((2, 1, 4, 4), float("nan")), ValueError, "NaN"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), TypeError, "floating-point"),
        (torch.zeros(0, 1, 4, 4), ValueError, "empty"),
        ([[0.5]], TypeError, "torch.Tensor"),
    ],
)
def test_check_images_names_the_problem(x, error, match):
    with pytest.raises(error, match=match):
        check_images(x)


def test_bad_schedule_parameters_raise():
    with pytest.raises(ValueError, match="n_levels"):
        noise_levels(1.0, 2)
    with pytest.raises(ValueError, match="sigma_max"):
        noise_levels(-0.1, 10)
    with pytest.raises(ValueError, match="sigma_max"):
        noise_levels(math.nan, 10)
    enc = nn.Flatten()
    x = torch.rand(2, 1, 2, 2)
    loss = lambda z: z.sum(dim=1)
    with pytest.raises(ValueError, match="step_size"):
        pgd_attack(enc, x, loss, 3, step_size=-1.0)
    with pytest.raises(ValueError, match="epsilon"):
        list(pgd_trajectory(enc, x, loss, 4, epsilon=-0.1))
    with pytest.raises(ValueError, match="unknown attack loss"):
        make_attack_loss("hinge", torch.zeros(2, 3))
    with pytest.raises(ValueError, match="head"):
        make_attack_loss("cross-entropy", torch.zeros(2, 3))
    with pytest.raises(ValueError, match="z_view"):
        make_attack_loss("nt-xent", torch.zeros(2, 3))
    with pytest.raises(ValueError, match="temperature must be positive"):
        make_attack_loss("nt-xent", torch.zeros(2, 3), z_view=torch.ones(2, 3), temperature=0.0)
    with pytest.raises(ValueError, match="temperature must be a finite number"):
        make_attack_loss("nt-xent", torch.zeros(2, 3), z_view=torch.ones(2, 3), temperature=math.nan)
