"""Encoders: the wrapper that maps [0, 1] images to embeddings, and the study's backbones."""

from rmqm.models.backbones import (
    ARCHITECTURES,
    LENET_HIDDEN,
    LeNet,
    MLPHead,
    ResNet18CIFAR,
    TinyCNN,
    build_backbone,
)
from rmqm.models.encoder import Encoder, check_embeddings, encoder_dtype, evaluating_on

__all__ = [
    "TinyCNN", "MLPHead", "LeNet", "LENET_HIDDEN", "ResNet18CIFAR", "ARCHITECTURES", "build_backbone",
    "check_embeddings", "Encoder", "encoder_dtype", "evaluating_on",
]
