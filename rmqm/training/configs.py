"""Training configs: :class:`TrainingConfig`, whose key names and keys every zoo model."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from rmqm._utils.validation import check_choice, check_int, check_real
from rmqm.models.backbones import ARCHITECTURES
from rmqm.training.methods import METHODS, OPTIMIZERS

__all__ = ['TrainingConfig', 'model_config', 'model_name', 'with_epochs']


@dataclass(frozen=True)
class TrainingConfig:
    """How one zoo model is trained: a frozen, self-validating value whose :meth:`key` names and
    keys its checkpoint (:func:`model_name`). Defaults follow the reference (the paper's
    Section 4; its ``train.py``): Adam, lr 1e-3, NT-Xent temperature 0.07, triplet margin 0.5.

    Attributes:
        data: the pretraining set (:func:`rmqm.data.registry.load_dataset` name).
        method: one of :data:`rmqm.training.methods.METHODS`.
        dim: embedding dimension.
        arch: one of :data:`rmqm.models.backbones.ARCHITECTURES`; ``width`` applies to ``"tiny"`` only.
        optimizer, lr: :data:`rmqm.training.methods.OPTIMIZERS` and its learning rate.
        epochs: passes over the training set (0 only for ``"random-init"``).
        batch_size, accumulate: images per batch; ``accumulate`` batches make one optimiser step
            (the reference: 64 x 8).
        n_train: training images (None: all).
        seed: initialisation, data subsample and augmentation seed.
        temperature, margin: NT-Xent temperature and triplet margin.
        time_budget_s: stop training early after this many seconds (None, the default: the
            config alone determines the model).

    >>> config = TrainingConfig("digits", "nt-xent", 8, epochs=1, n_train=64)
    >>> config.key()["method"], TrainingConfig.from_key(config.key()) == config
    ('nt-xent', True)
    >>> TrainingConfig(method="cross-entropy", epochs=0)
    Traceback (most recent call last):
    ...
    ValueError: epochs must be at least 1 for method 'cross-entropy'; got 0 (0 epochs would leave ...
    """

    data: str = "fashion-mnist"
    method: str = "cross-entropy"
    dim: int = 32
    arch: str = "tiny"
    width: int | None = 32
    optimizer: str = "adam"
    lr: float = 1e-3
    epochs: int = 2
    batch_size: int = 128
    accumulate: int = 1
    n_train: int | None = 6000
    seed: int = 0
    temperature: float = 0.07
    margin: float = 0.5
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        check_choice(self.method, METHODS, "pretraining method")
        check_choice(self.arch, ARCHITECTURES, "architecture")
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        set_ = functools.partial(object.__setattr__, self)
        set_("data", str(self.data))
        set_("dim", check_int(self.dim, "dim", low=1))
        set_("width", check_int(self.width, "width", low=1) if self.arch == "tiny" else None)
        set_("epochs", check_int(self.epochs, "epochs", low=0))
        if self.epochs < 1 and self.method != "random-init":
            raise ValueError(
                f"epochs must be at least 1 for method {self.method!r}; got {self.epochs} (0 epochs would leave the "
                "encoder untrained yet labelled as trained; use method='random-init' for an untrained baseline)"
            )
        set_("batch_size", check_int(self.batch_size, "batch_size", low=2))
        set_("accumulate", check_int(self.accumulate, "accumulate (batches per optimiser step)", low=1))
        if self.n_train is not None:
            set_("n_train", check_int(self.n_train, "n_train (or None for all)", low=2))
        set_("seed", check_int(self.seed, "seed"))
        set_("lr", check_real(self.lr, "learning rate lr", low=0.0, low_open=True))
        set_("temperature", check_real(self.temperature, "temperature", low=0.0, low_open=True))
        set_("margin", check_real(self.margin, "margin", low=0.0))
        if self.time_budget_s is not None:
            set_("time_budget_s", check_real(self.time_budget_s, "time_budget_s (or None)", low=0.0, low_open=True))

    def key(self) -> dict[str, Any]:
        """The config as the JSON-like dict that names and keys the checkpoint (:func:`model_name`)."""
        return {
            "data": self.data, "arch": self.arch, "width": self.width, "method": self.method, "dim": self.dim,
            "optimizer": self.optimizer, "lr": self.lr, "epochs": self.epochs, "batch_size": self.batch_size,
            "accumulate": self.accumulate, "n_train": self.n_train, "seed": self.seed,
            "temperature": self.temperature, "margin": self.margin, "time_budget_s": self.time_budget_s,
        }

    @classmethod
    def from_key(cls, key: Mapping[str, Any]) -> TrainingConfig:
        """The config a :meth:`key` (a checkpoint's, a job's) describes.

        Raises:
            ValueError: an unknown entry (named) or a value the config refuses.
        """
        unknown = sorted(set(key) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown training config entries {unknown}")
        return cls(**key)

    def replace(self, **changes: Any) -> TrainingConfig:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)


def model_config(
    data: str = "fashion-mnist",
    method: str = "cross-entropy",
    dim: int = 32,
    **options: Any,
) -> dict[str, Any]:
    """``TrainingConfig(data, method, dim, **options).key()``: the validated dict under which a
    model is cached (see :class:`TrainingConfig` for the options and their defaults).

    Raises:
        ValueError: unknown method/architecture/optimizer, a non-positive ``dim``, ``lr``
            or ``temperature``, ``n_train < 2``, or ``epochs < 1`` for a method that trains
            (only ``random-init`` may have 0 epochs).
        TypeError: an unknown option.
    """
    return TrainingConfig(data, method, dim, **options).key()


def model_name(config: dict[str, Any]) -> str:
    """Readable, unique name of a config: its main fields plus an 8-hex hash of all of them."""
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    c = config
    data = str(c["data"]).replace("/", "-")
    return f"{data}_{c['arch']}_{c['method']}_d{c['dim']}_{c['optimizer']}_s{c['seed']}_{digest}"


def with_epochs(config: dict[str, Any], epochs: int) -> dict[str, Any]:
    """``config`` with ``epochs`` replaced (validated as :func:`model_config` does): the config of
    the checkpoint taken after ``epochs`` epochs of a longer run of ``config``."""
    return TrainingConfig.from_key(config).replace(epochs=epochs).key()
