"""Training configs: the validated dict that names and keys every zoo model."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from rmqm._utils.validation import check_int, check_real
from rmqm.models.backbones import ARCHITECTURES
from rmqm.training.methods import METHODS, OPTIMIZERS

__all__ = ['model_config', 'model_name', 'with_epochs']


def model_config(
    data: str = "fashion-mnist",
    method: str = "cross-entropy",
    dim: int = 32,
    *,
    arch: str = "tiny",
    width: int = 32,
    optimizer: str = "adam",
    lr: float = 1e-3,
    epochs: int = 2,
    batch_size: int = 128,
    accumulate: int = 1,
    n_train: int | None = 6000,
    seed: int = 0,
    temperature: float = 0.07,
    margin: float = 0.5,
    time_budget_s: float | None = None,
) -> dict[str, Any]:
    """A validated training config (the key under which the model is cached).

    ``width`` only applies to ``arch="tiny"``; ``time_budget_s`` stops training early (None, the
    default: no limit, so the config alone determines the model); ``accumulate`` batches of
    ``batch_size`` make one optimiser step (the reference: 64 x 8). Defaults follow the reference:
    Adam, lr 1e-3, NT-Xent temperature 0.07, triplet margin 0.5.

    Raises:
        ValueError: unknown method/architecture/optimizer, a non-positive ``dim``, ``lr``
            or ``temperature``, ``n_train < 2``, or ``epochs < 1`` for a method that trains
            (only ``random-init`` may have 0 epochs).
    """
    if method not in METHODS:
        raise ValueError(f"unknown pretraining method {method!r}; choose one of {list(METHODS)}")
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {list(ARCHITECTURES)}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {list(OPTIMIZERS)}")
    if int(dim) < 1:
        raise ValueError(f"dim must be a positive integer; got {dim}")
    epochs = check_int(epochs, "epochs", low=0)
    if epochs < 1 and method != "random-init":
        raise ValueError(
            f"epochs must be at least 1 for method {method!r}; got {epochs} (0 epochs would leave the "
            "encoder untrained yet labelled as trained; use method='random-init' for an untrained baseline)"
        )
    batch_size = check_int(batch_size, "batch_size", low=2)
    accumulate = check_int(accumulate, "accumulate (batches per optimiser step)", low=1)
    if n_train is not None and int(n_train) < 2:
        raise ValueError(f"n_train must be at least 2 (or None for all); got {n_train}")
    lr = check_real(lr, "learning rate lr", low=0.0, low_open=True)
    temperature = check_real(temperature, "temperature", low=0.0, low_open=True)
    margin = check_real(margin, "margin", low=0.0)
    if time_budget_s is not None:
        time_budget_s = check_real(time_budget_s, "time_budget_s (or None)", low=0.0, low_open=True)
    return {
        "data": str(data), "arch": arch, "width": int(width) if arch == "tiny" else None,
        "method": method, "dim": int(dim), "optimizer": optimizer, "lr": float(lr),
        "epochs": int(epochs), "batch_size": int(batch_size), "accumulate": int(accumulate),
        "n_train": None if n_train is None else int(n_train), "seed": int(seed),
        "temperature": float(temperature), "margin": float(margin),
        "time_budget_s": None if time_budget_s is None else float(time_budget_s),
    }


def model_name(config: dict[str, Any]) -> str:
    """Readable, unique name of a config: its main fields plus an 8-hex hash of all of them."""
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    c = config
    data = str(c["data"]).replace("/", "-")
    return f"{data}_{c['arch']}_{c['method']}_d{c['dim']}_{c['optimizer']}_s{c['seed']}_{digest}"


def with_epochs(config: dict[str, Any], epochs: int) -> dict[str, Any]:
    """``config`` with ``epochs`` replaced (validated as :func:`model_config` does): the config of
    the checkpoint taken after ``epochs`` epochs of a longer run of ``config``."""
    return model_config(**{**config, "epochs": epochs})
