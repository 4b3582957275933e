"""Backbones of the study: a tiny CPU CNN, the reference's LeNet and a CIFAR ResNet-18."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ['TinyCNN', 'MLPHead', 'LeNet', 'LENET_HIDDEN', 'ResNet18CIFAR', 'ARCHITECTURES', 'build_backbone']


class _FeaturesHead(nn.Module):
    """The shape of every backbone here: ``features`` (images -> vectors), then ``head``
    (vectors -> ``(B, dim)`` embeddings). Submodules are built by the caller, in its order,
    so the random initialisation consumes the generator as it always did."""

    def __init__(self, features: nn.Module, head: nn.Module, dim: int) -> None:
        super().__init__()
        self.features = features
        self.head = head
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` images (normalised) -> ``(B, dim)`` embeddings."""
        return self.head(self.features(x))


class TinyCNN(_FeaturesHead):
    """A small CNN for CPU runs: two conv blocks, global pooling and a linear projection.

    Maps ``(B, in_channels, H, W)`` to ``(B, dim)``; about 25k parameters at ``dim=32``.
    """

    def __init__(self, in_channels: int = 1, dim: int = 32, width: int = 32) -> None:
        if dim < 1 or width < 1 or in_channels < 1:
            raise ValueError("in_channels, dim and width must be positive")
        features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        super().__init__(features, nn.Linear(2 * width, dim), dim)


class MLPHead(nn.Module):
    """An MLP projection ``in_dim -> hidden[0] -> ... -> out_dim`` (Linear, [BatchNorm,] ReLU blocks).

    The last layer is linear with no activation, so its output is the embedding that
    the RMQM reference takes ("the layer before ReLU -> logits"). ``batch_norm=False`` gives the
    plain Linear-ReLU blocks of the reference's MNIST LeNet.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, batch_norm: bool = True) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"MLP sizes must be positive; got {in_dim}, {list(hidden)}, {out_dim}")
        layers: list[nn.Module] = []
        prev = in_dim
        for h in hidden:
            layers += [nn.Linear(prev, h), *([nn.BatchNorm1d(h)] if batch_norm else []), nn.ReLU()]
            prev = h
        layers.append(nn.Linear(prev, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


#: The reference MNIST LeNet's hidden widths (three Linear-ReLU blocks of 512, no batch norm).
LENET_HIDDEN: tuple[int, ...] = (512, 512, 512)


class LeNet(_FeaturesHead):
    """The reference code's MNIST encoder (``src/models.py`` of
    the reference repository ByteFuse/representation-manifold-quality-metric): conv 1->6 5x5, ReLU, 2x2 max-pool,
    conv 6->16 5x5, ReLU, 2x2 max-pool,
    flatten (16 x 4 x 4 = 256 on 28x28 input) -> Linear 512, ReLU, Linear 512, ReLU, Linear 512,
    ReLU, Linear ``dim``; no batch norm.

    An adaptive average pooling to 4x4 before the flatten is the identity on 28x28 input (the
    feature map already is 4x4) and lets 32x32 input (5x5 maps) go through the same head.
    ``659,468 + 513 dim`` parameters (675,884 at ``dim=32``).
    """

    def __init__(self, in_channels: int = 1, dim: int = 32, hidden: Sequence[int] = LENET_HIDDEN,
                 batch_norm: bool = False) -> None:
        if dim < 1 or in_channels < 1:
            raise ValueError("in_channels and dim must be positive")
        features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        )
        super().__init__(features, MLPHead(16 * 4 * 4, hidden, dim, batch_norm=batch_norm), dim)


class ResNet18CIFAR(_FeaturesHead):
    """ResNet-18, CIFAR variant (3x3 stem, stride 1, no max-pool), with an MLP head.

    The backbone is torchvision's ResNet-18 with the stem replaced; its 512-d pooled
    features go through an MLP ``512 -> 1024 -> 1024 -> dim`` as in the reference.
    """

    def __init__(self, in_channels: int = 3, dim: int = 128, hidden: Sequence[int] = (1024, 1024)) -> None:
        from torchvision.models import resnet18  # torchvision loads slowly; only this model needs it

        if dim < 1 or in_channels < 1:
            raise ValueError("in_channels and dim must be positive")
        net = resnet18(weights=None)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        super().__init__(net, MLPHead(512, hidden, dim), dim)


#: Architecture names accepted by :func:`build_backbone`.
ARCHITECTURES: tuple[str, ...] = ("tiny", "lenet", "resnet18")


def build_backbone(arch: str, in_channels: int, dim: int, **kwargs: Any) -> nn.Module:
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
