"""The encoder wrapper: [0, 1] images -> (B, d) embeddings, normalisation inside."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain

import torch
from torch import nn

__all__ = ['check_embeddings', 'Encoder', 'encoder_dtype', 'evaluating_on']


def check_embeddings(z: torch.Tensor, batch_size: int, where: str = "encoder") -> torch.Tensor:
    """Validate that ``z`` is a finite ``(batch_size, d)`` tensor; return it.

    Raises:
        TypeError: ``z`` is not a tensor.
        ValueError: wrong rank, wrong batch size, or NaN/inf values.
    """
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{where} must return a torch.Tensor of shape (batch, dim); got {type(z).__name__}")
    if z.ndim != 2 or z.shape[0] != batch_size:
        raise ValueError(
            f"{where} must return embeddings of shape (batch, dim) = ({batch_size}, d); "
            f"got shape {tuple(z.shape)}. Flatten or pool the backbone output (e.g. nn.Flatten())."
        )
    if not torch.isfinite(z).all():
        raise ValueError(f"{where} returned NaN or inf embeddings")
    return z


class Encoder(nn.Module):
    """Wrap any backbone so that it takes ``[0, 1]`` images and returns ``(B, d)`` embeddings.

    Args:
        backbone: module mapping normalised images ``(B, C, H, W)`` to ``(B, d)``
            (outputs of higher rank are flattened).
        mean, std: per-channel normalisation applied to the input first; ``None``
            (default) applies none.
        name: a label used in result tables.

    >>> import torch
    >>> pixels = Encoder(torch.nn.Flatten(), mean=[0.5], std=[0.5], name="pixels")
    >>> z = pixels(torch.ones(2, 1, 4, 4))  # (1 - 0.5) / 0.5 in each of the 16 coordinates
    >>> tuple(z.shape), float(z.max())
    ((2, 16), 1.0)
    """

    def __init__(
        self,
        backbone: nn.Module,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        name: str = "encoder",
    ) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"backbone must be a torch.nn.Module; got {type(backbone).__name__}")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.backbone = backbone
        self.name = name
        if mean is not None and std is not None:
            mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
            std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
            if mean_t.numel() == 0 or mean_t.numel() != std_t.numel():
                raise ValueError(
                    f"mean and std need one value per channel each; got {mean_t.numel()} and {std_t.numel()} values"
                )
            if not (torch.isfinite(mean_t).all() and torch.isfinite(std_t).all()) or (std_t <= 0).any():
                raise ValueError(f"mean must be finite and std finite and > 0; got {mean_t.tolist()}, {std_t.tolist()}")
            self.register_buffer("mean", mean_t.reshape(1, -1, 1, 1))
            self.register_buffer("std", std_t.reshape(1, -1, 1, 1))
        else:
            self.mean = None
            self.std = None

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the input normalisation ``(x - mean) / std`` (identity if none)."""
        if self.mean is None:
            return x
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"expected images (B, {self.mean.shape[1]}, H, W) to normalise; got {tuple(x.shape)}"
            )
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.backbone(self.normalize(x))
        if z.ndim > 2:
            z = z.flatten(1)
        return z


def encoder_dtype(encoder: object) -> torch.dtype:
    """The dtype an encoder computes in: its first floating-point parameter's dtype; float32 for
    a function or a module without floating-point parameters."""
    if isinstance(encoder, nn.Module):
        for parameter in encoder.parameters():
            if parameter.is_floating_point():
                return parameter.dtype
    return torch.float32


@contextmanager
def evaluating_on(encoder: nn.Module, device: str | torch.device) -> Iterator[nn.Module]:
    """Lend ``encoder`` to a measurement: on ``device`` and in eval mode inside the block,
    back on its own device(s) and in its own train/eval mode (per submodule) afterwards,
    also when the block raises.

    Args:
        encoder: the module to measure (moved in place, as ``nn.Module.to`` does).
        device: where the block computes.

    Yields:
        ``encoder`` itself.
    """
    modes = [(module, module.training) for module in encoder.modules()]
    homes = [
        (module, name, tensor.device)
        for module in encoder.modules()
        for name, tensor in chain(module.named_parameters(recurse=False), module.named_buffers(recurse=False))
    ]
    encoder.to(device).eval()
    try:
        yield encoder
    finally:
        for module, training in modes:
            module.training = training
        _move_home(encoder, homes)


def _move_home(encoder: nn.Module, homes: list[tuple[nn.Module, str, torch.device]]) -> None:
    """Put each parameter and buffer of ``encoder`` back on the device it had."""
    devices = {device for _, _, device in homes}
    if len(devices) == 1:
        encoder.to(devices.pop())
        return
    for module, name, device in homes:  # a module spread over several devices
        tensor = getattr(module, name)
        if tensor is None or tensor.device == device:
            continue
        if isinstance(tensor, nn.Parameter):
            tensor.data = tensor.data.to(device)
        else:
            setattr(module, name, tensor.to(device))
