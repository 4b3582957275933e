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
