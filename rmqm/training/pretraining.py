"""The seeded pretraining loop of every method."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from rmqm._utils.progress import progress_bar
from rmqm._utils.validation import check_int, check_real
from rmqm.data.dataset import ImageDataset
from rmqm.losses.contrastive import nt_xent_loss, vicreg_loss
from rmqm.losses.metric_learning import pair_triplet_loss, triplet_margin_loss
from rmqm.training.augmentation import single_view, two_views
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
    ``z`` to logits and is required by cross-entropy and triplet-entropy. As in the reference
    code, every method trains on augmented images drawn from ``generator``: the single-view
    (supervised) methods on :func:`rmqm.training.augmentation.single_view` (random perspective,
    p 0.5), the two-view methods on :func:`rmqm.training.augmentation.two_views` (a random
    rotation and a random perspective, p 0.8). The triplet losses are the reference's
    (pytorch-metric-learning's semi-hard mined ``TripletMarginLoss``,
    :mod:`rmqm.losses.metric_learning`); each loss is a mean over this batch, so the batch size
    is part of the method (the reference: 64).
    """
    check_method(method)
    if method == "random-init":
        raise ValueError("random-init has no training loss")
    if method in HEAD_METHODS and head is None:
        raise ValueError(f"method {method!r} needs a classifier head")
    if method in SUPERVISED_METHODS:
        z = encoder(single_view(images, generator))
        if method == "supervised-triplet":
            return triplet_margin_loss(z, labels, margin)
        assert head is not None  # checked above for the head methods
        loss = F.cross_entropy(head(z), labels)
        if method == "triplet-entropy":
            loss = loss + triplet_margin_loss(z, labels, margin)
        return loss
    v1, v2 = two_views(images, generator)
    z = encoder(torch.cat([v1, v2]))
    z1, z2 = z.chunk(2)
    if method == "nt-xent":
        return nt_xent_loss(z1, z2, temperature)
    if method == "instance-triplet":
        return pair_triplet_loss(z1, z2, margin)
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


def _check_checkpoints(checkpoint_epochs: Sequence[int], epochs: int) -> set[int]:
    try:
        wanted = {check_int(e, "checkpoint_epochs[i]", low=1) for e in checkpoint_epochs}
    except TypeError:
        raise TypeError(f"checkpoint_epochs must be a sequence of epoch counts; got {checkpoint_epochs!r}") from None
    if any(e > epochs for e in wanted):
        raise ValueError(f"checkpoint_epochs must lie in [1, epochs={epochs}]; got {sorted(wanted)}")
    return wanted


