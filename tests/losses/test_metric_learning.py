"""The reference's losses (pytorch-metric-learning semantics): hand-computed cases and, when the
library is installed, equality with it."""

import math

import pytest
import torch
import torch.nn.functional as F

from rmqm.losses.contrastive import nt_xent_loss
from rmqm.losses.metric_learning import (
    pair_nt_xent_loss,
    pair_triplet_loss,
    triplet_entropy_loss,
    triplet_margin_loss,
)


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def test_triplet_margin_loss_by_hand():
    # on the unit circle: anchor 0 deg, positive 60 deg (D_ap = 1), negatives at 90 deg (D = sqrt 2,
    # semi-hard: 0 < 0.414 <= 0.5) and 180 deg (D = 2: gap 1 > margin, not mined)
    z = torch.tensor([_unit(0), _unit(60), _unit(90), _unit(180)])
    labels = torch.tensor([0, 0, 1, 2])
    # triplets: (0,1,2): gap sqrt2 - 1; (1,0,n): D_10 = 1, D_12 = 2 sin 15 < 1 (hard, not mined),
    # D_13 = 2 sin 60 = 1.732 (gap 0.732 > 0.5, not mined)
    expected = 0.5 - (math.sqrt(2) - 1)
    assert float(triplet_margin_loss(z, labels, 0.5)) == pytest.approx(expected, abs=1e-6)


def test_triplet_margin_loss_averages_only_nonzero_losses_and_is_scale_free():
    z = torch.tensor([_unit(0), _unit(60), _unit(90), _unit(91)])
    labels = torch.tensor([0, 0, 1, 1])
    d = lambda a, b: 2 * math.sin(math.radians(abs(a - b)) / 2)
    gaps = [d(0, n) - d(0, 60) for n in (90, 91)]  # anchor 0, positive 1
    gaps += [d(90, n) - d(90, 91) for n in (0, 60)] + [d(91, n) - d(91, 90) for n in (0, 60)]
    gaps += [d(60, n) - d(60, 0) for n in (90, 91)]
    losses = [0.5 - g for g in gaps if 0 < g <= 0.5]
    got = triplet_margin_loss(3.0 * z, labels, 0.5)  # embeddings are normalised first
    assert float(got) == pytest.approx(sum(losses) / len(losses), abs=1e-6)


def test_triplet_margin_loss_without_mined_triplets_is_zero_with_zero_gradient():
    z = torch.tensor([_unit(0), _unit(1), _unit(180), _unit(181)], requires_grad=True)
    loss = triplet_margin_loss(z, torch.tensor([0, 0, 1, 1]), 0.5)  # every gap is ~2 > margin
    assert float(loss.detach()) == 0.0
    (g,) = torch.autograd.grad(loss, z)
    assert torch.equal(g, torch.zeros_like(g))


def test_triplet_entropy_is_cross_entropy_plus_triplet():
    g = torch.Generator().manual_seed(0)
    z, logits = torch.randn(12, 5, generator=g), torch.randn(12, 3, generator=g)
    y = torch.arange(12) % 3
    want = F.cross_entropy(logits, y) + triplet_margin_loss(z, y)
    assert torch.allclose(triplet_entropy_loss(z, logits, y), want)


def test_pair_losses_use_each_images_other_view_as_its_positive():
    g = torch.Generator().manual_seed(1)
    ref, query = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    assert torch.allclose(pair_nt_xent_loss(ref, query, 0.07), nt_xent_loss(ref, query, 0.07))
    ids = torch.arange(6)
    assert torch.allclose(pair_triplet_loss(ref, query), triplet_margin_loss(torch.cat([ref, query]),
                                                                             torch.cat([ids, ids])))
    with pytest.raises(ValueError, match="same"):
        pair_triplet_loss(ref, query[:5])


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="labels must have shape"):
        triplet_margin_loss(torch.randn(4, 2), torch.arange(3))
    with pytest.raises(ValueError, match="margin"):
        triplet_margin_loss(torch.randn(4, 2), torch.arange(4), -1.0)
    with pytest.raises(ValueError, match="NaN"):
        triplet_margin_loss(torch.full((4, 2), float("nan")), torch.arange(4))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_to_pytorch_metric_learning(seed):
    pml = pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning import losses, miners

    g = torch.Generator().manual_seed(seed)
    z = torch.randn(32, 8, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (32,), generator=g)
    miner = miners.TripletMarginMiner(margin=0.5, type_of_triplets="semihard")
    want = losses.TripletMarginLoss(margin=0.5)(z, y, miner(z, y))
    got = triplet_margin_loss(z, y, 0.5)
    assert float(got) == pytest.approx(float(want), rel=1e-9), pml.__version__
    assert torch.allclose(torch.autograd.grad(got, z)[0], torch.autograd.grad(want, z)[0], atol=1e-10)

    ref, query = z[:16].detach(), z[16:]
    ids = torch.arange(16)
    emb, lab = torch.cat([ref, query]), torch.cat([ids, ids])
    want = losses.NTXentLoss(temperature=0.07)(emb, lab)
    assert float(pair_nt_xent_loss(ref, query, 0.07)) == pytest.approx(float(want), rel=1e-9)
    want = losses.TripletMarginLoss(margin=0.5)(emb, lab, miner(emb, lab))
    assert float(pair_triplet_loss(ref, query, 0.5)) == pytest.approx(float(want), rel=1e-9)


