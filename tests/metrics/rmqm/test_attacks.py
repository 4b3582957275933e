"""The three PGD modes: the reference's attack (separate attacks per level, its augmentations),
the own-loss trajectory, and how measure_rmqm runs them."""

import dataclasses

import pytest
import torch
from torch import nn

from rmqm.data.transforms import batch_random_rotation, random_rotation
from rmqm.losses.metric_learning import triplet_margin_loss
from rmqm.metrics.rmqm.alterations import PGD
from rmqm.metrics.rmqm.attacks import (
    LABEL_LOSSES,
    VIEW_LOSSES,
    AttackSpec,
    attack_levels,
    own_batch_loss,
    reference_pgd_levels,
    reference_semantics,
    resolve_attack,
)
from rmqm.metrics.rmqm.measure import measure_rmqm, per_class_summary
from rmqm.metrics.rmqm.perturbations import pgd_attack, pgd_trajectory

ALPHA, EPS = 2 / 255, 0.3


def no_rotation(images, generator):
    return random_rotation(images, generator, max_degrees=0.0)


@pytest.fixture
def batch(digits_small):
    return digits_small.images[:10], digits_small.labels[:10]


@pytest.fixture
def head():
    torch.manual_seed(1)
    return nn.Linear(16, 10)


def _levels(encoder, x, loss, n, seed, **kw):
    return list(reference_pgd_levels(encoder, x, loss, n, torch.Generator().manual_seed(seed), step_size=ALPHA,
                                     epsilon=EPS, **kw))


def test_reference_semantics_follow_the_reference_code():
    assert reference_semantics("cross-entropy") == {"augment_output": True, "augment_gradient": True}
    assert reference_semantics("triplet-entropy") == {"augment_output": True, "augment_gradient": True}
    assert reference_semantics("supervised-triplet") == {"augment_output": True, "augment_gradient": False}
    for loss in VIEW_LOSSES:  # their randomness in the gradient path: the clean view redrawn every step
        assert reference_semantics(loss) == {"augment_output": False, "augment_gradient": True}
    with pytest.raises(ValueError, match="own attack loss"):
        reference_semantics("displacement")


