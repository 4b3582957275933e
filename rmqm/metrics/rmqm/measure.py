"""measure_rmqm: alter inputs, track embeddings, score the manifold."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm  # plain bars: tqdm.auto warns on import in a kernel without ipywidgets

from rmqm._utils.device import resolve_device
from rmqm._utils.validation import check_choice, check_int, check_labels
from rmqm.data.dataset import ImageDataset
from rmqm.metrics.rmqm.manifold import distance_series, point_statistics, summarize
from rmqm.metrics.rmqm.perturbations import (
    ATTACK_LOSSES,
    check_images,
    check_n_levels,
    check_pgd_params,
    make_attack_loss,
    noise_levels,
    pgd_trajectory,
    white_noise_levels,
)
from rmqm.models.encoder import check_embeddings, encoder_dtype, evaluating_on

__all__ = ['PERTURBATIONS', 'DEFAULT_LEVELS', 'RMQMResult', 'measure_rmqm', 'summary_table']


PERTURBATIONS = ("noise", "pgd")


DEFAULT_LEVELS = {"noise": 100, "pgd": 30}


@dataclass(frozen=True)
class RMQMResult:
    """What :func:`measure_rmqm` measured.

    Attributes:
        perturbation: ``"noise"`` or ``"pgd"``.
        strengths: ``(L,)`` alteration strength of each level: the noise std (pixel
            units) or the number of PGD steps.
        points: one row per point: ``point, label`` and the statistics of
            :func:`rmqm.metrics.rmqm.manifold.point_statistics`.
        levels: long table, one row per point and level ``k = 1..L-1``: ``point, label,
            level, strength, a`` (distance from the original) and ``b`` (step size).
        summary: RMQM and its components over all points (``scope == "all"``) and per
            class (``scope == "label=<c>"``).
        config: the parameters of the measurement (enough to repeat it).
    """

    perturbation: str
    strengths: np.ndarray
    points: pd.DataFrame
    levels: pd.DataFrame
    summary: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """RMQM over all points."""
        return float(self.summary.loc[self.summary["scope"] == "all", "rmqm"].iloc[0])

    def distances(self) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)`` as ``(N, L - 1)`` arrays (rows in point order)."""
        n, m = len(self.points), len(self.strengths) - 1
        return (self.levels["a"].to_numpy().reshape(n, m), self.levels["b"].to_numpy().reshape(n, m))


def _validate(perturbation: str, n_levels: int, step_size: float, epsilon: float, attack_loss: str,
              batch_size: int) -> None:
    """Raise a named error for a bad parameter of :func:`measure_rmqm`."""
    check_choice(perturbation, PERTURBATIONS, "perturbation")
    check_n_levels(n_levels)
    check_pgd_params(n_levels - 1, step_size, epsilon)
    check_choice(attack_loss, ATTACK_LOSSES, "attack loss")
    check_int(batch_size, "batch_size", low=1)


def _encode(encoder: nn.Module, x: torch.Tensor, where: str = "encoder") -> torch.Tensor:
    """``encoder(x)``, checked to be finite ``(B, d)``; a failure inside the encoder names the input."""
    try:
        z = encoder(x)
    except RuntimeError as err:
        raise ValueError(f"the {where} could not embed images of shape {tuple(x.shape)} ({x.dtype}): {err}") from err
    return check_embeddings(z, x.shape[0], where=where)