def _brute_force_triplet_margin_loss(z: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """The B x B x B reference: a mask over every (a, p, n) (the implementation before the P x B one)."""
    zn = F.normalize(z, dim=1)
    dist = torch.cdist(zn, zn)
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool)
    gap = dist[:, None, :] - dist[:, :, None]  # [a, p, n] = D_an - D_ap
    mined = pos[:, :, None] & ~same[:, None, :] & (gap > 0) & (gap <= margin)
    losses = F.relu(margin - gap[mined])
    nonzero = losses[losses > 0]
    return nonzero.mean() if nonzero.numel() else z.sum() * 0.0


def _batches():
    g = torch.Generator().manual_seed(7)
    for dtype in (torch.float32, torch.float64):
        for b, d, c in [(64, 16, 10), (33, 4, 3), (40, 2, 20), (16, 8, 2)]:
            yield f"random-{b}-{d}-{c}-{dtype}", torch.randn(b, d, generator=g, dtype=dtype), \
                torch.randint(0, c, (b,), generator=g)
        z = torch.randn(12, 3, generator=g, dtype=dtype)
        yield f"duplicated-embeddings-{dtype}", torch.cat([z, z, 2 * z]), torch.randint(0, 3, (36,), generator=g)
        # ties: points on a coarse grid of angles, so that many distances are exactly equal
        angles = torch.randint(0, 8, (30,), generator=g).to(dtype) * (math.pi / 4)
        yield f"grid-ties-{dtype}", torch.stack([angles.cos(), angles.sin()], 1), \
            torch.randint(0, 4, (30,), generator=g)
        z = torch.randn(20, 5, generator=g, dtype=dtype)
        yield f"one-class-{dtype}", z, torch.zeros(20, dtype=torch.long)
        yield f"all-distinct-{dtype}", z, torch.arange(20)
        yield f"one-odd-out-{dtype}", z, (torch.arange(20) == 3).long()
        yield f"two-views-{dtype}", z, torch.arange(20) % 10
        yield f"single-{dtype}", z[:1], torch.zeros(1, dtype=torch.long)


@pytest.mark.parametrize("margin", [0.5, 0.05, 2.0])
def test_pxb_mining_equals_the_brute_force_mask(margin):
    for name, z, y in _batches():
        z1 = z.clone().requires_grad_(True)
        z2 = z.clone().requires_grad_(True)
        got, want = triplet_margin_loss(z1, y, margin), _brute_force_triplet_margin_loss(z2, y, margin)
        tol = 1e-12 if z.dtype == torch.float64 else 1e-5  # the same triplets, summed in another order
        assert torch.allclose(got.detach(), want.detach(), rtol=tol, atol=tol), name
        assert (float(got.detach()) == 0.0) == (float(want.detach()) == 0.0), name
        (g1,), (g2,) = torch.autograd.grad(got, z1), torch.autograd.grad(want, z2)
        assert torch.allclose(g1, g2, rtol=tol, atol=tol), name


def test_pxb_mining_finds_triplets_on_the_random_batches():
    # the equality test above is not vacuous: most of its random batches mine triplets
    mined = [float(triplet_margin_loss(z, y, 0.5)) > 0 for name, z, y in _batches() if name.startswith("random")]
    assert sum(mined) >= 6
