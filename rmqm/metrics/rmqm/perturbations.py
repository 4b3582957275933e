"""Alterations of RMQM: white noise levels and PGD trajectories."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from rmqm._utils.validation import check_choice, check_image_batch, check_real
from rmqm.losses.contrastive import nt_xent_loss

__all__ = [
    "AttackLoss", "ATTACK_LOSSES", "check_images", "noise_levels", "white_noise_levels", "make_attack_loss",
    "check_n_levels", "check_pgd_params", "pgd_step", "pgd_trajectory", "pgd_attack", "NOISE_SCHEDULES",
    "PER_SAMPLE_LOSSES",
]


#: Per-sample loss ``(z_adv: (B, d)) -> (B,)`` that PGD ascends.
AttackLoss = Callable[[torch.Tensor], torch.Tensor]


#: Every PGD loss :func:`rmqm.metrics.rmqm.measure.measure_rmqm` knows: the label-free displacement
#: and the models' own training losses (:data:`rmqm.metrics.rmqm.attacks.OWN_LOSSES`).
ATTACK_LOSSES: tuple[str, ...] = ("displacement", "cross-entropy", "triplet-entropy", "supervised-triplet", "nt-xent",
                                  "instance-triplet", "vicreg")

#: The losses :func:`make_attack_loss` builds as per-sample losses.
PER_SAMPLE_LOSSES: tuple[str, ...] = ("displacement", "cross-entropy", "nt-xent")

#: White-noise schedules: ``"fresh"`` -- a new draw per level (the reference), ``"nested"`` -- one
#: draw scaled by each level's sigma (``white_noise_levels(..., nested=True)``).
NOISE_SCHEDULES: tuple[str, ...] = ("fresh", "nested")


def check_images(x: torch.Tensor, name: str = "images") -> None:
    """Raise unless ``x`` is a finite floating-point tensor ``(B, C, H, W)`` (any float dtype)
    with values in ``[0, 1]``.

    Raises:
        TypeError: not a floating-point tensor.
        ValueError: not rank 4, empty, NaN/inf, or pixels outside ``[0, 1]``.
    """
    check_image_batch(x, name, dtypes=None)


def noise_levels(sigma_max: float = 1.0, n_levels: int = 100) -> torch.Tensor:
    """Noise standard deviations ``linspace(0, sigma_max, n_levels)`` (pixel units).

    Level 0 (``sigma = 0``) is the clean input.
    """
    if not math.isfinite(sigma_max) or sigma_max < 0:
        raise ValueError(f"sigma_max must be a finite number >= 0; got {sigma_max}")
    check_n_levels(n_levels)
    return torch.linspace(0.0, float(sigma_max), int(n_levels), dtype=torch.float64)


def white_noise_levels(
    x: torch.Tensor,
    sigmas: torch.Tensor,
    generator: torch.Generator,
    *,
    nested: bool = False,
    clip: bool = True,
) -> Iterator[torch.Tensor]:
    """Yield ``x_k = clip(x + sigma_k * eps_k, 0, 1)`` for each level ``k`` in order.

    Args:
        x: clean images ``(B, C, H, W)`` in ``[0, 1]``.
        sigmas: ``(L,)`` noise standard deviations, ``>= 0`` (see :func:`noise_levels`).
        generator: a CPU ``torch.Generator``; the noise is drawn on the CPU in level
            order, so results do not depend on the device.
        nested: draw ``eps`` once and reuse it at every level (nested noise).
        clip: clamp to ``[0, 1]`` (the reference does; turn off for analytic checks).

    Yields:
        ``L`` tensors shaped like ``x``, on ``x``'s device.
    """
    check_images(x)
    sig = torch.as_tensor(sigmas, dtype=torch.float64)
    if sig.ndim != 1 or not torch.isfinite(sig).all() or (sig < 0).any():
        raise ValueError("sigmas must be a 1-D tensor of finite values >= 0")
    shared = torch.randn(x.shape, generator=generator, dtype=x.dtype) if nested else None
    for sigma in sig.tolist():
        eps = shared if shared is not None else torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x_k = x + sigma * eps.to(x.device)
        yield x_k.clamp(0.0, 1.0) if clip else x_k


def make_attack_loss(
    name: str,
    z_clean: torch.Tensor,
    *,
    normalize: bool = True,
    labels: torch.Tensor | None = None,
    head: nn.Module | None = None,
    z_view: torch.Tensor | None = None,
    temperature: float = 0.07,
    generator: torch.Generator | None = None,
    anchor_shift: float = 1e-3,
) -> AttackLoss:
    """Build a per-sample loss that PGD ascends.

    Args:
        name: ``"displacement"`` (label-free; default), ``"cross-entropy"`` (needs
            ``labels`` and ``head``) or ``"nt-xent"`` (needs ``z_view``, the embeddings
            of a fixed augmented view of the clean batch).
        z_clean: ``(B, d)`` embeddings of the clean batch (detached).
        normalize: compare L2-normalised embeddings (as the RMQM distances do).
        head: maps raw embeddings ``(B, d)`` to logits ``(B, n_classes)``.
        temperature: NT-Xent temperature (reference 0.07); the loss is
            :func:`rmqm.losses.contrastive.nt_xent_loss` with ``reduction="none"``, so it returns
            one value per point, and exactly 0 for a batch of one point (no negatives).
        generator: seeds the displacement loss's tie-break direction.
        anchor_shift: size of that direction (see below).

    The displacement loss is ``||g(z') - g(z) + eta * u||^2`` with ``g`` the optional
    normalisation and ``u`` a seeded random unit vector per point: the plain
    ``||g(z') - g(z)||^2`` has an exactly zero gradient at the clean image (a
    minimum), so without a random start PGD would never move; the small anchor shift
    ``eta`` sets the first step's direction and is negligible afterwards.
    """
    check_choice(name, PER_SAMPLE_LOSSES, "attack loss")
    g: Callable[[torch.Tensor], torch.Tensor] = (lambda z: F.normalize(z, dim=1)) if normalize else (lambda z: z)
    if name == "displacement":
        u = torch.randn(z_clean.shape, generator=generator, dtype=z_clean.dtype).to(z_clean.device)
        anchor = (g(z_clean) - anchor_shift * F.normalize(u, dim=1)).detach()
        return lambda z: (g(z) - anchor).pow(2).sum(dim=1)
    if name == "cross-entropy":
        if head is None or labels is None:
            raise ValueError("the cross-entropy attack needs a classifier `head` and `labels`")
        y = labels.to(z_clean.device)
        return lambda z: F.cross_entropy(head(z), y, reduction="none")
    if z_view is None:
        raise ValueError("the nt-xent attack needs `z_view`, embeddings of a fixed augmented view")
    check_real(temperature, "temperature", low=0.0, low_open=True)
    view = z_view.detach()
    # SimCLR's loss of each positive pair (z_i, view_i), both directions averaged; the
    # negatives are the other 2B - 2 embeddings (none for B = 1: the loss is then 0).
    return lambda z: nt_xent_loss(z, view, temperature, reduction="none")


def check_n_levels(n_levels: int) -> int:
    """``n_levels`` (levels including the clean one) as an int >= 3: RMQM needs two steps.

    Raises:
        ValueError: not an integral number >= 3.
    """
    if int(n_levels) != n_levels or n_levels < 3:
        raise ValueError(f"n_levels must be an integer >= 3 (RMQM needs two steps); got {n_levels}")
    return int(n_levels)


def check_pgd_params(n_steps: int, step_size: float, epsilon: float) -> None:
    """Raise unless ``n_steps`` is an integer >= 0, ``0 <= step_size <= 1`` and ``epsilon >= 0`` (finite).

    A step larger than the whole pixel range ``[0, 1]`` is meaningless (and overflows float32).
    """
    if int(n_steps) != n_steps or n_steps < 0:
        raise ValueError(f"the number of PGD steps must be an integer >= 0; got {n_steps}")
    if not math.isfinite(step_size) or not 0 <= step_size <= 1:
        raise ValueError(f"step_size must be a number in [0, 1] (pixel units); got {step_size}")
    if not math.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon (L-infinity radius) must be a finite number >= 0; got {epsilon}")


def pgd_step(x_adv: torch.Tensor, x: torch.Tensor, grad: torch.Tensor, step_size: float,
             epsilon: float) -> torch.Tensor:
    """One PGD step: ``x_adv + step_size * sign(grad)``, projected onto the L-inf ball of radius
    ``epsilon`` around ``x`` and clamped to ``[0, 1]`` (the reference's order)."""
    x_next = x_adv + step_size * grad.sign()
    x_next = torch.max(torch.min(x_next, x + epsilon), x - epsilon)
    return x_next.clamp(0.0, 1.0)


def pgd_trajectory(
    encoder: nn.Module,
    x: torch.Tensor,
    loss_fn: AttackLoss,
    n_levels: int = 30,
    step_size: float = 1 / 255,
    epsilon: float = 0.3,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x_k, z_k)`` for ``k = 0..n_levels-1`` along one PGD trajectory.

    ``x_k`` is the result of ``k`` sign-gradient steps of size ``step_size`` that
    ascend ``loss_fn(encoder(x'))`` from ``x`` (no random start), each followed by the
    projection onto ``{x' : ||x' - x||_inf <= epsilon} ∩ [0, 1]^D``; ``z_k`` is
    ``encoder(x_k)``, taken from the forward pass that the next step needs anyway,
    so the whole schedule costs ``n_levels - 1`` forward+backward passes and one
    forward pass. Equal to :func:`pgd_attack` with ``k`` steps for every ``k``.

    Args:
        encoder: maps ``(B, C, H, W)`` in ``[0, 1]`` to ``(B, d)``; put it in eval mode.
        x: clean images ``(B, C, H, W)`` in ``[0, 1]``.
        loss_fn: per-sample loss to ascend (see :func:`make_attack_loss`).
        n_levels: number of levels ``K`` (``K - 1`` steps).
        step_size: ``alpha`` in pixel units (reference: 1/255 CIFAR, 2/255 MNIST).
        epsilon: L-infinity radius in pixel units (reference 0.3).

    Yields:
        ``(x_k, z_k)``, both detached.
    """
    check_pgd_params(n_levels - 1, step_size, epsilon)
    check_images(x)
    x = x.detach()
    x_adv = x.clone()
    for k in range(n_levels):
        if k == n_levels - 1:
            with torch.no_grad():
                yield x_adv, encoder(x_adv)
            return
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            z = encoder(x_adv)
            (grad,) = torch.autograd.grad(loss_fn(z).sum(), x_adv)
        x_adv = x_adv.detach()
        yield x_adv, z.detach()
        x_adv = pgd_step(x_adv, x, grad, step_size, epsilon)


def pgd_attack(
    encoder: nn.Module,
    x: torch.Tensor,
    loss_fn: AttackLoss,
    n_steps: int,
    step_size: float = 1 / 255,
    epsilon: float = 0.3,
) -> torch.Tensor:
    """One independent PGD attack of ``n_steps`` steps (the reference scheme, per level).

    Same update and projection as :func:`pgd_trajectory`; used as its ground truth and
    in the benchmark. Returns the adversarial images ``(B, C, H, W)``, detached.
    """
    check_pgd_params(n_steps, step_size, epsilon)
    check_images(x)
    x = x.detach()
    x_adv = x.clone()
    for _ in range(int(n_steps)):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(loss_fn(encoder(x_adv)).sum(), x_adv)
        x_adv = pgd_step(x_adv.detach(), x, grad, step_size, epsilon)
    return x_adv
