"""Small input checks shared by every layer: they name the bad argument and say what is wanted."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

__all__ = [
    'check_real', 'check_int', 'check_choice', 'check_confidence', 'check_bounds', 'check_image_batch',
    'check_columns', 'as_features', 'check_labels', 'as_vector', 'NotMeasurable',
]


class NotMeasurable(ValueError):
    """The data are valid but too few for the statistic (fewer than 3 configurations or pairs):
    a result with a reason, not a mistake of the caller. Callers that report "not measurable"
    catch this and only this, so a renamed column still fails loudly."""


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
    """``value`` as an int (``>= low`` when given).

    Raises:
        TypeError: ``value`` is not an integer (bools and floats are refused).
        ValueError: ``value < low``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value}")
    return int(value)


def check_choice(value: Any, choices: Iterable[str], name: str) -> str:
    """``value`` unchanged when it is one of ``choices``.

    Raises:
        ValueError: ``"unknown <name> <value>; choose one of [...]"`` otherwise.
    """
    options = list(choices)
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"unknown {name} {value!r}; choose one of {options}")
    return value


def check_confidence(confidence: Any) -> float:
    """The level of a two-sided interval as a float in the open interval ``(0, 1)``.

    Raises:
        TypeError: not a real number.
        ValueError: NaN, infinite, or outside ``(0, 1)``.
    """
    return check_real(confidence, "confidence", low=0.0, high=1.0, low_open=True, high_open=True)


def check_bounds(bounds: Any) -> tuple[float, float] | None:
    """``None`` or a ``(low, high)`` pair of numbers with ``low < high`` (not NaN).

    Raises:
        ValueError: not a pair of numbers, or ``low >= high``.
    """
    if bounds is None:
        return None
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be None or a (low, high) pair of numbers; got {bounds!r}") from None
    if not low < high:
        raise ValueError(f"bounds must be (low, high) with low < high; got {bounds!r}")
    return low, high


def check_image_batch(
    images: Any, name: str = "images", dtypes: Sequence[torch.dtype] | None = (torch.float32, torch.float64),
) -> torch.Tensor:
    """Raise unless ``images`` is a non-empty ``(B, C, H, W)`` tensor of finite pixels in ``[0, 1]``
    of one of ``dtypes`` (``None``: any floating-point dtype); returns it unchanged.

    Raises:
        TypeError: not a tensor, or of another dtype.
        ValueError: not rank 4, empty, NaN/inf, or pixels outside ``[0, 1]``.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W); got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have rank 4 (B, C, H, W); got shape {tuple(images.shape)}")
    if dtypes is None and not images.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor with pixels in [0, 1]; got {images.dtype}")
    if dtypes is not None and images.dtype not in dtypes:
        wanted = " or ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise TypeError(f"{name} must be {wanted} with pixels in [0, 1]; got {images.dtype}")
    if images.numel() == 0:
        raise ValueError(f"{name} are empty: shape {tuple(images.shape)} has a dimension of size 0")
    lo, hi = (float(v) for v in torch.aminmax(images.detach()))  # NaN propagates, inf is an extreme
    if not (math.isfinite(lo) and math.isfinite(hi)):  # (50x faster than isfinite(images).all())
        raise ValueError(f"{name} contain NaN or inf values")
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must have pixels in [0, 1]; got values in [{lo:.4g}, {hi:.4g}]")
    return images


def check_columns(table: pd.DataFrame, columns: Iterable[str], what: str = "table") -> None:
    """Raise unless ``table`` has every one of ``columns``.

    Raises:
        TypeError: ``table`` is not a DataFrame.
        ValueError: ``"<what> lacks column(s) [...]; has [...]"``.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame; got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; has {list(table.columns)}")


def as_features(z: Any, name: str = "embeddings") -> np.ndarray:
    """``z`` (a tensor or array) as a finite float64 ``(N, d)`` numpy array.

    Raises:
        ValueError: not 2-D, empty, or NaN/inf values.
    """
    if isinstance(z, torch.Tensor):
        z = z.detach().cpu()
        z = (z.double() if z.is_floating_point() else z).numpy()  # numpy has no bfloat16
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (N, d) array; got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError(f"{name} contain NaN or inf")
    return z


def as_vector(values: Any, name: str) -> np.ndarray:
    """``values`` (a number or a sequence of numbers) as a non-empty 1-D float64 array.

    Raises:
        ValueError: more than one dimension, or no values.
    """
    vector = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if vector.ndim != 1 or vector.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence")
    return vector


def check_labels(y: Any, n: int, name: str = "labels", of: str = "features") -> np.ndarray:
    """``y`` (a tensor or array) as an ``(n,)`` numpy array of labels that match ``n`` rows of ``of``.

    Raises:
        ValueError: shape other than ``(n,)``, or NaN/inf float labels.
    """
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    labels = np.asarray(y)
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the {of}; got {labels.shape}")
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise ValueError(f"{name} contain NaN or inf")
    return labels
