"""The reference code's training augmentations, batched and seeded: a random rotation and a random
perspective as pure functions of a ``torch.Generator`` (one ``F.grid_sample`` call per batch).

The RMQM reference code trains every MNIST encoder on torchvision augmentations
(/work/shared/methods/rmqm.md, "What the reference code does in training"): single-view methods on
``RandomPerspective(distortion_scale=0.5, p=0.5)``, two-view methods on ``RandomRotation(15)`` for
one view and ``RandomPerspective(0.5, p=0.8)`` for the other. torchvision draws one set of
parameters per image from the global RNG and warps images one at a time; here every image of the
batch gets its own parameters drawn from ``generator`` (so a seed fixes the views) and the whole
batch is warped at once. Both functions are differentiable in ``images`` (the PGD attack of the
reference takes gradients through the augmentation).

Conventions, as torchvision's tensor backend: pixel ``(i, j)`` is the unit square centred at
``(j + 0.5, i + 0.5)`` (``align_corners=False``), bilinear interpolation, zero fill outside the
image (torchvision's ``fill=None``; with ``fill=0`` torchvision also multiplies by a warped mask,
which differs only in the one-pixel border of the warped image).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rmqm._utils.validation import check_real

__all__ = ['random_rotation', 'random_perspective', 'rotate', 'perspective_coefficients', 'perspective',
           'perspective_corners', 'rotate_batch_nearest', 'batch_random_rotation', 'draw_rotation_angle']


def _check(images: torch.Tensor, generator: torch.Generator | None = None) -> None:
    """Structural checks only (no pass over the pixel values: this runs on every training batch)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (B, C, H, W); got {type(images).__name__}")
    if images.ndim != 4 or images.numel() == 0:
        raise ValueError(f"images must be a non-empty (B, C, H, W) tensor; got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor with pixels in [0, 1]; got {images.dtype}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)); "
                        f"got {type(generator).__name__}")


