"""Pretraining losses on hand-made cases, the reference's training views, and the training loop
(gradient accumulation, checkpoints along training)."""

import math

import numpy as np
import pytest
import torch

from rmqm.data.offline import load_digits
from rmqm.data.transforms import random_perspective, random_rotation
from rmqm.losses.contrastive import nt_xent_loss, semi_hard_triplet_loss, vicreg_loss
from rmqm.models.backbones import TinyCNN
from rmqm.models.encoder import Encoder
from rmqm.training.augmentation import augment, single_view, two_views
from rmqm.training.methods import HEAD_METHODS, METHODS
from rmqm.training.pretraining import make_optimizer, method_loss, pretrain


def on_circle(*degrees):
    a = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([torch.cos(a), torch.sin(a)], 1)


def chord(deg):
    """Euclidean distance between two unit vectors `deg` degrees apart."""
    return 2 * math.sin(math.radians(deg) / 2)


# ---------------------------------------------------------------- NT-Xent


@pytest.mark.parametrize("tau", [0.07, 0.5, 1.0])
def test_nt_xent_of_identical_orthogonal_views(tau):
    n = 4
    z = torch.eye(n, 6, dtype=torch.float64)  # orthonormal rows: positive similarity 1, negatives 0
    expected = math.log(1 + (2 * n - 2) * math.exp(-1 / tau))
    assert nt_xent_loss(z, z.clone(), tau).item() == pytest.approx(expected, rel=1e-5)


def test_nt_xent_prefers_matching_views_and_ignores_scale():
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(8, 5, generator=g)
    matched = nt_xent_loss(z1, z1 * 3.0)
    swapped = nt_xent_loss(z1, z1.roll(1, dims=0))
    assert matched < swapped
    torch.testing.assert_close(matched, nt_xent_loss(z1, z1))


def test_nt_xent_rejects_bad_input():
    with pytest.raises(ValueError, match="equal shape"):
        nt_xent_loss(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="at least 1 point; got 0"):
        nt_xent_loss(torch.randn(0, 3), torch.randn(0, 3))
    with pytest.raises(ValueError, match="temperature must be positive"):
        nt_xent_loss(torch.randn(4, 3), torch.randn(4, 3), temperature=0)
    with pytest.raises(ValueError, match=r"unknown reduction 'avg'.*'mean', 'none', 'sum'"):
        nt_xent_loss(torch.randn(4, 3), torch.randn(4, 3), reduction="avg")
    with pytest.raises(ValueError, match="at least 2 points; got 1"):  # VICReg's variance needs two
        vicreg_loss(torch.randn(1, 3), torch.randn(1, 3))


def _textbook_nt_xent_anchors(z1, z2, tau):
    """``l_k`` for each of the 2B anchors, written out with explicit sums (Chen et al. eq. 1)."""
    b = len(z1)
    u = torch.cat([z1, z2]) / torch.cat([z1, z2]).norm(dim=1, keepdim=True)
    e = torch.exp(u @ u.T / tau)
    return torch.stack([-torch.log(e[k, (k + b) % (2 * b)] / (e[k].sum() - e[k, k])) for k in range(2 * b)])


