"""Pretraining methods, augmentation, checkpoints and the model zoo."""

from rmqm.training.augmentation import augment
from rmqm.training.checkpoints import log, CHECKPOINT_FORMAT, TrainedModel, model_config, model_name, build_model, train_model, save_model, load_model, list_models, load_or_train, resolve_data, default_encoder
from rmqm.training.methods import SUPERVISED_METHODS, SELF_SUPERVISED_METHODS, METHODS, HEAD_METHODS, OPTIMIZERS, method_family
from rmqm.training.pretraining import make_optimizer, method_loss, PretrainResult, pretrain
from rmqm.training.zoo import TINY_ZOO, evaluate_model, train_zoo, family_summary

__all__ = ['augment', 'log', 'CHECKPOINT_FORMAT', 'TrainedModel', 'model_config', 'model_name', 'build_model', 'train_model', 'save_model', 'load_model', 'list_models', 'load_or_train', 'resolve_data', 'default_encoder', 'SUPERVISED_METHODS', 'SELF_SUPERVISED_METHODS', 'METHODS', 'HEAD_METHODS', 'OPTIMIZERS', 'method_family', 'make_optimizer', 'method_loss', 'PretrainResult', 'pretrain', 'TINY_ZOO', 'evaluate_model', 'train_zoo', 'family_summary']
