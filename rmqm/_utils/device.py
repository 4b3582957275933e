"""Device resolution: ``"auto"`` picks CUDA when present; every ``device`` argument goes through it."""

from __future__ import annotations

import torch

__all__ = ['resolve_device']


def resolve_device(device: str | torch.device = "auto") -> str:
    """The name of the device to compute on, checked to exist.

    Args:
        device: ``"auto"`` (``"cuda"`` when a GPU is present, else ``"cpu"``), ``"cpu"``,
            ``"cuda"``, ``"cuda:N"``, ``"mps"`` or a ``torch.device``.

    Returns:
        The device as a string (e.g. ``"cpu"``, ``"cuda:0"``), ready for ``torch.device``.

    Raises:
        TypeError: ``device`` is neither a string nor a ``torch.device``.
        ValueError: an unknown device, or CUDA asked for on a machine without it.
    """
    if isinstance(device, torch.device):
        name = str(device)
    elif isinstance(device, str):
        name = device
    else:
        raise TypeError(f"device must be a string or a torch.device; got {type(device).__name__}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if parsed.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {name!r}; use cpu, cuda, cuda:N or auto")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but no CUDA device is available")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} asked for, but MPS (Apple silicon) is not available on this machine")
    return name