def pretrain(
    encoder: nn.Module,
    dataset: ImageDataset,
    method: str,
    *,
    head: nn.Module | None = None,
    epochs: int = 2,
    batch_size: int = 128,
    accumulate: int = 1,
    optimizer: str = "adam",
    lr: float = 1e-3,
    temperature: float = 0.07,
    margin: float = 0.5,
    seed: int = 0,
    time_budget_s: float | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    checkpoint_epochs: Sequence[int] = (),
    on_checkpoint: Callable[[int, PretrainResult], None] | None = None,
) -> PretrainResult:
    """Train ``encoder`` (and ``head``) in place with ``method`` on ``dataset``.

    Batches are shuffled and augmented from generators seeded by ``seed``; parameter
    initialisation is the caller's (seed it before building the model). The models are
    left in eval mode. Training stops after ``epochs`` passes or once ``time_budget_s``
    seconds have elapsed (checked after every optimiser step), whichever comes first.

    Each optimiser step averages the gradients of ``accumulate`` batches of ``batch_size``
    (the reference: 64 x 8); the last step of an epoch takes the batches left over, so every
    epoch ends on a step and the first ``e`` epochs of a run are exactly a run of ``e`` epochs.
    There is no learning-rate schedule, for the same reason.

    Args:
        encoder: module mapping ``[0, 1]`` images ``(B, C, H, W)`` to ``(B, d)``
            (normally an :class:`rmqm.models.encoder.Encoder`).
        dataset: training images and labels.
        method: one of :data:`METHODS`.
        head: classifier ``(B, d) -> (B, n_classes)`` for cross-entropy/triplet-entropy.
        accumulate: batches per optimiser step (>= 1).
        optimizer: ``"adam"`` or ``"sgd-nesterov"``; ``lr`` its learning rate.
        temperature: NT-Xent temperature; ``margin``: triplet margin.
        progress: show a bar with the running loss (:func:`rmqm._utils.progress.progress_bar`).
        checkpoint_epochs: epoch counts in ``[1, epochs]`` after which ``on_checkpoint(e, result)``
            is called with the models in eval mode (they return to train mode afterwards) and
            the :class:`PretrainResult` so far. When the time budget stops training early, it is
            called once for each checkpoint not reached, with the stopped models (a run of that
            many epochs would have stopped there too).
    """
    check_method(method)
    check_real(lr, "learning rate lr", low=0.0, low_open=True)
    check_real(temperature, "temperature", low=0.0, low_open=True)
    check_real(margin, "margin", low=0.0)
    accumulate = check_int(accumulate, "accumulate (batches per optimiser step)", low=1)
    if epochs < 0 or batch_size < 2:
        raise ValueError(f"need epochs >= 0 and batch_size >= 2; got {epochs} and {batch_size}")
    wanted = _check_checkpoints(checkpoint_epochs, epochs)
    if time_budget_s is not None:
        check_real(time_budget_s, "time_budget_s (or None)", low=0.0, low_open=True)
    empty = pd.DataFrame({"step": [], "epoch": [], "loss": [], "elapsed_s": []})
    modules = [m for m in (encoder, head) if m is not None]
    for m in modules:
        m.to(device)
    if method == "random-init" or epochs == 0:
        for m in modules:
            m.eval()
        result = PretrainResult(empty, 0.0, 0.0, False)
        for e in sorted(wanted):
            if on_checkpoint is not None:
                on_checkpoint(e, result)
        return result
    if method in HEAD_METHODS and head is None:
        raise ValueError(f"method {method!r} needs a classifier head")

    params = [p for m in modules for p in m.parameters()]
    opt = make_optimizer(params, optimizer, lr)
    shuffle_gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device=torch.device(device)).manual_seed(seed + 1)
    n = len(dataset)
    batch_size = min(batch_size, n)
    batches = n // batch_size  # drop the ragged last batch (BatchNorm, losses need B >= 2)
    steps_per_epoch = -(-batches // accumulate)
    rows: list[tuple[int, int, float, float]] = []
    start = time.perf_counter()
    stopped = False
    step = 0

    def result_now(stopped_now: bool) -> PretrainResult:
        history = pd.DataFrame(rows, columns=["step", "epoch", "loss", "elapsed_s"]) if rows else empty
        return PretrainResult(history, time.perf_counter() - start, step / max(steps_per_epoch, 1), stopped_now)

    def checkpoint(e: int, stopped_now: bool) -> None:
        if on_checkpoint is None:
            return
        for m in modules:
            m.eval()
        on_checkpoint(e, result_now(stopped_now))
        for m in modules:
            m.train()

    for m in modules:
        m.train()
    bar = progress_bar(total=epochs * steps_per_epoch, desc=method, enabled=progress, leave=False)
    try:
        for epoch in range(epochs):
            order = torch.randperm(n, generator=shuffle_gen)
            for first in range(0, batches, accumulate):
                group = range(first, min(first + accumulate, batches))
                opt.zero_grad(set_to_none=True)
                total = 0.0
                for i in group:
                    idx = order[i * batch_size:(i + 1) * batch_size]
                    x = dataset.images[idx].to(device)
                    y = dataset.labels[idx].to(device)
                    loss = method_loss(
                        method, encoder, head, x, y, aug_gen, temperature=temperature, margin=margin
                    )
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise FloatingPointError(f"{method} loss became {value} at step {step}")
                    (loss / len(group)).backward()
                    total += value / len(group)
                opt.step()
                step += 1
                elapsed = time.perf_counter() - start
                rows.append((step, epoch, total, elapsed))
                bar.update(1)
                bar.set_postfix(loss=f"{total:.4f}", refresh=False)
                if time_budget_s is not None and elapsed >= time_budget_s and step < epochs * steps_per_epoch:
                    stopped = True
                    break
            if step == (epoch + 1) * steps_per_epoch and epoch + 1 in wanted:
                checkpoint(epoch + 1, False)  # a complete epoch, even if the budget ends right here
            if stopped:
                for e in sorted(w for w in wanted if w * steps_per_epoch > step):
                    checkpoint(e, True)
                break
    finally:
        bar.close()
        for m in modules:
            m.eval()
    return result_now(stopped)