def _previous_nt_xent_mean(z1, z2, tau):
    """The pretraining loss as it was computed before ``reduction`` existed (kept bit for bit)."""
    b = z1.shape[0]
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T / tau).masked_fill(torch.eye(2 * b, dtype=torch.bool), float("-inf"))
    return torch.nn.functional.cross_entropy(sim, torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nt_xent_reductions_agree_with_the_textbook_and_with_each_other(dtype):
    g = torch.Generator().manual_seed(3)
    b, tau = 5, 0.3
    z1, z2 = torch.randn(b, 4, generator=g, dtype=dtype), torch.randn(b, 4, generator=g, dtype=dtype) * 2
    anchors = _textbook_nt_xent_anchors(z1, z2, tau)
    mean = nt_xent_loss(z1, z2, tau)
    per_pair = nt_xent_loss(z1, z2, tau, reduction="none")
    total = nt_xent_loss(z1, z2, tau, reduction="sum")
    assert mean.shape == () and total.shape == () and per_pair.shape == (b,)
    assert torch.equal(mean, _previous_nt_xent_mean(z1, z2, tau))  # pretraining's value is unchanged
    torch.testing.assert_close(mean, anchors.mean())
    torch.testing.assert_close(per_pair, 0.5 * (anchors[:b] + anchors[b:]))  # pair i = anchors i and B + i
    torch.testing.assert_close(per_pair.mean(), mean)
    torch.testing.assert_close(total, per_pair.sum())
    torch.testing.assert_close(total, b * mean)


def test_nt_xent_of_a_single_pair_is_zero_with_zero_gradient():
    # one pair has no negatives: each anchor's softmax runs over its positive alone
    z1 = torch.randn(1, 3, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    z2 = torch.randn(1, 3, generator=torch.Generator().manual_seed(1))
    per_pair = nt_xent_loss(z1, z2, 0.07, reduction="none")
    assert per_pair.shape == (1,) and per_pair.item() == 0.0
    for reduction in ("mean", "sum"):
        assert nt_xent_loss(z1, z2, 0.07, reduction=reduction).item() == 0.0
    (grad,) = torch.autograd.grad(per_pair.sum(), z1)
    assert torch.equal(grad, torch.zeros_like(grad))


# ---------------------------------------------------------------- semi-hard triplet


def test_triplet_semi_hard_negatives_by_hand():
    # anchors a=0deg, p=60deg (label 0); negatives n1=180deg, n2=290deg (label 1)
    z = on_circle(0, 60, 180, 290)
    labels = torch.tensor([0, 0, 1, 1])
    m = 0.5
    d_ap, d_n1n2 = chord(60), chord(110)
    per_pair = [
        max(d_ap - chord(70) + m, 0),  # a->p: semi-hard n2 (70deg from a) beats n1 (180deg)
        max(d_ap - chord(120) + m, 0),  # p->a: n1 at 120deg is the closest beyond d_ap
        max(d_n1n2 - chord(120) + m, 0),  # n1->n2: p (120deg from n1) beats a (180deg)
        max(d_n1n2 - chord(130) + m, 0),  # n2->n1: a (70deg) is too close; p (130deg) is semi-hard
    ]
    loss = semi_hard_triplet_loss(z, labels, margin=m)
    assert loss.item() == pytest.approx(sum(per_pair) / 4, abs=1e-6)


def test_triplet_falls_back_to_farthest_negative():
    # a=0deg, p=90deg, one negative n=10deg: closer than the positive for both anchors
    z = on_circle(0, 90, 10)
    labels = torch.tensor([0, 0, 1])
    expected = ((chord(90) - chord(10) + 0.5) + (chord(90) - chord(80) + 0.5)) / 2
    assert semi_hard_triplet_loss(z, labels, 0.5).item() == pytest.approx(expected, abs=1e-6)


def test_triplet_is_zero_beyond_margin_and_scale_invariant():
    z = on_circle(0, 5, 180, 185)
    labels = torch.tensor([0, 0, 1, 1])
    assert semi_hard_triplet_loss(z, labels, 0.5).item() == 0.0
    z2 = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    y2 = torch.tensor([0, 0, 1, 1, 2, 2])
    torch.testing.assert_close(semi_hard_triplet_loss(z2, y2), semi_hard_triplet_loss(5 * z2, y2))


def test_triplet_without_positives_is_zero_with_gradient():
    z = torch.randn(3, 4, requires_grad=True)
    loss = semi_hard_triplet_loss(z, torch.tensor([0, 1, 2]))
    assert loss.item() == 0.0
    loss.backward()
    assert z.grad is not None


def test_triplet_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"labels of shape \(B,\)"):
        semi_hard_triplet_loss(torch.randn(4, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="margin must be non-negative"):
        semi_hard_triplet_loss(torch.randn(4, 2), torch.tensor([0, 0, 1, 1]), margin=-1)


# ---------------------------------------------------------------- VICReg


def test_vicreg_zero_for_spread_decorrelated_identical_views():
    hadamard = torch.tensor([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], dtype=torch.float64)
    z = 2 * hadamard[:, 1:]  # zero-mean, orthogonal columns with std 2*sqrt(4/3) > 1
    assert vicreg_loss(z, z.clone()).item() == pytest.approx(0.0, abs=1e-12)


def test_vicreg_penalises_collapse():
    z = torch.ones(8, 3)
    # invariance 0, covariance 0, variance: 25 * mean(relu(1 - sqrt(0 + 1e-4))) = 25 * 0.99
    assert vicreg_loss(z, z).item() == pytest.approx(25 * 0.99, rel=1e-6)


# ---------------------------------------------------------------- augmentation


def test_augment_is_seeded_in_range_and_varies():
    x = torch.rand(4, 1, 28, 28)
    a = augment(x, torch.Generator().manual_seed(3))
    b = augment(x, torch.Generator().manual_seed(3))
    c = augment(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        augment(torch.rand(28, 28), torch.Generator())
    with pytest.raises(TypeError, match="torch.Generator"):
        augment(x, 0)


def test_augment_without_randomness_is_identity():
    x = torch.rand(2, 1, 28, 28)
    out = augment(x, torch.Generator().manual_seed(0), crop_scale=(1.0, 1.0), max_rotation_deg=0.0,
                  flip=False, jitter=0.0, noise_std=0.0)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_training_views_are_the_reference_augmentations():
    x = torch.rand(16, 1, 28, 28)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    torch.testing.assert_close(single_view(x, g()), random_perspective(x, g(), 0.5, 0.5), rtol=0, atol=0)
    gen = g()
    expected = (random_rotation(x, gen, 15.0), random_perspective(x, gen, 0.5, 0.8))
    for got, want in zip(two_views(x, g()), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    # no pixel noise: an image the perspective skipped (probability 1 - p) is returned bit for bit
    kept = (single_view(x, g()) == x).flatten(1).all(1)
    assert 0 < kept.sum() < len(x)


class Recorder(torch.nn.Module):
    """An encoder that remembers what it was fed (flatten + linear)."""

    def __init__(self, dim=4):
        super().__init__()
        self.lin = torch.nn.Linear(28 * 28, dim)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.lin(x.flatten(1))


@pytest.mark.parametrize("method", ["cross-entropy", "triplet-entropy", "supervised-triplet"])
def test_single_view_methods_train_on_a_random_perspective(method, digits):
    enc = Recorder()
    head = torch.nn.Linear(4, 10) if method in HEAD_METHODS else None
    x, y = digits.images[:16], digits.labels[:16]
    method_loss(method, enc, head, x, y, torch.Generator().manual_seed(5))
    (seen,) = enc.seen
    torch.testing.assert_close(seen, single_view(x, torch.Generator().manual_seed(5)), rtol=0, atol=0)
    assert not torch.equal(seen, x)


@pytest.mark.parametrize("method", ["nt-xent", "instance-triplet", "vicreg"])
def test_two_view_methods_train_on_a_rotation_and_a_perspective(method, digits):
    enc = Recorder()
    x, y = digits.images[:16], digits.labels[:16]
    method_loss(method, enc, None, x, y, torch.Generator().manual_seed(5))
    (seen,) = enc.seen
    v1, v2 = two_views(x, torch.Generator().manual_seed(5))
    torch.testing.assert_close(seen, torch.cat([v1, v2]), rtol=0, atol=0)


# ---------------------------------------------------------------- training


@pytest.fixture(scope="module")
def digits():
    return load_digits("train", n=64, seed=0)


def tiny_model(seed=0, dim=8, head=False):
    torch.manual_seed(seed)
    enc = Encoder(TinyCNN(1, dim, width=8), (0.2,), (0.3,))
    return enc, (torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(dim, 10)) if head else None)


SMOOTH = ("cross-entropy", "nt-xent", "vicreg")
MINED = ("triplet-entropy", "supervised-triplet", "instance-triplet")


def fixed_batch_losses(method, digits, steps, optimizer, lr):
    enc, head = tiny_model(head=method in HEAD_METHODS)
    x, y = digits.images[:32], digits.labels[:32]
    enc.train()
    params = list(enc.parameters()) + (list(head.parameters()) if head else [])
    opt = make_optimizer(params, optimizer, lr=lr)
    losses = []
    for _ in range(steps + 1):
        loss = method_loss(method, enc, head, x, y, torch.Generator().manual_seed(7))  # same views
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses


def test_method_lists_are_complete():
    assert set(SMOOTH + MINED + ("random-init",)) == set(METHODS)


@pytest.mark.parametrize("method", SMOOTH)
def test_one_step_lowers_a_smooth_loss_on_a_fixed_batch(method, digits):
    before, after = fixed_batch_losses(method, digits, 1, "sgd-nesterov", 1e-3)
    assert after < before


@pytest.mark.parametrize("method", MINED)
def test_a_few_steps_lower_a_mined_triplet_loss_on_a_fixed_batch(method, digits):
    # Semi-hard mining makes the loss discontinuous in the weights (a negative that crosses
    # D_ap joins the semi-hard set), so no single step size is guaranteed to lower it;
    # a few optimiser steps must.
    losses = fixed_batch_losses(method, digits, 10, "adam", 1e-2)
    assert losses[-1] < losses[0] - 0.01


def test_pretrain_is_seeded_and_records_history(digits):
    runs = []
    for _ in range(2):
        enc, head = tiny_model(head=True)
        res = pretrain(enc, digits, "triplet-entropy", head=head, epochs=2, batch_size=16, seed=3, progress=False)
        runs.append((enc, res))
    (enc_a, res_a), (enc_b, res_b) = runs
    assert list(res_a.history.columns) == ["step", "epoch", "loss", "elapsed_s"]
    assert len(res_a.history) == 2 * (64 // 16) and res_a.epochs_completed == 2 and not res_a.stopped_early
    np.testing.assert_array_equal(res_a.history["loss"], res_b.history["loss"])
    assert not enc_a.training
    x = digits.images[:5]
    torch.testing.assert_close(enc_a(x), enc_b(x), rtol=0, atol=0)


def test_pretrain_stops_on_time_budget(digits):
    enc, _ = tiny_model()
    res = pretrain(enc, digits, "nt-xent", epochs=50, batch_size=16, time_budget_s=1e-6, progress=False)
    assert res.stopped_early and len(res.history) == 1


def test_random_init_does_not_train(digits):
    enc, _ = tiny_model()
    before = [p.clone() for p in enc.parameters()]
    res = pretrain(enc, digits, "random-init", progress=False)
    assert res.history.empty and res.train_time_s == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, enc.parameters(), strict=True))


def test_pretrain_rejects_bad_arguments(digits):
    enc, _ = tiny_model()
    with pytest.raises(ValueError, match="unknown pretraining method 'byol2'"):
        pretrain(enc, digits, "byol2", progress=False)
    with pytest.raises(ValueError, match="needs a classifier head"):
        pretrain(enc, digits, "cross-entropy", progress=False)
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        make_optimizer(enc.parameters(), "lion")
    with pytest.raises(ValueError, match="batch_size >= 2"):
        pretrain(enc, digits, "nt-xent", batch_size=1, progress=False)


def test_own_attack_loss_is_one_rule_for_every_method():
    from rmqm.training.methods import METHODS, own_attack_loss

    # the reference attacks every model with its own training loss, the random init with NT-Xent
    rules = {m: own_attack_loss(m) for m in METHODS}
    assert rules == {**{m: m for m in METHODS if m != "random-init"}, "random-init": "nt-xent"}
    with pytest.raises(ValueError, match="unknown pretraining method 'simclr'"):
        own_attack_loss("simclr")


# ---------------------------------------------------------------- accumulation and checkpoints


def state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_accumulation_steps_and_an_epoch_ends_on_a_step(digits):
    enc, _ = tiny_model()
    # 64 images in batches of 16: 4 batches per epoch; 3 per step -> steps of 3 and 1 batches
    res = pretrain(enc, digits, "nt-xent", epochs=2, batch_size=16, accumulate=3, progress=False)
    assert len(res.history) == 4 and list(res.history["epoch"]) == [0, 0, 1, 1]
    assert res.epochs_completed == 2
    with pytest.raises(ValueError, match="accumulate"):
        pretrain(enc, digits, "nt-xent", accumulate=0, progress=False)


def test_accumulated_gradient_is_the_mean_of_the_batch_gradients(digits):
    # SGD with Nesterov momentum 0.9 moves the weights by lr * 1.9 * g at its first step, and
    # g must be the mean of the gradients of the 4 accumulated batches (recomputed by hand).
    enc, head = Encoder(Recorder(), (0.0,), (1.0,)), torch.nn.Linear(4, 10)
    before, before_head = state(enc), state(head)
    pretrain(enc, digits, "cross-entropy", head=head, epochs=1, batch_size=16, accumulate=4,
             optimizer="sgd-nesterov", lr=0.1, progress=False)
    enc2, head2 = Encoder(Recorder(), (0.0,), (1.0,)), torch.nn.Linear(4, 10)
    enc2.load_state_dict(before)
    head2.load_state_dict(before_head)
    order = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    aug = torch.Generator().manual_seed(1)
    grads = []
    for i in range(4):
        idx = order[i * 16:(i + 1) * 16]
        enc2.zero_grad()
        method_loss("cross-entropy", enc2, head2, digits.images[idx], digits.labels[idx], aug).backward()
        grads.append(enc2.backbone.lin.weight.grad.clone())
    step = (before["backbone.lin.weight"] - enc.backbone.lin.weight.detach()) / (0.1 * 1.9)
    torch.testing.assert_close(step, torch.stack(grads).mean(0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("accumulate", [1, 3])
def test_a_checkpoint_of_a_longer_run_is_the_shorter_run(digits, accumulate):
    snapshots = {}

    def keep(epoch, result):
        assert not enc.training and not result.stopped_early
        snapshots[epoch] = (state(enc), len(result.history), result.epochs_completed)

    enc, _ = tiny_model()
    long = pretrain(enc, digits, "instance-triplet", epochs=3, batch_size=16, accumulate=accumulate, seed=2,
                    progress=False, checkpoint_epochs=[1, 3], on_checkpoint=keep)
    assert sorted(snapshots) == [1, 3] and snapshots[1][2] == 1 and snapshots[3][2] == 3
    final = state(enc)
    for name, value in snapshots[3][0].items():
        assert torch.equal(value, final[name])
    short_enc, _ = tiny_model()
    short = pretrain(short_enc, digits, "instance-triplet", epochs=1, batch_size=16, accumulate=accumulate, seed=2,
                     progress=False)
    for name, value in state(short_enc).items():
        assert torch.equal(value, snapshots[1][0][name]), name
    assert snapshots[1][1] == len(short.history)
    np.testing.assert_array_equal(long.history["loss"][: len(short.history)], short.history["loss"])


def test_checkpoints_not_reached_get_the_stopped_model_and_random_init_gets_all(digits):
    seen = []
    enc, _ = tiny_model()
    pretrain(enc, digits, "nt-xent", epochs=5, batch_size=16, time_budget_s=1e-6, progress=False,
             checkpoint_epochs=[2, 5], on_checkpoint=lambda e, r: seen.append((e, r.stopped_early, len(r.history))))
    assert seen == [(2, True, 1), (5, True, 1)]
    seen.clear()
    pretrain(enc, digits, "random-init", epochs=4, progress=False, checkpoint_epochs=[4, 1],
             on_checkpoint=lambda e, r: seen.append(e))
    assert seen == [1, 4]
    with pytest.raises(ValueError, match=r"checkpoint_epochs must lie in \[1, epochs=2\]"):
        pretrain(enc, digits, "nt-xent", epochs=2, checkpoint_epochs=[3], progress=False)
