"""The three PGD modes of RMQM: the reference's own-loss attack, one own-loss trajectory, and the
label-free displacement attack.

- ``"reference"``: the RMQM reference code's attack, read from its ``src/attacks.py``
  (/work/shared/methods/rmqm.md, "What the reference code does ... in its PGD attack"). Level ``k``
  is a separate attack of ``k`` sign-gradient steps from the clean image (no random start, L-inf
  projection, pixels clamped to ``[0, 1]`` after each step) that ascends the batch-mean training
  loss of the model. Supervised losses (cross-entropy, triplet-entropy, supervised triplet) are
  computed on labels, through a freshly drawn augmentation for cross-entropy and triplet-entropy
  (the reference's ``model(augment(adv))``) and without it for the supervised triplet; the attack
  returns ``augment(adv)``, a new random augmentation at every level, level 0 included. View losses
  (NT-Xent, instance triplet) compare ``model(augment(x_clean))``, a clean view redrawn at every
  step, with ``model(adv)`` and return ``adv`` itself. Cost: ``K (K - 1) / 2`` forward+backward
  passes for ``K`` levels.
- ``"own-loss"``: the same losses on ``model(adv)``, one augmented clean view fixed per point for
  the view losses, no output augmentation: a deterministic loss, so the levels are the prefixes of
  one trajectory (:func:`rmqm.metrics.rmqm.perturbations.pgd_trajectory`, ``K - 1`` passes).
- ``"displacement"``: the label-free attack of
  :func:`rmqm.metrics.rmqm.perturbations.make_attack_loss` (the library's default).

Every loss is the batch mean of the reference's loss (pytorch-metric-learning semantics,
:mod:`rmqm.losses.metric_learning`), so a point's gradient depends on the other points of its batch:
the batch (the reference: 128 test images in order) is part of the semantics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from rmqm._utils.validation import check_choice
from rmqm.data.transforms import random_rotation
from rmqm.losses.contrastive import vicreg_loss
from rmqm.losses.metric_learning import (
    pair_nt_xent_loss,
    pair_triplet_loss,
    triplet_entropy_loss,
    triplet_margin_loss,
)
from rmqm.metrics.rmqm.perturbations import check_images, check_pgd_params, pgd_step

__all__ = [
    "PGD_MODES", "LABEL_LOSSES", "VIEW_LOSSES", "OWN_LOSSES", "Augment", "reference_semantics", "rotation_view",
    "own_batch_loss", "reference_pgd_levels",
]


#: The PGD modes of :func:`rmqm.metrics.rmqm.measure.measure_rmqm`.
PGD_MODES: tuple[str, ...] = ("displacement", "own-loss", "reference")

#: Own losses computed from class labels (the supervised methods' training losses).
LABEL_LOSSES: tuple[str, ...] = ("cross-entropy", "triplet-entropy", "supervised-triplet")

#: Own losses that contrast the attacked image with an augmented clean view (two-view methods).
#: VICReg is not in the reference; attacking it with its own loss is this library's choice.
VIEW_LOSSES: tuple[str, ...] = ("nt-xent", "instance-triplet", "vicreg")

OWN_LOSSES: tuple[str, ...] = LABEL_LOSSES + VIEW_LOSSES

#: ``augment(images, generator) -> images``, differentiable in ``images``.
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def rotation_view(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The reference's MNIST attack augmentation: a random rotation of at most 15 degrees per image
    (:func:`rmqm.data.transforms.random_rotation`)."""
    return random_rotation(images, generator, max_degrees=15.0)


def reference_semantics(loss: str) -> dict[str, bool]:
    """Where the reference's attack augments, for a model attacked with ``loss``.

    Returns:
        ``{"augment_output": ..., "augment_gradient": ...}``: ``augment_output`` -- the attack
        returns ``augment(adv)`` (the label losses); ``augment_gradient`` -- the loss is taken on
        ``model(augment(adv))`` (cross-entropy and triplet-entropy; the supervised triplet model is
        attacked through ``model(adv)``). Both False for the view losses, whose augmentation is the
        clean view redrawn at every step.

    Raises:
        ValueError: ``loss`` is not one of :data:`OWN_LOSSES`.
    """
    check_choice(loss, OWN_LOSSES, "own attack loss")
    return {"augment_output": loss in LABEL_LOSSES, "augment_gradient": loss in ("cross-entropy", "triplet-entropy")}