def _sample(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def _homography_grid(coefficients: torch.Tensor, height: int, width: int, dtype: torch.dtype,
                     device: torch.device) -> torch.Tensor:
    """The ``(B, H, W, 2)`` sampling grid (``grid_sample`` coordinates, ``align_corners=False``) of
    one homography per image, ``(B, 8)`` coefficients in pixel coordinates (pixel centres at
    ``j + 0.5``), computed with broadcast elementwise operations (cheaper than a batched matmul
    over the ``H W`` points)."""
    c = coefficients.to(device, dtype)[:, :, None, None]  # (B, 8, 1, 1)
    xs = (torch.arange(width, device=device, dtype=dtype) + 0.5)[None, :]  # (1, W)
    ys = (torch.arange(height, device=device, dtype=dtype) + 0.5)[:, None]  # (H, 1)
    den = c[:, 6] * xs + c[:, 7] * ys + 1.0  # (B, H, W)
    gx = (c[:, 0] * xs + c[:, 1] * ys + c[:, 2]) / den
    gy = (c[:, 3] * xs + c[:, 4] * ys + c[:, 5]) / den
    grid = torch.stack([gx * (2.0 / width) - 1.0, gy * (2.0 / height) - 1.0], -1)
    # Where the homography's horizon crosses the output (den -> 0: rare, with strong distortion)
    # the coordinates blow up to inf or NaN. Anything beyond [-2, 2] samples only the zero fill
    # (the image is [-1, 1] plus half a pixel), so clamping there changes no finite result.
    return torch.nan_to_num(grid, nan=2.0, posinf=2.0, neginf=-2.0).clamp(-2.0, 2.0)


def rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Each image rotated counter-clockwise (as displayed, y down) by its own angle about its centre.

    Same geometry as ``torchvision.transforms.v2.functional.rotate(img, angle, BILINEAR)`` with
    ``expand=False``, ``center=None``: output pixel centre ``p`` (relative to the image centre)
    samples the input at ``R(angle) p`` with ``R = [[cos, -sin], [sin, cos]]``.

    Args:
        images: ``(B, C, H, W)`` floating-point pixels.
        degrees: ``(B,)`` angles in degrees (any device; moved to ``images``' device).

    Returns:
        ``(B, C, H, W)``, same dtype and device as ``images``; zero outside the rotated input.
    """
    _check(images)
    b, _, h, w = images.shape
    if not isinstance(degrees, torch.Tensor) or degrees.shape != (b,):
        raise ValueError(f"degrees must be a tensor of shape ({b},), one angle per image; got "
                         f"{getattr(degrees, 'shape', type(degrees).__name__)}")
    rad = torch.deg2rad(degrees.to(images.device, torch.float64))
    cos, sin = torch.cos(rad), torch.sin(rad)
    cx, cy = w / 2.0, h / 2.0  # the centre, in pixel coordinates
    zero = torch.zeros_like(cos)
    # input = R (output - centre) + centre, as a homography without perspective terms
    coefficients = torch.stack([cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, zero, zero], 1)
    return _sample(images, _homography_grid(coefficients, h, w, images.dtype, images.device))


def random_rotation(images: torch.Tensor, generator: torch.Generator, max_degrees: float = 15.0) -> torch.Tensor:
    """torchvision ``RandomRotation(max_degrees)`` per image, batched: an angle uniform in
    ``[-max_degrees, max_degrees]`` degrees, rotation about the centre, zero fill, bilinear.

    torchvision's own default interpolation for ``RandomRotation`` is nearest; bilinear is used here
    so that the result is differentiable in ``images`` (the reference's PGD attack differentiates
    through this augmentation).

    Args:
        images: ``(B, C, H, W)`` floating-point pixels in ``[0, 1]``.
        generator: the source of the ``B`` angles (drawn on the generator's device).
        max_degrees: in ``[0, 180]``.

    Returns:
        ``(B, C, H, W)`` tensor of ``images``' dtype and device.
    """
    _check(images, generator)
    max_degrees = check_real(max_degrees, "max_degrees", low=0.0, high=180.0)
    u = torch.rand(images.shape[0], generator=generator, device=generator.device, dtype=torch.float64)
    return rotate(images, (2.0 * u - 1.0) * max_degrees)


def draw_rotation_angle(generator: torch.Generator, max_degrees: float = 15.0) -> float:
    """One angle as torchvision's ``RandomRotation.get_params`` draws it, from ``generator``:
    ``float(torch.empty(1).uniform_(-max_degrees, max_degrees).item())`` (a float32 draw).

    With ``generator`` seeded like the global RNG (``torch.manual_seed(s)`` against
    ``torch.Generator().manual_seed(s)``) the draw equals torchvision's."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}")
    max_degrees = check_real(max_degrees, "max_degrees", low=0.0, high=180.0)
    return float(torch.empty(1).uniform_(-max_degrees, max_degrees, generator=generator).item())


def rotate_batch_nearest(images: torch.Tensor, angle: float) -> torch.Tensor:
    """The whole batch rotated counter-clockwise by ONE angle, nearest interpolation, zero fill:
    torchvision's tensor ``rotate(images, angle, InterpolationMode.NEAREST, fill=0)`` op for op
    (the inverse affine matrix of ``_get_inverse_affine_matrix`` in Python floats, the grid of
    ``_gen_affine_grid`` in ``images``' dtype, ``grid_sample(mode="nearest",
    padding_mode="zeros", align_corners=False)``), so the pixels agree exactly. With ``fill=0``
    torchvision's extra mask channel sets to 0 exactly the pixels that zero padding already
    leaves at 0, so it is omitted. Differentiable in ``images`` (each output pixel is one input
    pixel or 0).

    Args:
        images: ``(B, C, H, W)`` floating-point pixels; angle: degrees.

    Returns:
        ``(B, C, H, W)`` of ``images``' dtype and device.
    """
    _check(images)
    angle = check_real(angle, "angle")
    b, _, h, w = images.shape
    rot = math.radians(-angle)  # torchvision's rotate passes -angle to the inverse matrix
    a, bb, c, d = math.cos(rot), -math.sin(rot), math.sin(rot), math.cos(rot)
    matrix = [d, -bb, 0.0, -c, a, 0.0]  # centre (0, 0), no translation, scale 1, no shear
    theta = torch.tensor(matrix, dtype=images.dtype, device=images.device).reshape(1, 2, 3)
    base = torch.empty(1, h, w, 3, dtype=images.dtype, device=images.device)
    base[..., 0].copy_(torch.linspace(-w * 0.5 + 0.5, w * 0.5 + 0.5 - 1, steps=w, device=images.device))
    base[..., 1].copy_(torch.linspace(-h * 0.5 + 0.5, h * 0.5 + 0.5 - 1, steps=h, device=images.device).unsqueeze_(-1))
    base[..., 2].fill_(1)
    scaled = theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], dtype=images.dtype, device=images.device)
    grid = base.view(1, h * w, 3).bmm(scaled).view(1, h, w, 2).expand(b, h, w, 2)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def batch_random_rotation(images: torch.Tensor, generator: torch.Generator, max_degrees: float = 15.0) -> torch.Tensor:
    """torchvision's ``RandomRotation(max_degrees)`` applied to a whole batch TENSOR, as the RMQM
    reference's PGD attack applies ``Compose([RandomRotation(15), Normalize(...)])`` to its batch
    (its ``src/attacks.py``, called from ``generate_embeddings_adv_mnist.py``): ONE angle for
    the whole batch (:func:`draw_rotation_angle`), nearest interpolation, zero fill
    (:func:`rotate_batch_nearest`). Each call draws a new angle.

    Args:
        images: ``(B, C, H, W)`` floating-point pixels in ``[0, 1]``.
        generator: the source of the angle (CPU draw, as torchvision's).
        max_degrees: in ``[0, 180]``.
    """
    _check(images, generator)
    return rotate_batch_nearest(images, draw_rotation_angle(generator, max_degrees))


def perspective_corners(
    batch: int, height: int, width: int, generator: torch.Generator, distortion_scale: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random corner displacements as torchvision ``RandomPerspective.get_params`` draws them.

    Per image, top-left ``(randint(0, m_w + 1), randint(0, m_h + 1))``, top-right
    ``(randint(W - m_w - 1, W), randint(0, m_h + 1))``, bottom-right and bottom-left alike, with
    ``m_w = int(distortion_scale * (W // 2))``, ``m_h = int(distortion_scale * (H // 2))``.

    Returns:
        ``(start, end)``: ``(4, 2)`` start points ``[[0, 0], [W-1, 0], [W-1, H-1], [0, H-1]]`` (x, y)
        and ``(B, 4, 2)`` end points, int64 on the generator's device.
    """
    distortion_scale = check_real(distortion_scale, "distortion_scale", low=0.0, high=1.0)
    mw, mh = int(distortion_scale * (width // 2)), int(distortion_scale * (height // 2))
    dev = generator.device
    off_x = torch.randint(0, mw + 1, (batch, 4), generator=generator, device=dev)
    off_y = torch.randint(0, mh + 1, (batch, 4), generator=generator, device=dev)
    start = torch.tensor([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], device=dev)
    # Each corner moves inwards by an offset uniform on 0..m: for right/bottom coordinates
    # randint(W - m - 1, W) = (W - 1) - (m - u) and m - u is uniform on 0..m as u is.
    inward = torch.tensor([[1, 1], [-1, 1], [-1, -1], [1, -1]], device=dev)
    return start, start + inward * torch.stack([off_x, off_y], -1)


def perspective_coefficients(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """The 8 homography coefficients ``(a, b, c, d, e, f, g, h)`` that map each output point of
    ``end`` to its input point of ``start``, ``(x, y) -> ((a x + b y + c) / (g x + h y + 1),
    (d x + e y + f) / (g x + h y + 1))``, as torchvision's ``_get_perspective_coeffs`` (a batched
    float64 ``torch.linalg.solve`` of its 8x8 system instead of one least squares per image).

    Args:
        start: ``(4, 2)`` or ``(B, 4, 2)`` input corners ``(x, y)``; end: ``(B, 4, 2)`` output corners.

    Returns:
        ``(B, 8)`` float64 coefficients.
    """
    end = end.to(torch.float64)
    start = start.to(end.device, torch.float64).expand_as(end)
    x, y = end[..., 0], end[..., 1]
    u, v = start[..., 0], start[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_x = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)  # (B, 4, 8)
    rows_y = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)
    a = torch.stack([rows_x, rows_y], 2).reshape(end.shape[0], 8, 8)
    rhs = torch.stack([u, v], -1).reshape(end.shape[0], 8)
    return torch.linalg.solve(a, rhs)


def perspective(images: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """Each image warped by its own homography (as ``torchvision.transforms.v2.functional.perspective``
    with bilinear interpolation and ``fill=None``): output pixel centre ``(x, y)`` samples the input
    at the image of ``(x, y)`` by ``coefficients`` (see :func:`perspective_coefficients`).

    Args:
        images: ``(B, C, H, W)`` floating-point pixels; coefficients: ``(B, 8)``.

    Returns:
        ``(B, C, H, W)`` of ``images``' dtype and device.
    """
    _check(images)
    b, _, h, w = images.shape
    if not isinstance(coefficients, torch.Tensor) or coefficients.shape != (b, 8):
        raise ValueError(f"coefficients must be a ({b}, 8) tensor; got "
                         f"{getattr(coefficients, 'shape', type(coefficients).__name__)}")
    return _sample(images, _homography_grid(coefficients, h, w, images.dtype, images.device))


def random_perspective(
    images: torch.Tensor, generator: torch.Generator, distortion_scale: float = 0.5, p: float = 0.5,
) -> torch.Tensor:
    """torchvision ``RandomPerspective(distortion_scale, p)`` per image, batched: with probability
    ``p`` an image is warped by a homography moving its four corners inwards by random integer
    offsets drawn as ``RandomPerspective.get_params`` draws them (:func:`perspective_corners`);
    otherwise it is returned unchanged. Bilinear, zero fill.

    Args:
        images: ``(B, C, H, W)`` floating-point pixels in ``[0, 1]``.
        generator: the source of the coin flips and corners (drawn on the generator's device).
        distortion_scale: in ``[0, 1]``; p: in ``[0, 1]``.

    Returns:
        ``(B, C, H, W)`` tensor of ``images``' dtype and device.
    """
    _check(images, generator)
    distortion_scale = check_real(distortion_scale, "distortion_scale", low=0.0, high=1.0)
    p = check_real(p, "p", low=0.0, high=1.0)
    b, _, h, w = images.shape
    apply = torch.rand(b, generator=generator, device=generator.device, dtype=torch.float64) < p
    start, end = perspective_corners(b, h, w, generator, distortion_scale)
    warped = perspective(images, perspective_coefficients(start, end))
    return torch.where(apply.to(images.device).view(b, 1, 1, 1), warped, images)