def measure_rmqm(
    encoder: nn.Module,
    data: ImageDataset | torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    perturbation: str = "noise",
    n_levels: int | None = None,
    sigma_max: float = 1.0,
    nested: bool = False,
    clip: bool = True,
    step_size: float = 1 / 255,
    epsilon: float = 0.3,
    attack_loss: str = "displacement",
    head: nn.Module | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    temperature: float = 0.07,
    normalize: bool = True,
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> RMQMResult:
    """Representation Manifold Quality Metric of ``encoder`` on ``data``.

    Args:
        encoder: maps images ``(B, C, H, W)`` in ``[0, 1]`` to embeddings ``(B, d)``
            (an :class:`rmqm.models.encoder.Encoder` applies its normalisation after the
            alteration). It runs on ``device`` in eval mode and is given back on its own
            device and in its own train/eval mode.
        data: an :class:`~rmqm.data.dataset.ImageDataset`, or images ``(N, C, H, W)`` in ``[0, 1]``.
        labels: ``(N,)`` class labels when ``data`` is a tensor (for per-class scores
            and the cross-entropy attack).
        perturbation: ``"noise"`` (white noise of growing std) or ``"pgd"``.
        n_levels: levels including the clean one (default 100 for noise, 30 for PGD).
        sigma_max: largest noise std, pixel units (levels ``linspace(0, sigma_max, L)``).
        nested: one noise draw shared by all levels instead of a fresh draw per level.
        clip: clamp noisy images to ``[0, 1]``.
        step_size: PGD step ``alpha`` in pixel units (reference 1/255 CIFAR, 2/255 MNIST).
        epsilon: PGD L-infinity radius, pixel units. Not SynBench's budget: the
            ``epsilons`` of :func:`rmqm.metrics.synbench.evaluate.evaluate_synbench` are
            L2 radii in feature space relative to the class mean. The names follow the
            two papers and are kept, as the study's configs and tables use them.
        attack_loss: ``"displacement"`` (label-free), ``"cross-entropy"`` (needs
            ``head`` and labels) or ``"nt-xent"`` (needs ``augment``).
        head: classifier mapping embeddings to logits, for the cross-entropy attack.
        augment: ``augment(images, generator) -> images``; draws the fixed augmented view
            that the NT-Xent attack contrasts against.
        temperature: NT-Xent temperature.
        normalize: L2-normalise embeddings before measuring distances.
        batch_size: points per batch (memory grows with ``batch_size * L * d``).
        seed: seeds the noise, the displacement direction and the augmented view;
            the same seed and batch size give identical numbers.
        device: ``"cpu"``, ``"cuda[:N]"``, ``"auto"`` (CUDA when present) or a ``torch.device``.
        progress: show a tqdm progress bar over batches and levels.

    Returns:
        An :class:`RMQMResult` with per-level, per-point and summary tables.

    Raises:
        TypeError: ``encoder`` is not a module, images not a floating tensor, a non-integer ``batch_size``.
        ValueError: bad images, labels or parameters, an encoder output that is not a finite
            ``(B, d)`` tensor, an unavailable device.
    """
    if isinstance(data, ImageDataset):
        if labels is not None:
            raise ValueError("pass labels only with an images tensor; an ImageDataset has its own")
        images, labels = data.images, data.labels
    else:
        images = data
    check_images(images)
    if labels is not None:
        check_labels(labels, images.shape[0], of="images")
        labels = torch.as_tensor(labels)
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"encoder must be a torch.nn.Module; got {type(encoder).__name__}")
    n_levels = DEFAULT_LEVELS.get(perturbation, 3) if n_levels is None else n_levels
    _validate(perturbation, n_levels, step_size, epsilon, attack_loss, batch_size)
    if perturbation == "pgd" and attack_loss == "cross-entropy" and (head is None or labels is None):
        raise ValueError("the cross-entropy attack needs a classifier `head` and labels")
    if perturbation == "pgd" and attack_loss == "nt-xent" and augment is None:
        raise ValueError("the nt-xent attack needs `augment`, a function drawing an augmented view")

    device = torch.device(resolve_device(device))
    generator = torch.Generator().manual_seed(int(seed))
    noise_sigmas = noise_levels(sigma_max, n_levels)  # validates sigma_max for both schedules
    strengths = noise_sigmas if perturbation == "noise" else torch.arange(n_levels, dtype=torch.float64)
    images = images.to(encoder_dtype(encoder))  # float32 unless the encoder was converted
    a_parts, b_parts = [], []
    n = images.shape[0]
    n_batches = math.ceil(n / batch_size)
    bar = tqdm(
        total=n_batches * n_levels, disable=not progress, unit="level",
        desc=f"RMQM {perturbation} ({n} points, {n_levels} levels)",
    )
    with bar, evaluating_on(encoder, device):
        for start in range(0, n, batch_size):
            x = images[start:start + batch_size].to(device)
            y = labels[start:start + batch_size] if labels is not None else None
            z = torch.stack(
                list(_embed_levels(
                    encoder, x, y, perturbation, strengths, generator, nested, clip, n_levels,
                    step_size, epsilon, attack_loss, head, augment, temperature, normalize, bar,
                )),
                dim=1,
            )
            a, b = distance_series(z.double(), normalize=normalize)
            a_parts.append(a.cpu().numpy())
            b_parts.append(b.cpu().numpy())

    a_all, b_all = np.concatenate(a_parts), np.concatenate(b_parts)
    points = point_statistics(a_all, b_all)
    label_col = labels.cpu().numpy() if labels is not None else np.full(n, -1)
    points.insert(0, "label", label_col)
    points.insert(0, "point", np.arange(n))
    m = n_levels - 1
    levels = pd.DataFrame(
        {
            "point": np.repeat(np.arange(n), m),
            "label": np.repeat(label_col, m),
            "level": np.tile(np.arange(1, n_levels), n),
            "strength": np.tile(strengths.numpy()[1:], n),
            "a": a_all.ravel(),
            "b": b_all.ravel(),
        }
    )
    summary = summarize(points, by="label" if labels is not None else None)
    summary.insert(0, "perturbation", perturbation)
    config = dict(
        perturbation=perturbation, n_levels=int(n_levels), sigma_max=float(sigma_max), nested=nested,
        clip=clip, step_size=float(step_size), epsilon=float(epsilon), attack_loss=attack_loss,
        temperature=float(temperature), normalize=normalize, batch_size=int(batch_size), seed=int(seed),
        n_points=int(n), device=str(device),
    )
    return RMQMResult(perturbation, strengths.numpy(), points, levels, summary, config)


