"""InputAdapter: channel conversion, resizing and normalisation in front of any encoder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rmqm.models.adapters import LUMA_WEIGHTS, InputAdapter, as_size, convert_channels, resize_images
from rmqm.models.backbones import TinyCNN


class Recorder(nn.Module):
    """Returns the flattened input and remembers it, to see what the encoder was given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        return x.flatten(1)


def images(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_identity_case_is_the_encoder_itself() -> None:
    x = images((4, 1, 28, 28))
    net = TinyCNN(1, 8).eval()
    adapter = InputAdapter(net, in_channels=1, input_size=28)
    assert torch.equal(adapter(x), net(x))
    assert torch.equal(InputAdapter(net)(x), net(x))  # nothing given: nothing changed


def test_grey_to_rgb_repeats_the_channel_and_resizes_into_the_unit_range() -> None:
    rec = Recorder()
    x = images((3, 1, 28, 28))
    out = InputAdapter(rec, in_channels=3, input_size=(32, 40))(x)
    assert rec.seen is not None and rec.seen.shape == (3, 3, 32, 40)
    assert out.shape == (3, 3 * 32 * 40)
    assert torch.equal(rec.seen[:, 0], rec.seen[:, 1]) and torch.equal(rec.seen[:, 0], rec.seen[:, 2])
    assert rec.seen.min() >= 0.0 and rec.seen.max() <= 1.0


def test_downsizing_stays_in_range_and_keeps_a_constant_image_constant() -> None:
    rec = Recorder()
    InputAdapter(rec, input_size=7)(images((2, 3, 28, 28)))
    assert rec.seen is not None and rec.seen.shape == (2, 3, 7, 7)
    assert rec.seen.min() >= 0.0 and rec.seen.max() <= 1.0
    flat = torch.full((1, 1, 28, 28), 0.3)
    assert torch.allclose(resize_images(flat, (224, 224)), torch.full((1, 1, 224, 224), 0.3), atol=1e-6)
    assert torch.allclose(resize_images(flat, (9, 5)), torch.full((1, 1, 9, 5), 0.3), atol=1e-6)


def test_rgb_to_grey_is_the_bt601_luma() -> None:
    x = images((2, 3, 5, 5))
    grey = convert_channels(x, 1)
    r, g, b = LUMA_WEIGHTS
    assert grey.shape == (2, 1, 5, 5)
    assert torch.allclose(grey[:, 0], r * x[:, 0] + g * x[:, 1] + b * x[:, 2])
    white = torch.ones(1, 3, 2, 2)
    assert torch.allclose(convert_channels(white, 1), torch.ones(1, 1, 2, 2))  # weights sum to one


def test_normalisation_is_applied_after_conversion() -> None:
    rec = Recorder()
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = images((2, 1, 8, 8))
    InputAdapter(rec, in_channels=3, input_size=8, mean=mean, std=std)(x)
    assert rec.seen is not None
    for c in range(3):
        assert torch.allclose(rec.seen[:, c], (x[:, 0] - mean[c]) / std[c])


def test_gradient_flows_to_the_input() -> None:
    net = TinyCNN(3, 8).eval()
    adapter = InputAdapter(net, in_channels=3, input_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    x = images((2, 1, 28, 28)).requires_grad_(True)
    adapter(x).pow(2).sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_follows_the_module_to_a_dtype() -> None:
    adapter = InputAdapter(TinyCNN(1, 4), in_channels=1, mean=(0.5,), std=(0.5,)).double().eval()
    assert adapter(images((2, 1, 28, 28)).double()).dtype == torch.float64


@pytest.mark.parametrize("kwargs, message", [
    ({"in_channels": 0}, "in_channels must be a positive int"),
    ({"input_size": (0, 3)}, "input_size must be a positive int"),
    ({"input_size": (1, 2, 3)}, "input_size must be a positive int"),
    ({"mean": (0.5,)}, "give both mean and std"),
    ({"mean": (0.5, 0.5), "std": (0.2,)}, "same number of values"),
    ({"in_channels": 3, "mean": (0.5, 0.5), "std": (0.2, 0.2)}, "one value per channel"),
    ({"mean": (0.5,), "std": (0.0,)}, "std finite and > 0"),
])
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InputAdapter(nn.Identity(), **kwargs)


def test_unsupported_channel_conversion_and_bad_input() -> None:
    with pytest.raises(ValueError, match="only 1 -> 3"):
        InputAdapter(nn.Identity(), in_channels=3)(images((1, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        InputAdapter(nn.Identity())(images((4, 4)))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        InputAdapter(lambda x: x)  # type: ignore[arg-type]
    assert as_size(5) == (5, 5) and as_size([3, 4]) == (3, 4) and as_size(None) is None
