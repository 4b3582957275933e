"""Pretraining methods of the RMQM study: losses, augmentation and a seeded training loop.

Methods (names accepted by :func:`pretrain`, see :data:`METHODS`):

* ``"cross-entropy"`` -- a classifier head ``logits = Linear(ReLU(z))`` on the embedding ``z``;
* ``"triplet-entropy"`` -- cross-entropy plus the semi-hard triplet loss (margin 0.5);
* ``"supervised-triplet"`` -- semi-hard triplet loss with class labels;
* ``"nt-xent"`` -- SimCLR's normalised-temperature cross-entropy between two augmented
  views (temperature 0.07, as in the reference);
* ``"instance-triplet"`` -- semi-hard triplet loss where each image is its own class and
  its two augmented views are the positives;
* ``"vicreg"`` -- VICReg (Bardes et al. 2022), a non-contrastive method (``lightly``'s loss);
* ``"random-init"`` -- no training (the untrained network as a baseline).

Triplet losses act on L2-normalised embeddings (Euclidean distances in ``[0, 2]``), which
is what a margin of 0.5 is sized for.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from rmqm.data import ImageDataset, check_image_batch, check_real

__all__ = [
    "METHODS",
    "SUPERVISED_METHODS",
    "SELF_SUPERVISED_METHODS",
    "OPTIMIZERS",
    "PretrainResult",
    "augment",
    "NT_XENT_REDUCTIONS",
    "nt_xent_loss",
    "semi_hard_triplet_loss",
    "vicreg_loss",
    "make_optimizer",
    "method_loss",
    "pretrain",
]

SUPERVISED_METHODS: tuple[str, ...] = ("cross-entropy", "triplet-entropy", "supervised-triplet")
SELF_SUPERVISED_METHODS: tuple[str, ...] = ("nt-xent", "instance-triplet", "vicreg")
#: All method names, in the order of the study's tables.
METHODS: tuple[str, ...] = SUPERVISED_METHODS + SELF_SUPERVISED_METHODS + ("random-init",)
#: Methods whose model has a classifier head mapping embeddings to logits.
HEAD_METHODS: tuple[str, ...] = ("cross-entropy", "triplet-entropy")
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd-nesterov")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown pretraining method {method!r}; choose one of {list(METHODS)}")


# --------------------------------------------------------------------------- augmentation


def augment(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    crop_scale: tuple[float, float] = (0.6, 1.0),
    max_rotation_deg: float = 15.0,
    flip: bool = True,
    jitter: float = 0.3,
    noise_std: float = 0.05,
) -> torch.Tensor:
    """A random augmented view of each image, suited to small (28x28) grayscale images.

    Per image: a random resized crop (area fraction in ``crop_scale``, random position) with a
    small rotation, a horizontal flip with probability 1/2, a brightness/contrast jitter of
    relative size ``jitter`` and additive Gaussian noise of standard deviation ``noise_std``.
    All randomness comes from ``generator`` (so a fixed seed gives a fixed view); the
    operations are differentiable in ``images``.

    Args:
        images: ``(B, C, H, W)`` float32/float64 pixels in ``[0, 1]``, ``B >= 1``.
        generator: source of randomness (its device is used to draw the random numbers).
        crop_scale: ``0 < lo <= hi <= 1``; ``max_rotation_deg`` in ``[0, 180]``;
            ``jitter`` in ``[0, 1]``; ``noise_std >= 0`` (pixel units).

    Returns:
        ``(B, C, H, W)`` tensor in ``[0, 1]`` on ``images``' device.
    """
    check_image_batch(images)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}")
    if not isinstance(crop_scale, (tuple, list)) or len(crop_scale) != 2:
        raise TypeError(f"crop_scale must be a (lo, hi) pair; got {crop_scale!r}")
    lo = check_real(crop_scale[0], "crop_scale[0]", low=0.0, high=1.0, low_open=True)
    hi = check_real(crop_scale[1], "crop_scale[1]", low=lo, high=1.0)
    max_rotation_deg = check_real(max_rotation_deg, "max_rotation_deg", low=0.0, high=180.0)
    jitter = check_real(jitter, "jitter", low=0.0, high=1.0)  # > 1 could invert the contrast
    noise_std = check_real(noise_std, "noise_std", low=0.0)
    b = images.shape[0]
    gdev = generator.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=gdev).to(images.device, images.dtype)

    u = rand(b, 7)
    scale = torch.sqrt(lo + (hi - lo) * u[:, 0])  # side fraction of the crop
    angle = math.radians(max_rotation_deg) * (2 * u[:, 1] - 1)
    sign = torch.where(u[:, 2] < 0.5, -1.0, 1.0) if flip else torch.ones_like(scale)
    tx = (1 - scale) * (2 * u[:, 3] - 1)  # keep the crop inside the image
    ty = (1 - scale) * (2 * u[:, 4] - 1)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack(
        [torch.stack([cos * sign, -sin, tx], 1), torch.stack([sin * sign, cos, ty], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    contrast = (1 + jitter * (2 * u[:, 5] - 1)).view(b, 1, 1, 1)
    brightness = (jitter / 2 * (2 * u[:, 6] - 1)).view(b, 1, 1, 1)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast + mean + brightness
    if noise_std > 0:
        noise = torch.randn(images.shape, generator=generator, device=gdev).to(images.device, images.dtype)
        out = out + noise_std * noise
    return out.clamp(0.0, 1.0)


# --------------------------------------------------------------------------- losses


def _check_embeddings(z: torch.Tensor, name: str) -> None:
    """Raise unless ``z`` is a finite floating-point ``(B, d)`` tensor with ``d >= 1``."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, d); got {type(z).__name__}")
    if z.ndim != 2 or z.shape[1] < 1:
        raise ValueError(f"{name} must be a (B, d) tensor with d >= 1; got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {z.dtype}")
    if not torch.isfinite(z.detach()).all():
        raise ValueError(f"{name} contain NaN or inf values")