def _embed_levels(
    encoder: nn.Module, x: torch.Tensor, y: torch.Tensor | None, perturbation: str,
    strengths: torch.Tensor, generator: torch.Generator, nested: bool, clip: bool, n_levels: int,
    step_size: float, epsilon: float, attack_loss: str, head: nn.Module | None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None, temperature: float,
    normalize: bool, bar: tqdm,
) -> Iterator[torch.Tensor]:
    """Yield the ``(B, d)`` embedding of each level of one batch, in level order."""
    if perturbation == "noise":
        with torch.no_grad():
            for x_k in white_noise_levels(x, strengths, generator, nested=nested, clip=clip):
                yield _encode(encoder, x_k)
                bar.update(1)
        return
    with torch.no_grad():
        z_clean = _encode(encoder, x)
        z_view = None
        if attack_loss == "nt-xent" and augment is not None:  # measure_rmqm checked it is given
            view = augment(x.cpu(), generator).to(x.device)
            z_view = _encode(encoder, view, where="encoder (augmented view)")
    loss_fn = make_attack_loss(
        attack_loss, z_clean, normalize=normalize, labels=y, head=head, z_view=z_view,
        temperature=temperature, generator=generator,
    )
    for _, z_k in pgd_trajectory(encoder, x, loss_fn, n_levels, step_size, epsilon):
        yield check_embeddings(z_k, x.shape[0])
        bar.update(1)


def summary_table(*results: RMQMResult, scope: str | None = "all") -> pd.DataFrame:
    """Stack the summaries of several results (e.g. noise and PGD) into one table.

    ``scope="all"`` keeps only the over-all rows; ``None`` keeps the per-class rows too.
    """
    if not results or not all(isinstance(r, RMQMResult) for r in results):
        raise TypeError("summary_table takes one or more RMQMResult objects (from measure_rmqm)")
    table = pd.concat([r.summary for r in results], ignore_index=True)
    if scope is not None and scope not in set(table["scope"]):
        raise ValueError(f"unknown scope {scope!r}; the results hold {sorted(set(table['scope']))} "
                         "or None for all rows")
    return table[table["scope"] == scope].reset_index(drop=True) if scope is not None else table
