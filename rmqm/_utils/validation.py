"""Small input checks shared by every layer: they name the bad argument and say what is wanted."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

__all__ = ['check_real', 'check_int', 'check_image_batch', 'check_bounds']


def check_real(
    value: Any, name: str, *, low: float = -math.inf, high: float = math.inf, low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float in ``[low, high]`` (open at ``low`` with ``low_open``, at
    ``high`` with ``high_open``).

    Raises:
        TypeError: ``value`` is not a real number (bools are refused).
        ValueError: ``value`` is NaN, infinite or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value}")
    if value < low or (low_open and value == low) or value > high or (high_open and value == high):
        if high == math.inf:
            bound = {(0.0, True): "positive", (0.0, False): "non-negative"}.get(
                (low, low_open), f"{'>' if low_open else '>='} {low:g}")
        else:
            bound = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be {bound}; got {value:g}")
    return value


def check_int(value: Any, name: str, *, low: int | None = None) -> int:
    """``value`` as an int (``>= low`` when given); bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value}")
    return int(value)


def check_image_batch(images: Any, name: str = "images") -> torch.Tensor:
    """Raise unless ``images`` is a non-empty float32/float64 ``(B, C, H, W)`` tensor of finite
    pixels in ``[0, 1]``; returns it unchanged."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W); got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name} must be (B, C, H, W); got shape {tuple(images.shape)}")
    if images.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64 with pixels in [0, 1]; got {images.dtype}")
    if images.numel() == 0:
        raise ValueError(f"{name} are empty: shape {tuple(images.shape)} has a dimension of size 0")
    lo, hi = torch.aminmax(images.detach())
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)) or not torch.isfinite(images).all():
        raise ValueError(f"{name} contain NaN or inf values")
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must have pixels in [0, 1]; got values in [{lo:.4g}, {hi:.4g}]")
    return images


def check_confidence(confidence: float) -> float:

    return check_real(confidence, "confidence", low=0.0, high=1.0, low_open=True, high_open=True)


def check_bounds(bounds: Any) -> tuple[float, float] | None:
    """``None`` or a ``(low, high)`` pair of numbers with ``low < high`` (not NaN)."""
    if bounds is None:
        return None
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be None or a (low, high) pair of numbers; got {bounds!r}") from None
    if not low < high:
        raise ValueError(f"bounds must be (low, high) with low < high; got {bounds!r}")
    return low, high
