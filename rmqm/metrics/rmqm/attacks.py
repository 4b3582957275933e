"""The PGD attacks of RMQM, each an :class:`AttackSpec` that :func:`resolve_attack` decides once.

- ``"reference"``: the RMQM reference code's attack (its ``src/attacks.py``, as
  ``generate_embeddings_adv_mnist.py`` calls it on the MNIST test set in order, batches of 128).
  Level ``k`` is a separate attack of ``k`` sign-gradient steps from the clean image that ascends
  the model's batch-mean training loss. The label losses' attack returns ``augment(adv)``, with
  ``augment = Compose([RandomRotation(15), Normalize(...)])`` applied to the batch tensor: one angle
  per call for the whole batch, nearest, zero fill; cross-entropy and triplet-entropy take the
  gradient of ``model(augment(adv))``, the supervised triplet of ``model(adv)`` on raw ``[0, 1]``
  pixels (no normalisation). View losses (NT-Xent, instance triplet; NT-Xent for the random init)
  compare ``model(augment(x_clean))``, redrawn at every step, with ``model(normalise(adv))`` and
  return ``adv``. Cost: ``K (K - 1) / 2`` forward+backward passes for ``K`` levels.
- ``"own-loss"``: the same losses on ``model(adv)``, one clean view fixed per point, no output
  augmentation: the levels are the prefixes of one trajectory (``K - 1`` passes).
- ``"displacement"``: the label-free attack of :func:`rmqm.metrics.rmqm.perturbations.make_attack_loss`.

Every loss is the batch mean of the reference's loss (pytorch-metric-learning semantics,
:mod:`rmqm.losses.metric_learning`): the batch is part of the semantics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rmqm._utils.validation import check_choice
from rmqm.data.transforms import batch_random_rotation, random_rotation
from rmqm.losses.contrastive import vicreg_loss
from rmqm.losses.metric_learning import (
    pair_nt_xent_loss,
    pair_triplet_loss,
    triplet_entropy_loss,
    triplet_margin_loss,
)
from rmqm.metrics.rmqm.perturbations import check_images, check_pgd_params, pgd_step
from rmqm.models.encoder import Encoder

__all__ = [
    "PGD_MODES", "HEAD_LOSSES", "LABEL_LOSSES", "VIEW_LOSSES", "OWN_LOSSES", "ROTATIONS", "FACTORS", "Augment",
    "AttackSpec", "loss_of_method", "resolve_attack", "reference_semantics", "rotation_view", "batch_rotation_view",
    "rotation_augment", "own_batch_loss", "reference_pgd_levels", "attack_levels",
]


#: The PGD modes of :func:`rmqm.metrics.rmqm.measure.measure_rmqm`.
PGD_MODES: tuple[str, ...] = ("displacement", "own-loss", "reference")

#: Own losses that need the model's classifier head (the one place this set is written).
HEAD_LOSSES: tuple[str, ...] = ("cross-entropy", "triplet-entropy")

#: Own losses computed from class labels (the supervised methods' training losses).
LABEL_LOSSES: tuple[str, ...] = HEAD_LOSSES + ("supervised-triplet",)

#: Own losses that contrast the attacked image with an augmented clean view (two-view methods).
#: VICReg is not in the reference; attacking it with its own loss is this library's choice.
VIEW_LOSSES: tuple[str, ...] = ("nt-xent", "instance-triplet", "vicreg")

OWN_LOSSES: tuple[str, ...] = LABEL_LOSSES + VIEW_LOSSES

#: How the attack's random rotation is drawn: ``"batch"`` -- torchvision's ``RandomRotation(15)``
#: on a batch tensor, one angle per call, nearest (the reference's attack); ``"image"`` -- one
#: angle per image, bilinear (:func:`rmqm.data.transforms.random_rotation`; a sensitivity option).
ROTATIONS: tuple[str, ...] = ("batch", "image")

#: The switches of the reference's attack that :func:`resolve_attack` can turn off one by one
#: (the study's factorial ablation), and the draw of the rotation (a sensitivity factor).
FACTORS: tuple[str, ...] = ("augment_output", "augment_gradient", "restarts", "rotation")

#: ``augment(images, generator) -> images``, differentiable in ``images``.
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def rotation_view(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random rotation of at most 15 degrees per image, bilinear
    (:func:`rmqm.data.transforms.random_rotation`): the own-loss mode's clean view."""
    return random_rotation(images, generator, max_degrees=15.0)


