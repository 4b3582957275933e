"""Pretraining methods, augmentation, checkpoints and the model zoo."""

from rmqm.training.augmentation import augment, single_view, two_views
from rmqm.training.checkpoints import (
    CHECKPOINT_FORMAT,
    TrainedModel,
    build_model,
    default_encoder,
    load_model,
    load_or_train,
    load_or_train_checkpoints,
    log,
    model_config,
    model_name,
    save_model,
    train_model,
)
from rmqm.training.configs import TrainingConfig, with_epochs
from rmqm.training.curves import learning_curves, plateau_table
from rmqm.training.methods import (
    HEAD_METHODS,
    METHODS,
    OPTIMIZERS,
    SELF_SUPERVISED_METHODS,
    SUPERVISED_METHODS,
    method_family,
)
from rmqm.training.pretraining import (
    PretrainResult,
    make_optimizer,
    method_loss,
    pretrain,
)
from rmqm.training.zoo import TINY_TRAINING, TINY_ZOO, evaluate_model, family_summary, train_zoo, zoo_checkpoints

__all__ = [
    "augment", "single_view", "two_views", "log", "CHECKPOINT_FORMAT", "TrainedModel", "TrainingConfig",
    "model_config", "model_name",
    "build_model",
    "train_model", "save_model", "load_model", "load_or_train", "default_encoder", "SUPERVISED_METHODS",
    "SELF_SUPERVISED_METHODS", "METHODS", "HEAD_METHODS", "OPTIMIZERS", "method_family", "make_optimizer",
    "method_loss", "PretrainResult", "pretrain", "TINY_ZOO", "TINY_TRAINING", "evaluate_model", "train_zoo",
    "family_summary",
    "load_or_train_checkpoints", "with_epochs", "learning_curves", "plateau_table", "zoo_checkpoints",
]