def own_batch_loss(
    loss: str, z: torch.Tensor, *, labels: torch.Tensor | None = None, head: nn.Module | None = None,
    z_view: torch.Tensor | None = None, temperature: float = 0.07, margin: float = 0.5,
) -> torch.Tensor:
    """The batch-mean training loss ``loss`` of embeddings ``z`` ``(B, d)``, a scalar.

    ``"cross-entropy"``: ``cross_entropy(head(z), labels)``; ``"triplet-entropy"``: that plus the
    semi-hard mined triplet margin loss of ``(z, labels)``; ``"supervised-triplet"``: the triplet
    loss alone; ``"nt-xent"`` / ``"instance-triplet"``: NT-Xent (``temperature``) / the triplet loss
    on ``[z_view; z]`` with each image's view as its positive; ``"vicreg"``:
    :func:`rmqm.losses.contrastive.vicreg_loss` of ``(z_view, z)`` (0 for a batch of one).

    Raises:
        ValueError: an unknown loss, or a missing ``labels``/``head``/``z_view`` it needs.
    """
    check_choice(loss, OWN_LOSSES, "own attack loss")
    if loss in LABEL_LOSSES:
        if labels is None or (loss != "supervised-triplet" and head is None):
            raise ValueError(f"the {loss} attack needs the class labels"
                             + ("" if loss == "supervised-triplet" else " and the model's classifier `head`"))
        y = labels.to(z.device)
        if loss == "cross-entropy":
            return F.cross_entropy(head(z), y)  # type: ignore[misc]
        if loss == "triplet-entropy":
            return triplet_entropy_loss(z, head(z), y, margin)  # type: ignore[misc]
        return triplet_margin_loss(z, y, margin)
    if z_view is None:
        raise ValueError(f"the {loss} attack needs `z_view`, the embeddings of an augmented clean view")
    if loss == "nt-xent":
        return pair_nt_xent_loss(z_view, z, temperature)
    if loss == "instance-triplet":
        return pair_triplet_loss(z_view, z, margin)
    return vicreg_loss(z_view, z) if z.shape[0] >= 2 else z.sum() * 0.0


def reference_pgd_levels(
    encoder: nn.Module,
    x: torch.Tensor,
    loss: str,
    n_levels: int,
    generator: torch.Generator,
    *,
    step_size: float = 2 / 255,
    epsilon: float = 0.3,
    labels: torch.Tensor | None = None,
    head: nn.Module | None = None,
    augment: Augment = rotation_view,
    augment_output: bool | None = None,
    augment_gradient: bool | None = None,
    temperature: float = 0.07,
    margin: float = 0.5,
) -> Iterator[torch.Tensor]:
    """Yield the images the reference's attack returns at levels ``k = 0..n_levels-1`` for one batch.

    Level ``k`` runs ``k`` steps from ``x`` (see the module docstring). Random draws, all from
    ``generator`` in this order: per level, per step, one augmentation (the clean view of a view
    loss, or the gradient augmentation when ``augment_gradient``); then the output augmentation
    of the level when ``augment_output``.

    Args:
        encoder: ``[0, 1]`` images ``(B, C, H, W)`` -> ``(B, d)``, in eval mode.
        x: the clean batch ``(B, C, H, W)`` in ``[0, 1]`` -- the attack's batch (reference: 128).
        loss: one of :data:`OWN_LOSSES`.
        n_levels: ``K``; step_size, epsilon: pixel units (reference MNIST: 2/255, 0.3).
        generator: seeds every augmentation.
        labels, head: for the label losses (``head`` for cross-entropy and triplet-entropy).
        augment: ``augment(images, generator)`` (default: rotation up to 15 degrees, MNIST).
        augment_output, augment_gradient: None (default) = :func:`reference_semantics` of ``loss``.
        temperature, margin: NT-Xent temperature, triplet margin (reference 0.07, 0.5).

    Yields:
        ``n_levels`` detached tensors shaped like ``x``.
    """
    check_pgd_params(n_levels - 1, step_size, epsilon)
    check_images(x)
    flags = reference_semantics(loss)
    out_aug = flags["augment_output"] if augment_output is None else bool(augment_output)
    grad_aug = flags["augment_gradient"] if augment_gradient is None else bool(augment_gradient)
    x = x.detach()
    for k in range(int(n_levels)):
        adv = x.clone()
        for _ in range(k):
            adv.requires_grad_(True)
            with torch.enable_grad():
                z_view = None
                if loss in VIEW_LOSSES:
                    with torch.no_grad():
                        z_view = encoder(augment(x, generator))
                z = encoder(augment(adv, generator) if grad_aug else adv)
                value = own_batch_loss(loss, z, labels=labels, head=head, z_view=z_view, temperature=temperature,
                                       margin=margin)
                (grad,) = torch.autograd.grad(value, adv, allow_unused=True)
            adv = pgd_step(adv.detach(), x, torch.zeros_like(adv) if grad is None else grad, step_size, epsilon)
        with torch.no_grad():
            yield (augment(adv, generator) if out_aug else adv).detach()