def batch_rotation_view(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The reference's MNIST attack augmentation, ``RandomRotation(15)`` on the batch tensor: one
    angle for the whole batch per call, nearest, zero fill (:func:`rmqm.data.transforms.batch_random_rotation`;
    the reference's ``src/attacks.py``)."""
    return batch_random_rotation(images, generator, max_degrees=15.0)


def rotation_augment(rotation: str) -> Augment:
    """The augmentation of a :data:`ROTATIONS` name."""
    check_choice(rotation, ROTATIONS, "rotation draw")
    return batch_rotation_view if rotation == "batch" else rotation_view


def loss_of_method(method: str) -> str:
    """The own training loss that attacks a model of ``method``: the method's own name, and
    ``"nt-xent"`` for ``"random-init"`` (the reference attacks its random network with NT-Xent);
    a loss name (``"displacement"`` included) is returned as it is.

    Raises:
        ValueError: neither a loss of :data:`OWN_LOSSES`, ``"displacement"`` nor ``"random-init"``.
    """
    if method == "random-init":
        return "nt-xent"
    check_choice(method, ("displacement", *OWN_LOSSES, "random-init"), "pretraining method or attack loss")
    return method


@dataclass(frozen=True)
class AttackSpec:
    """How PGD attacks one model: a frozen, self-validating value (use :func:`resolve_attack`).

    Attributes:
        mode: one of :data:`PGD_MODES`.
        loss: ``"displacement"`` or one of :data:`OWN_LOSSES` (the displacement mode uses exactly
            the displacement loss, the own-loss and reference modes an own loss).
        augment_output: the attack returns ``augment(adv)``, a fresh draw per level, level 0
            included (the reference's label losses).
        augment_gradient: randomness inside the gradient path, drawn at every step: the loss of
            ``model(augment(adv))`` for the label losses (the reference's cross-entropy and
            triplet-entropy), the clean view redrawn at every step for the view losses (the
            reference's NT-Xent and instance triplet); off: ``model(adv)`` and, for view losses,
            one clean view fixed per batch.
        restarts: level ``k`` is a separate attack of ``k`` steps from the clean image (the
            reference; ``K (K - 1) / 2`` passes) instead of the ``k``-step prefix of one trajectory.
        rotation: how the rotation is drawn (:data:`ROTATIONS`).
        raw_gradient: the gradient is taken on the encoder's backbone without its input
            normalisation (the reference's supervised triplet: ``model(adv)`` on ``[0, 1]`` pixels).
    """

    mode: str
    loss: str
    augment_output: bool = False
    augment_gradient: bool = False
    restarts: bool = False
    rotation: str = "image"
    raw_gradient: bool = False

    def __post_init__(self) -> None:
        check_choice(self.mode, PGD_MODES, "pgd mode")
        check_choice(self.loss, ("displacement", *OWN_LOSSES), "attack loss")
        check_choice(self.rotation, ROTATIONS, "rotation draw")
        for name in ("augment_output", "augment_gradient", "restarts", "raw_gradient"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"AttackSpec.{name} must be a bool; got {getattr(self, name)!r}")
        if (self.mode == "displacement") != (self.loss == "displacement"):
            raise ValueError(
                f"pgd mode {self.mode!r} does not fit attack loss {self.loss!r}: the displacement mode uses the "
                "displacement loss, the own-loss and reference modes a model's own training loss "
                "(resolve_attack(method, mode))")
        if self.mode != "reference" and (self.augment_output or self.augment_gradient or self.restarts
                                         or self.raw_gradient):
            raise ValueError(f"augmentations, restarts and raw gradients belong to pgd mode 'reference'; "
                             f"got them with {self.mode!r}")

    @property
    def needs_head(self) -> bool:
        """The loss needs the model's classifier head (and labels)."""
        return self.loss in HEAD_LOSSES

    @property
    def needs_labels(self) -> bool:
        """The loss needs class labels."""
        return self.loss in LABEL_LOSSES

    @property
    def view_loss(self) -> bool:
        """The loss contrasts the attacked image with an augmented clean view."""
        return self.loss in VIEW_LOSSES

    def keywords(self) -> dict[str, Any]:
        """The spec as JSON-like :func:`rmqm.metrics.rmqm.measure.measure_rmqm` keywords (and cache-key
        entries); ``raw_gradient`` follows from the loss and mode (:func:`resolve_attack`)."""
        return {"attack_loss": self.loss, "pgd_mode": self.mode, "augment_output": self.augment_output,
                "augment_gradient": self.augment_gradient, "restarts": self.restarts, "rotation": self.rotation}


def resolve_attack(
    method: str, mode: str | None = None, *, augment_output: bool | None = None,
    augment_gradient: bool | None = None, restarts: bool | None = None, rotation: str | None = None,
) -> AttackSpec:
    """THE function that decides how PGD attacks a model of ``method`` in ``mode``.

    ``method``: a pretraining method (``"random-init"`` is attacked with NT-Xent) or an attack loss
    (:func:`loss_of_method`); ``"displacement"`` gives the label-free mode. ``mode`` None: the
    mode the loss implies (``"displacement"`` for the displacement loss, else ``"own-loss"``).

    - ``"displacement"`` and ``"own-loss"``: one trajectory, no augmentation (the own-loss view
      losses fix one clean view per image).
    - ``"reference"``: the reference's attack (its ``src/attacks.py`` as
      ``generate_embeddings_adv_mnist.py`` calls it): a separate attack per level; the label
      losses' result is rotated (``augment_output``); cross-entropy and triplet-entropy take the
      gradient through a rotation and the view losses redraw their clean view at every step
      (``augment_gradient``); the supervised triplet's gradient is on raw pixels; rotations are
      drawn once per batch call, nearest.

    The factor switches (the study's ablation, reference mode only) turn these off one at a
    time: ``augment_output``/``augment_gradient`` False removes that randomness, True keeps it
    where the reference has it (a factor that does not apply to the loss stays off);
    ``restarts`` False makes the levels prefixes of one trajectory; ``rotation`` ``"image"``
    draws one angle per image, bilinear. None: the mode's own choice.

    Raises:
        ValueError: an unknown method, loss, mode or rotation, a mode that does not fit the loss,
            or a factor switch outside the reference mode.
    """
    loss = loss_of_method(method)
    if mode is None:
        mode = "displacement" if loss == "displacement" else "own-loss"
    check_choice(mode, PGD_MODES, "pgd mode")
    factors = {"augment_output": augment_output, "augment_gradient": augment_gradient, "restarts": restarts,
               "rotation": rotation}
    if mode != "reference":
        given = [k for k, v in factors.items() if v is not None and v is not False and k != "rotation"]
        if given:
            raise ValueError(f"{given} belong to pgd mode 'reference' (the reference's attack); got mode {mode!r}")
        return AttackSpec(mode, loss, rotation=rotation or "image")
    if loss == "displacement":  # let AttackSpec name the misfit
        return AttackSpec(mode, loss)
    on = {"augment_output": loss in LABEL_LOSSES, "augment_gradient": loss in HEAD_LOSSES or loss in VIEW_LOSSES}
    return AttackSpec(
        mode, loss,
        augment_output=on["augment_output"] and (augment_output is None or bool(augment_output)),
        augment_gradient=on["augment_gradient"] and (augment_gradient is None or bool(augment_gradient)),
        restarts=True if restarts is None else bool(restarts),
        rotation="batch" if rotation is None else rotation,
        raw_gradient=loss == "supervised-triplet",
    )


def reference_semantics(loss: str) -> dict[str, bool]:
    """``{"augment_output", "augment_gradient"}`` of the reference's attack with ``loss``
    (:func:`resolve_attack` in the reference mode).

    Raises:
        ValueError: ``loss`` is not one of :data:`OWN_LOSSES`.
    """
    check_choice(loss, OWN_LOSSES, "own attack loss")
    spec = resolve_attack(loss, "reference")
    return {"augment_output": spec.augment_output, "augment_gradient": spec.augment_gradient}


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


def _raw(encoder: nn.Module) -> nn.Module:
    """The encoder without its input normalisation (an :class:`rmqm.models.encoder.Encoder`'s
    backbone); an encoder that does not expose one is differentiated as it is."""
    return encoder.backbone if isinstance(encoder, Encoder) and encoder.mean is not None else encoder


def attack_levels(
    encoder: nn.Module,
    x: torch.Tensor,
    spec: AttackSpec,
    n_levels: int,
    generator: torch.Generator,
    *,
    step_size: float = 2 / 255,
    epsilon: float = 0.3,
    labels: torch.Tensor | None = None,
    head: nn.Module | None = None,
    augment: Augment | None = None,
    temperature: float = 0.07,
    margin: float = 0.5,
) -> Iterator[torch.Tensor]:
    """Yield the images an own-loss attack ``spec`` returns at levels ``k = 0..n_levels-1`` for one batch.

    Every level has ``k`` sign-gradient steps from ``x`` (no random start, L-inf projection, pixels
    clamped to ``[0, 1]`` after each step) ascending the batch-mean loss :func:`own_batch_loss`;
    ``spec.restarts``: each level a separate attack, else the prefixes of one trajectory.
    Random draws, all from ``generator``, in this order: the fixed clean view (view loss without
    ``augment_gradient``); then per level (restarts) or once, per step one draw (the clean view or
    the gradient's augmentation, when ``augment_gradient``); then the level's output draw (when
    ``augment_output``).

    Args:
        encoder: ``[0, 1]`` images ``(B, C, H, W)`` -> ``(B, d)``, in eval mode.
        x: the clean batch ``(B, C, H, W)`` in ``[0, 1]`` (the reference: 128 test images in order).
        spec: an own-loss :class:`AttackSpec` (reference or own-loss mode).
        n_levels: ``K``; step_size, epsilon: pixel units (reference MNIST: 2/255, 0.3).
        labels, head: for the label losses (``head`` for :data:`HEAD_LOSSES`).
        augment: the augmentation; None: :func:`rotation_augment` of ``spec.rotation``.
        temperature, margin: NT-Xent temperature, triplet margin (reference 0.07, 0.5).

    Yields:
        ``n_levels`` detached tensors shaped like ``x``.
    """
    check_pgd_params(n_levels - 1, step_size, epsilon)
    check_images(x)
    if spec.loss == "displacement":
        raise ValueError("attack_levels runs the own-loss attacks; the displacement attack is pgd_trajectory's")
    aug = augment if augment is not None else rotation_augment(spec.rotation)
    grad_model = _raw(encoder) if spec.raw_gradient else encoder
    x = x.detach()
    fixed_view = None
    if spec.view_loss and not spec.augment_gradient:
        with torch.no_grad():
            fixed_view = encoder(aug(x, generator))

    def step(adv: torch.Tensor) -> torch.Tensor:
        adv = adv.detach().requires_grad_(True)
        with torch.enable_grad():
            z_view = fixed_view
            if spec.view_loss and z_view is None:
                with torch.no_grad():
                    z_view = encoder(aug(x, generator))
            rotate_input = spec.augment_gradient and not spec.view_loss
            z = grad_model(aug(adv, generator) if rotate_input else adv)
            value = own_batch_loss(spec.loss, z, labels=labels, head=head, z_view=z_view, temperature=temperature,
                                   margin=margin)
            (grad,) = torch.autograd.grad(value, adv, allow_unused=True)
        return pgd_step(adv.detach(), x, torch.zeros_like(adv) if grad is None else grad, step_size, epsilon)

    def out(adv: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return (aug(adv, generator) if spec.augment_output else adv).detach()

    if spec.restarts:
        for k in range(int(n_levels)):
            adv = x.clone()
            for _ in range(k):
                adv = step(adv)
            yield out(adv)
        return
    adv = x.clone()
    for k in range(int(n_levels)):
        if k:
            adv = step(adv)
        yield out(adv)


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
    augment: Augment | None = None,
    augment_output: bool | None = None,
    augment_gradient: bool | None = None,
    temperature: float = 0.07,
    margin: float = 0.5,
) -> Iterator[torch.Tensor]:
    """Yield the images the reference's attack returns at levels ``k = 0..n_levels-1`` for one batch:
    :func:`attack_levels` with ``resolve_attack(loss, "reference", augment_output=...,
    augment_gradient=...)`` (separate attacks per level; ``augment`` default: the reference's
    per-batch nearest rotation, :func:`batch_rotation_view`)."""
    spec = resolve_attack(loss, "reference", augment_output=augment_output, augment_gradient=augment_gradient)
    return attack_levels(encoder, x, spec, n_levels, generator, step_size=step_size, epsilon=epsilon, labels=labels,
                         head=head, augment=augment, temperature=temperature, margin=margin)
