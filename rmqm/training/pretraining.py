"""The seeded pretraining loop of every method."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from rmqm._utils.validation import check_real
from rmqm.data.dataset import ImageDataset
from rmqm.losses.contrastive import nt_xent_loss, semi_hard_triplet_loss, vicreg_loss
from rmqm.training.augmentation import augment
from rmqm.training.methods import (
    HEAD_METHODS,
    OPTIMIZERS,
    SUPERVISED_METHODS,
    check_method,
)

__all__ = ['make_optimizer', 'method_loss', 'PretrainResult', 'pretrain']


def make_optimizer(params: Iterable[torch.nn.Parameter], name: str = "adam", lr: float = 1e-3) -> torch.optim.Optimizer:
    """Adam, or SGD with Nesterov momentum 0.9 (the reference's two optimisers)."""
    lr = check_real(lr, "learning rate lr", low=0.0, low_open=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd-nesterov":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}")


def method_loss(
    method: str,
    encoder: nn.Module,
    head: nn.Module | None,
    images: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    *,
    temperature: float = 0.07,
    margin: float = 0.5,
) -> torch.Tensor:
    """The training loss of ``method`` on one batch of ``[0, 1]`` images.

    ``encoder`` maps images to embeddings ``z`` (and owns normalisation); ``head`` maps
    ``z`` to logits and is required by cross-entropy and triplet-entropy. Self-supervised
    methods draw two views with :func:`augment` from ``generator``.
    """
    check_method(method)
    if method == "random-init":
        raise ValueError("random-init has no training loss")
    if method in HEAD_METHODS and head is None:
        raise ValueError(f"method {method!r} needs a classifier head")
    if method in SUPERVISED_METHODS:
        z = encoder(images)
        if method == "supervised-triplet":
            return semi_hard_triplet_loss(z, labels, margin)
        assert head is not None  # checked above for the head methods
        loss = F.cross_entropy(head(z), labels)
        if method == "triplet-entropy":
            loss = loss + semi_hard_triplet_loss(z, labels, margin)
        return loss
    v1, v2 = augment(images, generator), augment(images, generator)
    z = encoder(torch.cat([v1, v2]))
    z1, z2 = z.chunk(2)
    if method == "nt-xent":
        return nt_xent_loss(z1, z2, temperature)
    if method == "instance-triplet":
        ids = torch.arange(images.shape[0], device=images.device)
        return semi_hard_triplet_loss(z, torch.cat([ids, ids]), margin)
    return vicreg_loss(z1, z2)


@dataclass
class PretrainResult:
    """What :func:`pretrain` did.

    Attributes:
        history: one row per optimisation step: ``step``, ``epoch``, ``loss``, ``elapsed_s``.
        train_time_s: wall-clock seconds spent training.
        epochs_completed: full passes over the data (fractional when stopped early).
        stopped_early: True when the time budget ended training.
    """

    history: pd.DataFrame
    train_time_s: float
    epochs_completed: float
    stopped_early: bool


def pretrain(
    encoder: nn.Module,
    dataset: ImageDataset,
    method: str,
    *,
    head: nn.Module | None = None,
    epochs: int = 2,
    batch_size: int = 128,
    optimizer: str = "adam",
    lr: float = 1e-3,
    temperature: float = 0.07,
    margin: float = 0.5,
    seed: int = 0,
    time_budget_s: float | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> PretrainResult:
    """Train ``encoder`` (and ``head``) in place with ``method`` on ``dataset``.

    Batches are shuffled and augmented from generators seeded by ``seed``; parameter
    initialisation is the caller's (seed it before building the model). The models are
    left in eval mode. Training stops after ``epochs`` passes or once ``time_budget_s``
    seconds have elapsed (checked after every step), whichever comes first.

    Args:
        encoder: module mapping ``[0, 1]`` images ``(B, C, H, W)`` to ``(B, d)``
            (normally an :class:`rmqm.models.encoder.Encoder`).
        dataset: training images and labels.
        method: one of :data:`METHODS`.
        head: classifier ``(B, d) -> (B, n_classes)`` for cross-entropy/triplet-entropy.
        optimizer: ``"adam"`` or ``"sgd-nesterov"``; ``lr`` its learning rate.
        temperature: NT-Xent temperature; ``margin``: triplet margin.
        progress: show a tqdm bar with the running loss.
    """
    from tqdm.auto import tqdm

    check_method(method)
    check_real(lr, "learning rate lr", low=0.0, low_open=True)
    check_real(temperature, "temperature", low=0.0, low_open=True)
    check_real(margin, "margin", low=0.0)
    if epochs < 0 or batch_size < 2:
        raise ValueError(f"need epochs >= 0 and batch_size >= 2; got {epochs} and {batch_size}")
    if time_budget_s is not None:
        check_real(time_budget_s, "time_budget_s (or None)", low=0.0, low_open=True)
    empty = pd.DataFrame({"step": [], "epoch": [], "loss": [], "elapsed_s": []})
    modules = [m for m in (encoder, head) if m is not None]
    for m in modules:
        m.to(device)
    if method == "random-init" or epochs == 0:
        for m in modules:
            m.eval()
        return PretrainResult(empty, 0.0, 0.0, False)
    if method in HEAD_METHODS and head is None:
        raise ValueError(f"method {method!r} needs a classifier head")

    params = [p for m in modules for p in m.parameters()]
    opt = make_optimizer(params, optimizer, lr)
    shuffle_gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device=torch.device(device)).manual_seed(seed + 1)
    n = len(dataset)
    batch_size = min(batch_size, n)
    steps_per_epoch = n // batch_size  # drop the ragged last batch (BatchNorm, losses need B >= 2)
    rows: list[tuple[int, int, float, float]] = []
    start = time.perf_counter()
    stopped = False
    step = 0
    for m in modules:
        m.train()
    bar = tqdm(total=epochs * steps_per_epoch, desc=method, disable=not progress, leave=False)
    try:
        for epoch in range(epochs):
            order = torch.randperm(n, generator=shuffle_gen)
            for i in range(steps_per_epoch):
                idx = order[i * batch_size:(i + 1) * batch_size]
                x = dataset.images[idx].to(device)
                y = dataset.labels[idx].to(device)
                loss = method_loss(
                    method, encoder, head, x, y, aug_gen, temperature=temperature, margin=margin
                )
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{method} loss became {loss.item()} at step {step}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                elapsed = time.perf_counter() - start
                rows.append((step, epoch, float(loss.detach()), elapsed))
                bar.update(1)
                bar.set_postfix(loss=f"{rows[-1][2]:.4f}")
                if time_budget_s is not None and elapsed >= time_budget_s:
                    stopped = step < epochs * steps_per_epoch
                    break
            if stopped:
                break
    finally:
        bar.close()
        for m in modules:
            m.eval()
    history = pd.DataFrame(rows, columns=["step", "epoch", "loss", "elapsed_s"]) if rows else empty
    return PretrainResult(
        history, time.perf_counter() - start, step / max(steps_per_epoch, 1), stopped
    )
