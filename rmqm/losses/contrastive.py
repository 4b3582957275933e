"""Representation losses shared by training and attacks: NT-Xent, semi-hard triplet, VICReg."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rmqm._utils.validation import check_real

__all__ = ['NT_XENT_REDUCTIONS', 'nt_xent_loss', 'semi_hard_triplet_loss', 'vicreg_loss']


def _check_embeddings(z: torch.Tensor, name: str) -> None:
    """Raise unless ``z`` is a finite floating-point ``(B, d)`` tensor with ``d >= 1``."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, d); got {type(z).__name__}")
    if z.ndim != 2 or z.shape[1] < 1:
        raise ValueError(f"{name} must be a (B, d) tensor with d >= 1; got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {z.dtype}")
    if not torch.isfinite(z.detach()).all():
        raise ValueError(f"{name} contain NaN or inf values")


def _check_pair(z1: torch.Tensor, z2: torch.Tensor, min_batch: int = 2) -> None:
    """Raise unless ``z1`` and ``z2`` are two views ``(B, d)`` of equal shape with ``B >= min_batch``."""
    _check_embeddings(z1, "z1")
    _check_embeddings(z2, "z2")
    if z1.shape != z2.shape:
        raise ValueError(f"views must be two (B, d) tensors of equal shape; got {tuple(z1.shape)} and "
                         f"{tuple(z2.shape)}")
    if z1.shape[0] < min_batch:
        raise ValueError(f"need a batch of at least {min_batch} point{'s' if min_batch > 1 else ''}; got {z1.shape[0]}")


#: Accepted ``reduction`` values of :func:`nt_xent_loss`.
NT_XENT_REDUCTIONS: tuple[str, ...] = ("mean", "none", "sum")


def nt_xent_loss(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.07, reduction: str = "mean"
) -> torch.Tensor:
    """SimCLR's NT-Xent loss between two views (Chen et al. 2020, eq. 1).

    For the ``2B`` L2-normalised embeddings, each point's positive is the other view of the
    same image and the other ``2B - 2`` points are negatives:
    ``l_i = -log(exp(s_ip / tau) / sum_{k != i} exp(s_ik / tau))`` with cosine similarity
    ``s``. Pretraining minimises it (``"mean"``); the ``"nt-xent"`` PGD attack of
    :func:`rmqm.metrics.rmqm.perturbations.make_attack_loss` ascends the per-pair losses (``"none"``).

    Args:
        z1, z2: ``(B, d)`` embeddings of the two views (row ``i`` of each is image ``i``),
            ``B >= 1``.
        temperature: ``tau > 0``.
        reduction: ``"mean"`` -- a scalar, the mean of ``l_i`` over all ``2B`` anchors
            (SimCLR's training loss); ``"none"`` -- shape ``(B,)``, the loss of pair ``i``,
            ``(l_i + l_{B+i}) / 2`` (its two anchors averaged), whose mean equals
            ``"mean"`` up to float rounding; ``"sum"`` -- a scalar, the sum of ``"none"``
            (``B`` times ``"mean"``).

    A batch of one pair has no negatives: each anchor's softmax runs over its positive
    alone, so every loss is exactly ``0`` with a zero gradient (nothing to contrast;
    a PGD step on it does not move). Pretraining refuses ``batch_size < 2`` for this
    reason; the attack's last batch may hold a single point.

    Raises:
        ValueError: unequal shapes, an empty batch, NaN/inf embeddings, ``temperature``
            not positive and finite, or an unknown ``reduction``.
    """
    if reduction not in NT_XENT_REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; choose one of {list(NT_XENT_REDUCTIONS)}")
    _check_pair(z1, z2, min_batch=1)
    check_real(temperature, "temperature", low=0.0, low_open=True)
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    if reduction == "mean":
        return F.cross_entropy(sim, targets)
    per_anchor = F.cross_entropy(sim, targets, reduction="none")
    per_pair = 0.5 * (per_anchor[:b] + per_anchor[b:])
    return per_pair if reduction == "none" else per_pair.sum()


def semi_hard_triplet_loss(z: torch.Tensor, labels: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """Semi-hard triplet loss with online mining (Schroff et al. 2015; TF-Addons semantics).

    Embeddings are L2-normalised and compared by Euclidean distance ``D``. For every
    anchor-positive pair ``(a, p)`` (same label, ``a != p``) the negative is the closest
    ``n`` with ``D_an > D_ap`` (semi-hard); when there is none, the farthest negative. The
    loss is the mean over pairs of ``max(D_ap - D_an + margin, 0)``. A batch without any
    valid triplet gives zero (with a gradient path).

    Args:
        z: ``(B, d)`` embeddings.
        labels: ``(B,)`` integer labels.
        margin: the margin (0.5 in the reference), ``>= 0``.

    Returns:
        A scalar tensor.

    Raises:
        TypeError: ``z`` or ``labels`` not tensors, ``z`` not floating-point.
        ValueError: mismatched shapes, NaN/inf embeddings, a negative or non-finite margin.
    """
    _check_embeddings(z, "z")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor of shape (B,); got {type(labels).__name__}")
    if labels.ndim != 1 or labels.shape[0] != z.shape[0]:
        raise ValueError(
            f"need z of shape (B, d) and labels of shape (B,); got {tuple(z.shape)} and {tuple(labels.shape)}"
        )
    margin = check_real(margin, "margin", low=0.0)
    zn = F.normalize(z, dim=1)
    # Euclidean distances on the sphere, from the Gram matrix (clamped for a safe sqrt).
    dist = (2 - 2 * zn @ zn.T).clamp_min(1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=z.device)
    pos = same & ~eye
    neg = ~same
    if not pos.any() or not neg.any():
        return z.sum() * 0.0
    a_idx, p_idx = pos.nonzero(as_tuple=True)
    d_ap = dist[a_idx, p_idx]  # (P,)
    d_an = dist[a_idx]  # (P, B)
    neg_rows = neg[a_idx]
    semi = neg_rows & (d_an > d_ap[:, None])
    inf = torch.tensor(float("inf"), device=z.device, dtype=dist.dtype)
    closest_semi = torch.where(semi, d_an, inf).min(dim=1).values
    farthest = torch.where(neg_rows, d_an, -inf).max(dim=1).values
    chosen = torch.where(semi.any(dim=1), closest_semi, farthest)
    valid = neg_rows.any(dim=1)
    losses = F.relu(d_ap - chosen + margin)[valid]
    return losses.mean() if losses.numel() else z.sum() * 0.0


def vicreg_loss(
    z1: torch.Tensor, z2: torch.Tensor, invariance: float = 25.0, variance: float = 25.0, covariance: float = 1.0
) -> torch.Tensor:
    """VICReg (Bardes et al. 2022, eq. 6): invariance + variance + covariance terms.

    Uses ``lightly.loss.VICRegLoss`` with the paper's weights (25, 25, 1).

    Args:
        z1, z2: ``(B, d)`` embeddings of the two views, ``B >= 2``.
        invariance, variance, covariance: the weights of the three terms.

    Returns:
        A scalar tensor.

    Raises:
        TypeError, ValueError: views that are not two finite ``(B, d)`` tensors of equal shape, ``B < 2``.
    """
    from lightly.loss import VICRegLoss

    _check_pair(z1, z2)
    return VICRegLoss(lambda_param=invariance, mu_param=variance, nu_param=covariance)(z1, z2)
