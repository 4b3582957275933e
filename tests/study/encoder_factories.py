"""Encoder factories for tests/study/test_encoders.py (imported as ``encoder_factories``, with
this folder put on ``sys.path`` by the test): good ones and each way a factory can go wrong."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rmqm.models.backbones import TinyCNN


def tiny(dim: int = 8, in_channels: int = 1) -> nn.Module:
    """A plain module: takes the study's images as they are."""
    return TinyCNN(in_channels, dim, width=4)


class _ShapeCheck(nn.Module):
    """Refuses inputs other than ``(B, 3, 16, 16)``, then pools them to ``(B, 3)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != (3, 16, 16):
            raise ValueError(f"expected (B, 3, 16, 16) images; got {tuple(x.shape)}")
        return x.mean(dim=(2, 3))


def rgb16() -> tuple[nn.Module, dict[str, Any]]:
    """A module with its info: RGB 16x16 inputs normalised by mean 0.5, std 0.25."""
    return _ShapeCheck(), {"in_channels": 3, "input_size": 16, "mean": [0.5] * 3, "std": [0.25] * 3}


def raises(message: str = "no weights here") -> nn.Module:
    raise RuntimeError(message)


def not_a_module() -> str:
    return "not a module"


class _Lambda(nn.Module):
    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def flat_output() -> nn.Module:
    """Returns ``(B,)``: one number per image."""
    return _Lambda(lambda x: x.mean(dim=(1, 2, 3)))


def rank3_output() -> nn.Module:
    """Returns ``(B, d, 1)``."""
    return _Lambda(lambda x: x.mean(dim=(2, 3)).unsqueeze(-1))


def nan_output() -> nn.Module:
    """Returns NaN embeddings."""
    return _Lambda(lambda x: x.flatten(1) * float("nan"))


def detached_output() -> nn.Module:
    """Returns embeddings cut from the graph (PGD could not attack through it)."""
    return _Lambda(lambda x: x.flatten(1).detach())
