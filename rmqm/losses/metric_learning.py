"""The reference's losses with ``pytorch-metric-learning`` semantics: semi-hard mined triplet margin
loss, triplet-entropy, and NT-Xent on ``[ref; query]``.

The RMQM reference code (van der Merwe et al. 2022) trains and attacks its models with the PyPI
library ``pytorch-metric-learning`` (PML): ``NTXentLoss(temperature=0.07)``,
``TripletMarginLoss(margin=0.5)`` with a ``TripletMarginMiner(margin=0.5,
type_of_triplets="semihard")``, and cross-entropy plus that triplet loss (weights 1 and 1). These
functions reproduce PML's default semantics (Euclidean distance between L2-normalised embeddings,
all mined triplets, the mean over the triplets with a non-zero loss) without depending on it.

Not the same loss as :func:`rmqm.losses.contrastive.semi_hard_triplet_loss` (TF-Addons semantics: one
negative per anchor-positive pair, the farthest negative when none is semi-hard, the mean over all
pairs), which this library's pretraining uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rmqm._utils.validation import check_real
from rmqm.losses.contrastive import nt_xent_loss

__all__ = ['triplet_margin_loss', 'triplet_entropy_loss', 'pair_nt_xent_loss', 'pair_triplet_loss']


def _check(z: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(z, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("z and labels must be torch tensors: z of shape (B, d), labels of shape (B,)")
    if z.ndim != 2 or z.shape[1] < 1 or not z.is_floating_point():
        raise ValueError(f"z must be a floating-point (B, d) tensor with d >= 1; got {z.dtype} {tuple(z.shape)}")
    if labels.shape != (z.shape[0],):
        raise ValueError(f"labels must have shape ({z.shape[0]},) to match z; got {tuple(labels.shape)}")
    if not torch.isfinite(z.detach()).all():
        raise ValueError("z contains NaN or inf values")


def triplet_margin_loss(z: torch.Tensor, labels: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """PML's ``TripletMarginLoss(margin)`` on the triplets of ``TripletMarginMiner(margin, "semihard")``.

    With ``D`` the Euclidean distance between L2-normalised embeddings, the miner keeps every
    triplet ``(a, p, n)`` (``labels[a] == labels[p]``, ``a != p``, ``labels[n] != labels[a]``) with
    ``0 < D_an - D_ap <= margin``; each kept triplet's loss is ``max(D_ap - D_an + margin, 0)``
    and the result is the mean of the non-zero ones (PML's ``AvgNonZeroReducer``), ``0`` (with a
    zero gradient) when there is none.

    Cost: ``O(P B)`` time and memory for the ``P`` anchor-positive pairs (``2B`` for the instance
    triplet's ``[ref; query]``, about ``B^2 / C`` for ``C`` balanced classes), not the ``O(B^3)``
    of a mask over all ``(a, p, n)``; the same mined triplets and, up to the order of the sums,
    the same loss and gradient.

    Args:
        z: ``(B, d)`` embeddings (normalised here).
        labels: ``(B,)`` integer labels.
        margin: ``>= 0`` (the reference: 0.5).

    Returns:
        A scalar tensor.

    Raises:
        TypeError, ValueError: not a finite ``(B, d)`` float tensor with ``(B,)`` labels, a bad margin.
    """
    _check(z, labels)
    margin = check_real(margin, "margin", low=0.0)
    zn = F.normalize(z, dim=1)
    dist = torch.cdist(zn, zn)
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool, device=z.device)
    # P x B, not B x B x B: one row per anchor-positive pair, one column per candidate negative.
    # The mining needs no gradient; the loss is then a weighted sum of distances:
    # sum over kept (a, p, n) of (margin + D_ap - D_an) = sum_pairs c_ap (margin + D_ap) - sum_an w_an D_an,
    # with c_ap the pair's kept negatives and w_an the kept pairs of anchor a that use n.
    a, p = pos.nonzero(as_tuple=True)
    d_ap = dist[a, p]
    with torch.no_grad():
        gap = dist.index_select(0, a) - d_ap[:, None]  # [pair, n] = D_an - D_ap
        # mined (semi-hard: 0 < gap <= margin) with a non-zero loss (margin - gap > 0: gap < margin)
        keep = (gap > 0) & (gap < margin) & ~same.index_select(0, a)
        per_pair = keep.sum(1).to(dist.dtype)
        per_an = torch.zeros_like(dist).index_add_(0, a, keep.to(dist.dtype))
        count = float(per_pair.sum())
    if not count:
        return z.sum() * 0.0
    return ((per_pair * (margin + d_ap)).sum() - (per_an * dist).sum()) / count


def triplet_entropy_loss(z: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
                         margin: float = 0.5) -> torch.Tensor:
    """The reference's triplet-entropy loss: ``cross_entropy(logits, labels) +
    triplet_margin_loss(z, labels, margin)`` (weights 1 and 1), a scalar batch mean.

    Args:
        z: ``(B, d)`` embeddings; logits: ``(B, n_classes)``; labels: ``(B,)``.
    """
    _check(z, labels)
    return F.cross_entropy(logits, labels) + triplet_margin_loss(z, labels, margin)


def pair_nt_xent_loss(ref: torch.Tensor, query: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """PML's ``NTXentLoss(temperature)`` on ``[ref; query]`` with labels ``arange(B)`` twice: the
    mean over the ``2B`` anchors of SimCLR's loss (equal to
    :func:`rmqm.losses.contrastive.nt_xent_loss` with ``reduction="mean"``; PML adds a
    ``1e-38``-sized guard inside its logarithm). A scalar; ``0`` for ``B = 1`` (no negatives)."""
    return nt_xent_loss(ref, query, temperature, reduction="mean")


def pair_triplet_loss(ref: torch.Tensor, query: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """The reference's instance-triplet loss: :func:`triplet_margin_loss` on ``[ref; query]``
    with labels ``arange(B)`` twice (each image's other view is its only positive)."""
    if ref.shape != query.shape:
        raise ValueError(f"ref and query must have the same (B, d) shape; got {tuple(ref.shape)} and "
                         f"{tuple(query.shape)}")
    ids = torch.arange(ref.shape[0], device=ref.device)
    return triplet_margin_loss(torch.cat([ref, query]), torch.cat([ids, ids]), margin)
