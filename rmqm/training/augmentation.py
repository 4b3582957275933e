"""The reference code's training views: which augmentation each pretraining method sees.

The reference code (the reference repository ByteFuse/representation-manifold-quality-metric, its
MNIST training scripts) trains EVERY method on augmented images, with no pixel noise. Single-view
methods (cross-entropy, triplet-entropy, supervised triplet) see
``RandomPerspective(distortion_scale=0.5, p=0.5)``; two-view methods (NT-Xent, instance triplet, and
VICReg here) see ``RandomRotation(15)`` for one view and ``RandomPerspective(0.5, p=0.8)`` for the
other. The batched, seeded implementations are in :mod:`rmqm.data.transforms`.

:func:`augment` (crop, flip, jitter, noise) is no longer used in training; it stays as the view
that the sweep jobs and ``rmqm measure`` hand to the NT-Xent attack (``measure_rmqm(..., augment=...)``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rmqm._utils.validation import check_image_batch, check_real
from rmqm.data.transforms import random_perspective, random_rotation

__all__ = ['SINGLE_VIEW', 'ROTATION_VIEW', 'PERSPECTIVE_VIEW', 'single_view', 'two_views', 'augment']


#: ``RandomPerspective`` settings of the single-view methods (distortion_scale, p).
SINGLE_VIEW: dict[str, float] = {"distortion_scale": 0.5, "p": 0.5}

#: ``RandomRotation`` bound (degrees) of the first view of the two-view methods.
ROTATION_VIEW: dict[str, float] = {"max_degrees": 15.0}

#: ``RandomPerspective`` settings of the second view of the two-view methods.
PERSPECTIVE_VIEW: dict[str, float] = {"distortion_scale": 0.5, "p": 0.8}


def single_view(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The training view of a single-view (supervised) method: a random perspective
    (distortion 0.5) applied to each image with probability 0.5.

    Args:
        images: ``(B, C, H, W)`` pixels in ``[0, 1]``; generator: draws every parameter.

    Returns:
        ``(B, C, H, W)`` of ``images``' dtype and device.
    """
    return random_perspective(images, generator, **SINGLE_VIEW)


def two_views(images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The two training views of a two-view (self-supervised) method: a random rotation of at
    most 15 degrees, then (drawn after it from the same generator) a random perspective
    (distortion 0.5, p 0.8).

    Returns:
        ``(rotated, perspective)``, each ``(B, C, H, W)`` of ``images``' dtype and device.
    """
    rotated = random_rotation(images, generator, **ROTATION_VIEW)
    return rotated, random_perspective(images, generator, **PERSPECTIVE_VIEW)


def augment(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    crop_scale: tuple[float, float] = (0.6, 1.0),
    max_rotation_deg: float = 15.0,
    flip: bool = True,
    jitter: float = 0.3,
    noise_std: float = 0.05,
) -> torch.Tensor:
    """A random augmented view of each image, suited to small (28x28) grayscale images.

    Per image: a random resized crop (area fraction in ``crop_scale``, random position) with a
    small rotation, a horizontal flip with probability 1/2, a brightness/contrast jitter of
    relative size ``jitter`` and additive Gaussian noise of standard deviation ``noise_std``.
    All randomness comes from ``generator`` (so a fixed seed gives a fixed view); the
    operations are differentiable in ``images``.

    Args:
        images: ``(B, C, H, W)`` float32/float64 pixels in ``[0, 1]``, ``B >= 1``.
        generator: source of randomness (its device is used to draw the random numbers).
        crop_scale: ``0 < lo <= hi <= 1``; ``max_rotation_deg`` in ``[0, 180]``;
            ``jitter`` in ``[0, 1]``; ``noise_std >= 0`` (pixel units).

    Returns:
        ``(B, C, H, W)`` tensor in ``[0, 1]`` on ``images``' device.
    """
    check_image_batch(images)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}")
    if not isinstance(crop_scale, (tuple, list)) or len(crop_scale) != 2:
        raise TypeError(f"crop_scale must be a (lo, hi) pair; got {crop_scale!r}")
    lo = check_real(crop_scale[0], "crop_scale[0]", low=0.0, high=1.0, low_open=True)
    hi = check_real(crop_scale[1], "crop_scale[1]", low=lo, high=1.0)
    max_rotation_deg = check_real(max_rotation_deg, "max_rotation_deg", low=0.0, high=180.0)
    jitter = check_real(jitter, "jitter", low=0.0, high=1.0)  # > 1 could invert the contrast
    noise_std = check_real(noise_std, "noise_std", low=0.0)
    b = images.shape[0]
    gdev = generator.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=gdev).to(images.device, images.dtype)

    u = rand(b, 7)
    scale = torch.sqrt(lo + (hi - lo) * u[:, 0])  # side fraction of the crop
    angle = math.radians(max_rotation_deg) * (2 * u[:, 1] - 1)
    sign = torch.where(u[:, 2] < 0.5, -1.0, 1.0) if flip else torch.ones_like(scale)
    tx = (1 - scale) * (2 * u[:, 3] - 1)  # keep the crop inside the image
    ty = (1 - scale) * (2 * u[:, 4] - 1)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack(
        [torch.stack([cos * sign, -sin, tx], 1), torch.stack([sin * sign, cos, ty], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    contrast = (1 + jitter * (2 * u[:, 5] - 1)).view(b, 1, 1, 1)
    brightness = (jitter / 2 * (2 * u[:, 6] - 1)).view(b, 1, 1, 1)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast + mean + brightness
    if noise_std > 0:
        noise = torch.randn(images.shape, generator=generator, device=gdev).to(images.device, images.dtype)
        out = out + noise_std * noise
    return out.clamp(0.0, 1.0)
