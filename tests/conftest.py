"""Shared fixtures: tiny real data (scikit-learn digits, always present) and small encoders."""

import pytest
import torch
from torch import nn

from rmqm.data.offline import load_digits
from rmqm.models.backbones import TinyCNN
from rmqm.models.encoder import Encoder


@pytest.fixture(scope="session")
def digits_small():
    """60 real 28x28 digit images in [0, 1] with labels (stratified, seeded)."""
    return load_digits(n=60, seed=0)


@pytest.fixture
def tiny_encoder():
    """A seeded random TinyCNN wrapped with input normalisation, in eval mode."""
    torch.manual_seed(0)
    return Encoder(TinyCNN(1, dim=16, width=8), mean=(0.2,), std=(0.3,)).eval()


@pytest.fixture
def flatten_encoder():
    """The identity map on flattened pixels (no normalisation): an analytic encoder."""
    return Encoder(nn.Flatten())