def _check_pair(z1: torch.Tensor, z2: torch.Tensor, min_batch: int = 2) -> None:
    _check_embeddings(z1, "z1")
    _check_embeddings(z2, "z2")
    if z1.shape != z2.shape:
        raise ValueError(f"views must be two (B, d) tensors of equal shape; got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] < min_batch:
        raise ValueError(f"need a batch of at least {min_batch} point{'s' if min_batch > 1 else ''}; got {z1.shape[0]}")


#: Accepted ``reduction`` values of :func:`nt_xent_loss`.
NT_XENT_REDUCTIONS: tuple[str, ...] = ("mean", "none", "sum")


def nt_xent_loss(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.07, reduction: str = "mean"
) -> torch.Tensor:
    """SimCLR's NT-Xent loss between two views (Chen et al. 2020, eq. 1).

    For the ``2B`` L2-normalised embeddings, each point's positive is the other view of the
    same image and the other ``2B - 2`` points are negatives:
    ``l_i = -log(exp(s_ip / tau) / sum_{k != i} exp(s_ik / tau))`` with cosine similarity
    ``s``. Pretraining minimises it (``"mean"``); the ``"nt-xent"`` PGD attack of
    :func:`rmqm.perturbations.make_attack_loss` ascends the per-pair losses (``"none"``).

    Args:
        z1, z2: ``(B, d)`` embeddings of the two views (row ``i`` of each is image ``i``),
            ``B >= 1``.
        temperature: ``tau > 0``.
        reduction: ``"mean"`` -- a scalar, the mean of ``l_i`` over all ``2B`` anchors
            (SimCLR's training loss); ``"none"`` -- shape ``(B,)``, the loss of pair ``i``,
            ``(l_i + l_{B+i}) / 2`` (its two anchors averaged), whose mean equals
            ``"mean"`` up to float rounding; ``"sum"`` -- a scalar, the sum of ``"none"``
            (``B`` times ``"mean"``).

    A batch of one pair has no negatives: each anchor's softmax runs over its positive
    alone, so every loss is exactly ``0`` with a zero gradient (nothing to contrast;
    a PGD step on it does not move). Pretraining refuses ``batch_size < 2`` for this
    reason; the attack's last batch may hold a single point.

    Raises:
        ValueError: unequal shapes, an empty batch, NaN/inf embeddings, ``temperature``
            not positive and finite, or an unknown ``reduction``.
    """
    if reduction not in NT_XENT_REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; choose one of {list(NT_XENT_REDUCTIONS)}")
    _check_pair(z1, z2, min_batch=1)
    check_real(temperature, "temperature", low=0.0, low_open=True)
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    if reduction == "mean":
        return F.cross_entropy(sim, targets)
    per_anchor = F.cross_entropy(sim, targets, reduction="none")
    per_pair = 0.5 * (per_anchor[:b] + per_anchor[b:])
    return per_pair if reduction == "none" else per_pair.sum()


def semi_hard_triplet_loss(z: torch.Tensor, labels: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """Semi-hard triplet loss with online mining (Schroff et al. 2015; TF-Addons semantics).

    Embeddings are L2-normalised and compared by Euclidean distance ``D``. For every
    anchor-positive pair ``(a, p)`` (same label, ``a != p``) the negative is the closest
    ``n`` with ``D_an > D_ap`` (semi-hard); when there is none, the farthest negative. The
    loss is the mean over pairs of ``max(D_ap - D_an + margin, 0)``. A batch without any
    valid triplet gives zero (with a gradient path).

    Args:
        z: ``(B, d)`` embeddings.
        labels: ``(B,)`` integer labels.
        margin: the margin (0.5 in the reference).
    """
    _check_embeddings(z, "z")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor of shape (B,); got {type(labels).__name__}")
    if labels.ndim != 1 or labels.shape[0] != z.shape[0]:
        raise ValueError(
            f"need z of shape (B, d) and labels of shape (B,); got {tuple(z.shape)} and {tuple(labels.shape)}"
        )
    margin = check_real(margin, "margin", low=0.0)
    zn = F.normalize(z, dim=1)
    # Euclidean distances on the sphere, from the Gram matrix (clamped for a safe sqrt).
    dist = (2 - 2 * zn @ zn.T).clamp_min(1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=z.device)
    pos = same & ~eye
    neg = ~same
    if not pos.any() or not neg.any():
        return z.sum() * 0.0
    a_idx, p_idx = pos.nonzero(as_tuple=True)
    d_ap = dist[a_idx, p_idx]  # (P,)
    d_an = dist[a_idx]  # (P, B)
    neg_rows = neg[a_idx]
    semi = neg_rows & (d_an > d_ap[:, None])
    inf = torch.tensor(float("inf"), device=z.device, dtype=dist.dtype)
    closest_semi = torch.where(semi, d_an, inf).min(dim=1).values
    farthest = torch.where(neg_rows, d_an, -inf).max(dim=1).values
    chosen = torch.where(semi.any(dim=1), closest_semi, farthest)
    valid = neg_rows.any(dim=1)
    losses = F.relu(d_ap - chosen + margin)[valid]
    return losses.mean() if losses.numel() else z.sum() * 0.0


def vicreg_loss(
    z1: torch.Tensor, z2: torch.Tensor, invariance: float = 25.0, variance: float = 25.0, covariance: float = 1.0
) -> torch.Tensor:
    """VICReg (Bardes et al. 2022, eq. 6): invariance + variance + covariance terms.

    Uses ``lightly.loss.VICRegLoss`` with the paper's weights (25, 25, 1).

    Args:
        z1, z2: ``(B, d)`` embeddings of the two views, ``B >= 2``.
    """
    from lightly.loss import VICRegLoss

    _check_pair(z1, z2)
    return VICRegLoss(lambda_param=invariance, mu_param=variance, nu_param=covariance)(z1, z2)


# --------------------------------------------------------------------------- training


def make_optimizer(params, name: str = "adam", lr: float = 1e-3) -> torch.optim.Optimizer:
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
    _check_method(method)
    if method == "random-init":
        raise ValueError("random-init has no training loss")
    if method in HEAD_METHODS and head is None:
        raise ValueError(f"method {method!r} needs a classifier head")
    if method in SUPERVISED_METHODS:
        z = encoder(images)
        if method == "supervised-triplet":
            return semi_hard_triplet_loss(z, labels, margin)
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
            (normally an :class:`rmqm.models.Encoder`).
        dataset: training images and labels.
        method: one of :data:`METHODS`.
        head: classifier ``(B, d) -> (B, n_classes)`` for cross-entropy/triplet-entropy.
        optimizer: ``"adam"`` or ``"sgd-nesterov"``; ``lr`` its learning rate.
        temperature: NT-Xent temperature; ``margin``: triplet margin.
        progress: show a tqdm bar with the running loss.
    """
    from tqdm.auto import tqdm

    _check_method(method)
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
