"""Batched reference augmentations: identities, known geometry, torchvision agreement, gradients, seeds."""

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from rmqm.data.transforms import (
    perspective,
    perspective_coefficients,
    perspective_corners,
    random_perspective,
    random_rotation,
    rotate,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def blobs(b=6, c=1, h=28, w=28, seed=0):
    """Smooth random images (interpolation of smooth images is nearly exact)."""
    g = gen(seed)
    small = torch.rand(b, c, h // 4, w // 4, generator=g)
    img = torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return img.clamp(0, 1)


def test_zero_parameters_give_the_input_back():
    x = blobs()
    assert torch.allclose(random_rotation(x, gen(), max_degrees=0.0), x, atol=1e-6)
    assert torch.allclose(random_perspective(x, gen(), distortion_scale=0.0, p=1.0), x, atol=1e-5)
    assert torch.equal(random_perspective(x, gen(), distortion_scale=0.5, p=0.0), x)


def test_shape_dtype_device_kept():
    for dtype in (torch.float32, torch.float64):
        x = blobs(3, 2, 16, 20).to(dtype)
        for out in (random_rotation(x, gen()), random_perspective(x, gen(), p=1.0)):
            assert out.shape == x.shape and out.dtype == dtype and out.device == x.device


def test_rotation_by_90_degrees_of_a_symmetric_pattern():
    # A pattern invariant under a quarter turn about the image centre is unchanged by +-90 deg;
    # an asymmetric one is rotated exactly like torch.rot90 (counter-clockwise as displayed).
    x = torch.zeros(1, 1, 8, 8)
    x[..., 1:3, 1:3] = 1.0
    sym = x + x.rot90(1, (2, 3)) + x.rot90(2, (2, 3)) + x.rot90(3, (2, 3))
    for angle in (90.0, -90.0, 180.0):
        assert torch.allclose(rotate(sym, torch.tensor([angle])), sym, atol=1e-5)
    assert torch.allclose(rotate(x, torch.tensor([90.0])), x.rot90(1, (2, 3)), atol=1e-5)


def test_rotation_matches_torchvision_bilinear():
    x = blobs(3)
    angles = torch.tensor([12.5, -7.0, 3.0])
    ours = rotate(x, angles)
    for i, a in enumerate(angles.tolist()):
        ref = TF.rotate(x[i], a, interpolation=InterpolationMode.BILINEAR)
        assert torch.allclose(ours[i], ref, atol=1e-4), (a, (ours[i] - ref).abs().max())


def test_random_rotation_angles_are_within_range():
    # A single bright pixel at radius r moves along an arc of at most max_degrees.
    x = torch.zeros(64, 1, 29, 29)
    x[..., 14, 24] = 1.0  # 10 pixels right of the centre pixel (14, 14)
    out = random_rotation(x, gen(3), max_degrees=15.0)
    flat = out.flatten(1).argmax(1)
    rows, cols = flat // 29, flat % 29
    angle = torch.rad2deg(torch.atan2(-(rows - 14).double(), (cols - 14).double()))
    assert angle.abs().max() <= 15.0 + 6.0  # + pixel quantisation at radius 10
    assert angle.abs().max() > 5.0 and angle.std() > 2.0


def test_perspective_matches_torchvision_with_the_same_corners():
    x = blobs(2)
    start, end = perspective_corners(2, 28, 28, gen(5), distortion_scale=0.5)
    ours = perspective(x, perspective_coefficients(start, end))
    for i in range(2):
        ref = TF.perspective(x[i], start.tolist(), end[i].tolist(), interpolation=InterpolationMode.BILINEAR)
        assert torch.allclose(ours[i], ref, atol=1e-4), (ours[i] - ref).abs().max()
    assert not torch.allclose(ours, x, atol=1e-2)


def test_perspective_corners_follow_torchvision_get_params_ranges():
    start, end = perspective_corners(4000, 28, 20, gen(1), distortion_scale=0.5)
    mw, mh = int(0.5 * 10), int(0.5 * 14)
    assert start.tolist() == [[0, 0], [19, 0], [19, 27], [0, 27]]
    dx, dy = (end - start)[..., 0], (end - start)[..., 1]
    assert set(dx[:, 0].tolist()) == set(range(mw + 1))
    assert set((-dx[:, 1]).tolist()) == set(range(mw + 1))
    assert set(dy[:, 0].tolist()) == set(range(mh + 1))
    assert set((-dy[:, 2]).tolist()) == set(range(mh + 1))
    # uniform offsets: mean m / 2
    assert abs(dx[:, 0].double().mean().item() - mw / 2) < 0.15


def test_perspective_probability_p():
    x = blobs(400, 1, 12, 12, seed=2)
    out = random_perspective(x, gen(4), distortion_scale=0.5, p=0.8)
    unchanged = (out == x).flatten(1).all(1).double().mean().item()
    assert 0.12 < unchanged < 0.28  # about 1 - p, plus the rare all-zero offsets


def test_same_seed_same_output_and_images_differ_across_batch():
    x = blobs(1).expand(8, 1, 28, 28).contiguous()
    for fn in (random_rotation, lambda im, g: random_perspective(im, g, p=1.0)):
        a, b = fn(x, gen(7)), fn(x, gen(7))
        assert torch.equal(a, b)
        assert not torch.equal(a, fn(x, gen(8)))
        distinct = {tuple(v) for v in a.flatten(1).round(decimals=4).tolist()}
        assert len(distinct) >= 6


@pytest.mark.parametrize("which", ["rotation", "perspective"])
def test_gradcheck_float64(which):
    x = blobs(2, 1, 6, 6).double().requires_grad_(True)

    def fn(im):
        if which == "rotation":
            return random_rotation(im, gen(0), max_degrees=15.0)
        return random_perspective(im, gen(0), distortion_scale=0.5, p=1.0)

    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5)
    x32 = blobs(4).requires_grad_(True)
    fn(x32.double()).sum().backward()
    assert x32.grad is not None and torch.isfinite(x32.grad).all() and x32.grad.abs().sum() > 0


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="generator"):
        random_rotation(blobs(1), 0)
    with pytest.raises(ValueError, match="rank|shape"):
        random_perspective(torch.zeros(28, 28), gen())
    with pytest.raises(ValueError, match="distortion_scale"):
        random_perspective(blobs(1), gen(), distortion_scale=1.5)
    with pytest.raises(ValueError, match="max_degrees"):
        random_rotation(blobs(1), gen(), max_degrees=-1.0)