def test_resolve_attack_is_the_reference_and_its_factor_switches():
    ref = resolve_attack("supervised-triplet", "reference")
    assert (ref.restarts, ref.rotation, ref.raw_gradient, ref.augment_output, ref.augment_gradient) == (
        True, "batch", True, True, False)
    assert resolve_attack("random-init", "reference").loss == "nt-xent"
    assert resolve_attack("cross-entropy", "reference").needs_head
    assert not resolve_attack("supervised-triplet", "reference").needs_head
    assert resolve_attack("cross-entropy").mode == "own-loss" and resolve_attack("displacement").mode == "displacement"
    off = resolve_attack("cross-entropy", "reference", augment_output=False, augment_gradient=False, restarts=False,
                         rotation="image")
    assert (off.augment_output, off.augment_gradient, off.restarts, off.rotation) == (False, False, False, "image")
    # a factor that does not apply to the loss stays off when switched on
    assert not resolve_attack("nt-xent", "reference", augment_output=True).augment_output
    assert resolve_attack("cross-entropy", "reference").keywords()["pgd_mode"] == "reference"
    with pytest.raises(ValueError, match="belong to pgd mode 'reference'"):
        resolve_attack("cross-entropy", "own-loss", restarts=True)
    with pytest.raises(ValueError, match="does not fit"):
        resolve_attack("displacement", "reference")
    with pytest.raises(ValueError, match="rotation draw"):
        resolve_attack("cross-entropy", "reference", rotation="diagonal")
    with pytest.raises(ValueError, match="pretraining method or attack loss"):
        resolve_attack("simclr")
    with pytest.raises(TypeError, match="bool"):
        AttackSpec("reference", "cross-entropy", restarts="yes")
    with pytest.raises(ValueError, match="belong to pgd mode 'reference'"):
        AttackSpec("own-loss", "cross-entropy", augment_output=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.restarts = False  # type: ignore[misc]


@pytest.mark.parametrize("loss", ["cross-entropy", "supervised-triplet", "nt-xent"])
def test_one_trajectory_without_randomness_equals_separate_attacks(tiny_encoder, batch, head, loss):
    # with no random draw inside the gradient path the loss is deterministic, so restarting each
    # level from the clean image gives the trajectory's prefixes
    x, y = batch
    levels = {}
    for restarts in (True, False):
        spec = resolve_attack(loss, "reference", augment_output=False, augment_gradient=False, restarts=restarts)
        levels[restarts] = list(attack_levels(tiny_encoder, x, spec, 5, torch.Generator().manual_seed(0),
                                              labels=y, head=head))
    for a, b in zip(levels[True], levels[False], strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_supervised_triplet_gradient_is_taken_on_raw_pixels(tiny_encoder, batch):
    # the reference's model(adv): the backbone on [0, 1] pixels, not the normalised input
    x, y = batch
    spec = resolve_attack("supervised-triplet", "reference", augment_output=False)
    got = list(attack_levels(tiny_encoder, x, spec, 3, torch.Generator().manual_seed(0), labels=y))[1]
    raw = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(triplet_margin_loss(tiny_encoder.backbone(raw), y, 0.5), raw)
    assert torch.allclose(got, (x + ALPHA * g.sign()).clamp(0, 1), atol=1e-6)


@pytest.mark.parametrize("loss", ["cross-entropy", "triplet-entropy", "supervised-triplet", "nt-xent",
                                  "instance-triplet"])
def test_reference_level_k_is_a_k_step_own_loss_attack_without_rotation(tiny_encoder, batch, head, loss):
    x, y = batch
    n = 5
    # Cross-entropy and triplet-entropy take the gradient through the augmentation: the 0-degree
    # rotation's grid_sample is the identity only up to rounding, which leaks ~1e-9 gradients into
    # pixels whose gradient is exactly 0 without it, and sign() makes those whole steps; so they are
    # checked with the exact identity, the others with the 0-degree rotation.
    augment = (lambda images, generator: images) if reference_semantics(loss)["augment_gradient"] else no_rotation
    ref = _levels(tiny_encoder, x, loss, n, 0, labels=y, head=head, augment=augment)
    with torch.no_grad():
        z_view = tiny_encoder(augment(x, torch.Generator().manual_seed(0)))

    def loss_fn(z):
        return own_batch_loss(loss, z, labels=y, head=head, z_view=z_view)

    # the supervised triplet's gradient is on raw pixels (the reference's model(adv)): the backbone
    grad_model = tiny_encoder.backbone if loss == "supervised-triplet" else tiny_encoder
    traj = list(pgd_trajectory(grad_model, x, loss_fn, n, ALPHA, EPS))
    for k in range(n):
        # a 0-degree rotation resamples each pixel at its own centre: the same image up to rounding
        assert torch.allclose(ref[k], traj[k][0], atol=1e-5), f"level {k}"
    assert float((ref[-1] - x).abs().max()) > 0  # the attack moved


@pytest.mark.parametrize("loss", LABEL_LOSSES)
def test_supervised_levels_are_returned_rotated_from_level_zero(tiny_encoder, batch, head, loss):
    x, y = batch
    levels = _levels(tiny_encoder, x, loss, 3, 3, labels=y, head=head)  # seed 3: an angle of -14.9 degrees
    # level 0: no step, so the one random draw is the output rotation, one angle for the batch
    assert torch.equal(levels[0], batch_random_rotation(x, torch.Generator().manual_seed(3), 15.0))
    assert float((levels[0] - x).abs().max()) > 0.1  # a rotation, not the identity


@pytest.mark.parametrize("loss", VIEW_LOSSES)
def test_contrastive_levels_are_returned_without_augmentation(tiny_encoder, batch, loss):
    x, _ = batch
    levels = _levels(tiny_encoder, x, loss, 4, 7)
    assert torch.equal(levels[0], x)
    for k, x_k in enumerate(levels):
        assert float((x_k - x).abs().max()) <= k * ALPHA + 1e-6
        assert float(x_k.min()) >= 0.0 and float(x_k.max()) <= 1.0


@pytest.mark.parametrize("loss", ["cross-entropy", "supervised-triplet", "nt-xent"])
def test_reference_attack_is_seeded(tiny_encoder, batch, head, loss):
    x, y = batch
    run = lambda seed: torch.stack(_levels(tiny_encoder, x, loss, 3, seed, labels=y, head=head))
    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_reference_attack_respects_the_linf_ball_and_pixel_range(tiny_encoder, batch, head):
    x, y = batch
    eps = 2.5 / 255
    levels = list(reference_pgd_levels(tiny_encoder, x, "cross-entropy", 6, torch.Generator().manual_seed(0),
                                       step_size=ALPHA, epsilon=eps, labels=y, head=head, augment_output=False))
    for k, x_k in enumerate(levels):
        assert float((x_k - x).abs().max()) <= min(k * ALPHA, eps) + 1e-6
        assert float(x_k.min()) >= 0.0 and float(x_k.max()) <= 1.0
    assert float((levels[-1] - x).abs().max()) == pytest.approx(eps, abs=1e-6)


def test_linear_encoder_moves_along_the_known_gradient_sign(flatten_encoder):
    # two classes, logits = W x: d CE / dx = p_1 (w_1 - w_0) for label 0, so one ascent step moves
    # x by alpha * sign(w_1 - w_0) (mid-grey pixels: no clamp)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(2, 9, generator=g)
    head = nn.Linear(9, 2, bias=False)
    head.weight.data = w
    x = torch.full((1, 1, 3, 3), 0.5)
    identity = lambda images, generator: images
    levels = list(reference_pgd_levels(flatten_encoder, x, "cross-entropy", 2, g, step_size=ALPHA, epsilon=EPS,
                                       labels=torch.tensor([0]), head=head, augment=identity))
    expected = x + ALPHA * torch.sign(w[1] - w[0]).view(1, 1, 3, 3)
    assert torch.allclose(levels[1], expected, atol=1e-7)


def test_own_loss_levels_are_prefixes_of_one_trajectory(tiny_encoder, batch, head):
    x, y = batch
    make = lambda: (lambda z: own_batch_loss("triplet-entropy", z, labels=y, head=head))
    traj = list(pgd_trajectory(tiny_encoder, x, make(), 6, ALPHA, EPS))
    for k, (x_k, _) in enumerate(traj):
        assert torch.allclose(x_k, pgd_attack(tiny_encoder, x, make(), k, ALPHA, EPS), atol=1e-6), f"level {k}"


def test_own_batch_loss_names_what_is_missing(batch):
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="head"):
        own_batch_loss("cross-entropy", z, labels=torch.arange(4))
    with pytest.raises(ValueError, match="labels"):
        own_batch_loss("supervised-triplet", z)
    with pytest.raises(ValueError, match="z_view"):
        own_batch_loss("instance-triplet", z)
    assert float(own_batch_loss("vicreg", z[:1], z_view=z[:1])) == 0.0


def test_measure_rmqm_runs_the_three_modes(tiny_encoder, digits_small, head):
    data = digits_small.subset(torch.arange(24))
    kw = dict(batch_size=12, seed=0, progress=False)
    pgd = PGD(n_levels=3, step_size=ALPHA)
    ref = measure_rmqm(tiny_encoder, data, PGD.for_method("cross-entropy", "reference", n_levels=3, step_size=ALPHA),
                       head=head, **kw)
    own = measure_rmqm(tiny_encoder, data, pgd.with_attack(resolve_attack("cross-entropy", "own-loss")), head=head,
                       **kw)
    disp = measure_rmqm(tiny_encoder, data, pgd, **kw)
    assert (ref.config["pgd_mode"], own.config["pgd_mode"], disp.config["pgd_mode"]) == (
        "reference", "own-loss", "displacement")
    assert ref.config["augment_output"] is True and own.config["augment_output"] is False
    assert ref.config["restarts"] is True and own.config["restarts"] is False and ref.config["rotation"] == "batch"
    # the reference's level 0 is a rotated image: the first step is not from the clean embedding
    assert ref.distances()[0][:, 0].mean() != own.distances()[0][:, 0].mean()
    again = measure_rmqm(tiny_encoder, data, pgd.with_attack(resolve_attack("cross-entropy", "reference")),
                         head=head, **kw)
    assert again.summary.equals(ref.summary)
    per_class = per_class_summary(ref)
    assert sorted(per_class["label"]) == sorted(set(data.labels.tolist()))
    with pytest.raises(ValueError, match="no per-class rows"):
        per_class_summary(measure_rmqm(tiny_encoder, digits_small.images[:8], pgd, **kw))
