"""Input adapters: feed the study's images to an encoder that expects other ones.

The study's images are ``(B, C, H, W)`` tensors with pixels in ``[0, 1]`` (for example
1-channel 28x28 MNIST-like images). An encoder brought from elsewhere may expect 3-channel
224x224 images normalised with ImageNet statistics. :class:`InputAdapter` sits in front of
it and, inside ``forward`` (so that gradients flow through it, as PGD needs), does:

1. channel conversion: 1 -> 3 by repeating the grey channel; 3 -> 1 by the ITU-R BT.601
   luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (the weights of ``PIL.Image.convert("L")``);
2. resizing to the encoder's input size with bilinear interpolation and antialiasing
   (:func:`torch.nn.functional.interpolate`, ``align_corners=False``); both filters have
   non-negative weights that sum to one, so pixels stay in ``[0, 1]``;
3. normalisation ``(x - mean) / std`` per channel, when the encoder was trained with one.

Each step is skipped when it is not needed, so an adapter whose encoder expects exactly the
study's images and no normalisation is the encoder itself (bit for bit).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LUMA_WEIGHTS", "InputAdapter", "as_size", "convert_channels", "resize_images"]


#: ITU-R BT.601 luma weights (R, G, B) used to turn RGB into grey.
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)


def as_size(size: int | Sequence[int] | None, what: str = "input_size") -> tuple[int, int] | None:
    """``size`` as ``(H, W)``: an int means a square; None stays None.

    Raises:
        ValueError: not a positive int or a pair of positive ints.
    """
    if size is None:
        return None
    values = [size] if isinstance(size, int) else list(size)
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"{what} must be a positive int or a pair (height, width) of positive ints; got {size!r}")
    return int(values[0]), int(values[1])


def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Images ``(B, C, H, W)`` with ``channels`` channels: 1 -> 3 repeats, 3 -> 1 takes the
    BT.601 luma (:data:`LUMA_WEIGHTS`); the same count is returned unchanged.

    Raises:
        ValueError: ``x`` is not 4-D, or a conversion other than 1 <-> 3 is asked for.
    """
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W); got shape {tuple(x.shape)}")
    have = x.shape[1]
    if have == channels:
        return x
    if have == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    if have == 3 and channels == 1:
        weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
        return (x * weights).sum(dim=1, keepdim=True)
    raise ValueError(f"cannot convert images with {have} channel(s) to {channels}: only 1 -> 3 (repeat) "
                     "and 3 -> 1 (luma) are defined; give the encoder images with the channels it expects")


def resize_images(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Images ``(B, C, H, W)`` resized to ``size = (H', W')`` (bilinear, antialiased when
    shrinking); unchanged when already that size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


class InputAdapter(nn.Module):
    """Wrap ``encoder`` so that it takes the study's ``[0, 1]`` images of any size and 1 or 3 channels.

    ``forward(x)``: ``x`` ``(B, C, H, W)`` in ``[0, 1]`` -> ``encoder(normalise(resize(convert(x))))``
    (see the module docstring). The encoder's output is returned as it is; the study checks that
    it is ``(B, d)``.

    Args:
        encoder: a module taking ``(B, in_channels, *input_size)`` images, normalised with
            ``mean``/``std`` when they are given.
        in_channels: channels the encoder expects (None: those of the input).
        input_size: ``H`` (square) or ``(H, W)`` the encoder expects (None: that of the input).
        mean, std: per-channel normalisation (``in_channels`` values each, or one value for
            all); None for neither.
        name: a label used in result tables (default: the encoder's ``name`` attribute, or
            its class name).

    Raises:
        TypeError: ``encoder`` is not an ``nn.Module``.
        ValueError: a bad ``in_channels``/``input_size``, only one of mean and std, values
            that are not finite, a ``std`` that is not positive, or a count that does not
            match ``in_channels``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        in_channels: int | None = None,
        input_size: int | Sequence[int] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"encoder must be a torch.nn.Module; got {type(encoder).__name__}")
        if in_channels is not None and (isinstance(in_channels, bool) or not isinstance(in_channels, int)
                                        or in_channels < 1):
            raise ValueError(f"in_channels must be a positive int (or None); got {in_channels!r}")
        self.encoder = encoder
        self.in_channels = in_channels
        self.input_size = as_size(input_size)
        self.name = name or str(getattr(encoder, "name", type(encoder).__name__))
        self.mean: torch.Tensor | None
        self.std: torch.Tensor | None
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        if mean is None or std is None:
            self.mean = None
            self.std = None
            return
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean_t.numel() != std_t.numel() or mean_t.numel() == 0:
            raise ValueError(f"mean and std need the same number of values; got {mean_t.numel()} and {std_t.numel()}")
        if in_channels is not None and mean_t.numel() not in (1, in_channels):
            raise ValueError(f"mean and std need one value per channel ({in_channels}) or one for all; "
                             f"got {mean_t.numel()}")
        if not (torch.isfinite(mean_t).all() and torch.isfinite(std_t).all()) or (std_t <= 0).any():
            raise ValueError(f"mean must be finite and std finite and > 0; got {mean_t.tolist()}, {std_t.tolist()}")
        self.register_buffer("mean", mean_t.reshape(1, -1, 1, 1))
        self.register_buffer("std", std_t.reshape(1, -1, 1, 1))

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's input for the study's images ``x`` ``(B, C, H, W)`` in ``[0, 1]``."""
        if x.ndim != 4:
            raise ValueError(f"expected images of shape (B, C, H, W); got shape {tuple(x.shape)}")
        channels = self.in_channels if self.in_channels is not None else x.shape[1]
        if channels < x.shape[1]:  # fewer channels first: less to resize (the two steps commute)
            x = convert_channels(x, channels)
        if self.input_size is not None:
            x = resize_images(x, self.input_size)
        x = convert_channels(x, channels)
        if self.mean is not None and self.std is not None:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` images in ``[0, 1]`` -> the encoder's output (``(B, d)`` embeddings)."""
        return self.encoder(self.adapt(x))

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, input_size={self.input_size}, normalise={self.mean is not None}"