def test_a_homography_whose_horizon_crosses_the_image_gives_finite_zero_filled_pixels():
    # Corners drawn by RandomPerspective.get_params(28, 28, 0.5) whose homography has
    # 1 + g x + h y = 0 inside the output: coordinates there are inf/NaN before clamping.
    start = torch.tensor([[0, 0], [27, 0], [27, 27], [0, 27]])
    end = torch.tensor([[[5, 7], [26, 7], [20, 20], [7, 26]]])
    c = perspective_coefficients(start, end)
    xs = torch.arange(28.0) + 0.5
    den = 1 + c[0, 6] * xs[None, :] + c[0, 7] * xs[:, None]
    assert (den < 0).any() and (den > 0).any()
    x = torch.rand(1, 1, 28, 28).requires_grad_(True)
    out = perspective(x, c)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    ref = TF.perspective(x[0].detach(), start.tolist(), end[0].tolist(), interpolation=InterpolationMode.BILINEAR)
    finite = torch.isfinite(ref)
    assert torch.allclose(out[0].detach()[finite], ref[finite], atol=1e-4)


def test_many_random_perspectives_are_finite():
    x = torch.rand(4096, 1, 28, 28)
    assert torch.isfinite(random_perspective(x, gen(11), distortion_scale=0.5, p=1.0)).all()


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (2, 3, 17, 20)])
def test_batch_rotation_equals_torchvision_random_rotation_on_a_batch_tensor(seed, shape):
    # The reference applies RandomRotation(15) to a whole batch tensor: one angle from the global
    # RNG, nearest, zero fill. The same seed in an explicit generator gives the same pixels.
    from torchvision import transforms as T

    from rmqm.data.transforms import batch_random_rotation

    x = torch.rand(*shape, generator=gen(100 + seed))
    torch.manual_seed(seed)
    expected = T.RandomRotation(15)(x)
    ours = batch_random_rotation(x, gen(seed))
    assert torch.equal(ours, expected)
    # one angle per call: a second call draws anew, like torchvision's second call
    torch.manual_seed(seed)
    T.RandomRotation(15)(x)
    second = T.RandomRotation(15)(x)
    g = gen(seed)
    batch_random_rotation(x, g)
    assert torch.equal(batch_random_rotation(x, g), second)


def test_batch_rotation_uses_one_angle_for_every_image_and_is_differentiable():
    from rmqm.data.transforms import batch_random_rotation, draw_rotation_angle, rotate_batch_nearest

    x = torch.rand(1, 1, 28, 28, generator=gen(3)).repeat(4, 1, 1, 1).requires_grad_(True)
    out = batch_random_rotation(x, gen(5))
    assert all(torch.equal(out[0], out[i]) for i in range(1, 4))
    angle = draw_rotation_angle(gen(5))
    assert -15.0 <= angle <= 15.0 and torch.equal(rotate_batch_nearest(x, angle), out)
    (grad,) = torch.autograd.grad(out.sum(), x)
    # nearest: each output pixel is one input pixel or the zero fill, so gradients are counts
    assert torch.equal(grad, grad.round()) and grad.sum() > 0
    assert torch.equal(rotate_batch_nearest(x, 0.0), x)
    with pytest.raises(ValueError, match="max_degrees"):
        draw_rotation_angle(gen(), max_degrees=200.0)
