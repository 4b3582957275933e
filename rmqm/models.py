"""Encoders: a wrapper that owns input normalisation, and small architectures.

An :class:`Encoder` maps images in ``[0, 1]`` of shape ``(B, C, H, W)`` to
embeddings of shape ``(B, d)``. Perturbations (noise, PGD) act on the ``[0, 1]``
pixels; the wrapper applies the dataset normalisation *after* the alteration, as
the RMQM reference code does. Any ``torch.nn.Module`` becomes an encoder in one line::

    encoder = Encoder(torchvision.models.resnet18(), mean=(0.485, 0.456, 0.406),
                      std=(0.229, 0.224, 0.225))
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = [
    "Encoder",
    "TinyCNN",
    "LeNet",
    "ResNet18CIFAR",
    "MLPHead",
    "ARCHITECTURES",
    "build_backbone",
    "check_embeddings",
]


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


class TinyCNN(nn.Module):
    """A small CNN for CPU runs: two conv blocks, global pooling and a linear projection.

    Maps ``(B, in_channels, H, W)`` to ``(B, dim)``; about 25k parameters at ``dim=32``.
    """

    def __init__(self, in_channels: int = 1, dim: int = 32, width: int = 32) -> None:
        super().__init__()
        if dim < 1 or width < 1 or in_channels < 1:
            raise ValueError("in_channels, dim and width must be positive")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, dim)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MLPHead(nn.Module):
    """An MLP projection ``in_dim -> hidden[0] -> ... -> out_dim`` (Linear, BatchNorm, ReLU blocks).

    The last layer is linear with no activation, so its output is the embedding that
    the RMQM reference takes ("the layer before ReLU -> logits").
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"MLP sizes must be positive; got {in_dim}, {list(hidden)}, {out_dim}")
        layers: list[nn.Module] = []
        prev = in_dim
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.BatchNorm1d(h), nn.ReLU()]
            prev = h
        layers.append(nn.Linear(prev, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LeNet(nn.Module):
    """A LeNet-5-style CNN with an MLP head, the reference's MNIST family.

    Two 5x5 conv + max-pool blocks (6 and 16 channels), adaptive pooling to 5x5 (so 28x28
    and 32x32 inputs both work), then an MLP ``400 -> hidden -> dim``.
    """

    def __init__(self, in_channels: int = 1, dim: int = 32, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        if dim < 1 or in_channels < 1:
            raise ValueError("in_channels and dim must be positive")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(5), nn.Flatten(),
        )
        self.head = MLPHead(16 * 5 * 5, hidden, dim)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ResNet18CIFAR(nn.Module):
    """ResNet-18, CIFAR variant (3x3 stem, stride 1, no max-pool), with an MLP head.

    The backbone is torchvision's ResNet-18 with the stem replaced; its 512-d pooled
    features go through an MLP ``512 -> 1024 -> 1024 -> dim`` as in the reference.
    """

    def __init__(self, in_channels: int = 3, dim: int = 128, hidden: Sequence[int] = (1024, 1024)) -> None:
        super().__init__()
        from torchvision.models import resnet18

        if dim < 1 or in_channels < 1:
            raise ValueError("in_channels and dim must be positive")
        net = resnet18(weights=None)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        self.features = net
        self.head = MLPHead(512, hidden, dim)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


#: Architecture names accepted by :func:`build_backbone`.
ARCHITECTURES: tuple[str, ...] = ("tiny", "lenet", "resnet18")


def build_backbone(arch: str, in_channels: int, dim: int, **kwargs) -> nn.Module:
    """Build an un-trained backbone ``(B, in_channels, H, W) -> (B, dim)`` by name.

    Args:
        arch: ``"tiny"`` (:class:`TinyCNN`, CPU profiles), ``"lenet"`` (:class:`LeNet`)
            or ``"resnet18"`` (:class:`ResNet18CIFAR`).
        in_channels: image channels.
        dim: embedding dimension ``d``.
        **kwargs: passed to the architecture (e.g. ``width`` for TinyCNN).
    """
    classes = {"tiny": TinyCNN, "lenet": LeNet, "resnet18": ResNet18CIFAR}
    if arch not in classes:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {list(ARCHITECTURES)}")
    return classes[arch](in_channels=in_channels, dim=dim, **kwargs)
