"""measure_rmqm: alter inputs, track embeddings, score the manifold."""

from __future__ import annotations

import math
from collections.abc import Iterator
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
from rmqm.metrics.rmqm.alterations import ALTERATION_KINDS, PGD, Alteration, WhiteNoise
from rmqm.metrics.rmqm.attacks import (
    Augment,
    attack_levels,
    own_batch_loss,
    resolve_attack,
    rotation_augment,
)
from rmqm.metrics.rmqm.manifold import DROP_RULES, distance_series, point_statistics, summarize
from rmqm.metrics.rmqm.perturbations import (
    ATTACK_LOSSES,
    check_images,
    make_attack_loss,
    pgd_trajectory,
    white_noise_levels,
)
from rmqm.models.encoder import check_embeddings, encoder_dtype, evaluating_on

__all__ = ['PERTURBATIONS', 'DEFAULT_LEVELS', 'RMQMResult', 'resolve_pgd_mode', 'measure_rmqm', 'summary_table',
           'per_class_summary']


#: The alteration kinds, as the ``perturbation`` column of the tables names them.
PERTURBATIONS: tuple[str, ...] = tuple(ALTERATION_KINDS)


#: Levels (clean one included) of the default :class:`WhiteNoise` and :class:`PGD`.
DEFAULT_LEVELS: dict[str, int] = {"noise": WhiteNoise().n_levels, "pgd": PGD().n_levels}


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


def resolve_pgd_mode(pgd_mode: str | None, attack_loss: str) -> str:
    """The PGD mode of a measurement: ``pgd_mode``, or for None the mode ``attack_loss`` implies
    (``resolve_attack(attack_loss, pgd_mode).mode``, :func:`rmqm.metrics.rmqm.attacks.resolve_attack`).

    Raises:
        ValueError: an unknown mode or loss, or a mode that does not fit the loss.
    """
    check_choice(attack_loss, ATTACK_LOSSES, "attack loss")
    return resolve_attack(attack_loss, pgd_mode).mode


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
    alteration: Alteration | None = None,
    *,
    labels: torch.Tensor | None = None,
    head: nn.Module | None = None,
    augment: Augment | None = None,
    normalize: bool = True,
    drop: str = "per-series",
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> RMQMResult:
    """Representation Manifold Quality Metric of ``encoder`` on ``data`` under ``alteration``
    (the paper's Section 3: track each point's embedding through the levels, Eq. 1-4 on the
    distances, :mod:`rmqm.metrics.rmqm.manifold`).

    Args:
        encoder: maps images ``(B, C, H, W)`` in ``[0, 1]`` to embeddings ``(B, d)``
            (an :class:`rmqm.models.encoder.Encoder` applies its normalisation after the
            alteration). It runs on ``device`` in eval mode and is given back on its own
            device and in its own train/eval mode.
        data: an :class:`~rmqm.data.dataset.ImageDataset`, or images ``(N, C, H, W)`` in ``[0, 1]``.
        alteration: :class:`~rmqm.metrics.rmqm.alterations.WhiteNoise` (default:
            ``WhiteNoise()``, 100 levels up to std 1) or :class:`~rmqm.metrics.rmqm.alterations.PGD`
            (``PGD()``: 30 levels of the label-free displacement attack;
            ``PGD.for_method(method, mode)``: a model's own loss).
        labels: ``(N,)`` class labels when ``data`` is a tensor (for per-class scores
            and the label losses).
        head: classifier mapping embeddings to logits (the cross-entropy and triplet-entropy
            attacks: ``alteration.attack.needs_head``).
        augment: ``augment(images, generator) -> images``, differentiable: the clean view of the
            view losses (fixed per point in ``"own-loss"``, redrawn per step in ``"reference"``)
            and the reference's input/output augmentation. Default: a random rotation of at most
            15 degrees drawn as the attack's ``rotation`` says
            (:func:`rmqm.metrics.rmqm.attacks.rotation_augment`).
        normalize: L2-normalise embeddings before measuring distances.
        drop: ``"per-series"`` (default; the reference notebook's ``dropna`` per series: ``S_a``
            over the points whose ``r^a`` are all finite, ``S_b`` likewise) or ``"joint"`` (a
            point with any non-finite relative change leaves both); see
            :func:`rmqm.metrics.rmqm.manifold.point_statistics`.
        batch_size: points per batch, in order; under PGD also the attack's batch, which
            the batch-mean losses depend on (the reference attacks MNIST in batches of 128).
        seed: seeds the noise, the displacement direction and every augmentation;
            the same seed and batch size give identical numbers.
        device: ``"cpu"``, ``"cuda[:N]"``, ``"auto"`` (CUDA when present) or a ``torch.device``.
        progress: show a tqdm progress bar over batches and levels.

    Returns:
        An :class:`RMQMResult` with per-level, per-point and summary tables (per class too
        when there are labels: :func:`per_class_summary`).

    Raises:
        TypeError: ``encoder`` is not a module, ``alteration`` not a spec, images not a floating
            tensor, a non-integer ``batch_size``.
        ValueError: bad images or labels, an attack without the head or labels it needs, an
            encoder output that is not a finite ``(B, d)`` tensor, an unavailable device.

    Example:
        The pixels themselves as the representation (an identity encoder) under unclipped white
        noise: each level is a fresh draw of std ``sigma``, so at the last level (``sigma = 0.5``)
        a point lies about ``0.5 * sqrt(784) = 14`` from its original (distance ``a``) and about
        ``sqrt(0.5**2 + 0.375**2) * 28 = 17.5`` from the level before (step ``b``):

        >>> import torch
        >>> from rmqm import Encoder, WhiteNoise, load_dataset
        >>> pixels = Encoder(torch.nn.Flatten(), name="pixels")
        >>> noise = WhiteNoise(n_levels=5, sigma_max=0.5, clip=False)
        >>> result = measure_rmqm(pixels, load_dataset("digits", n=64), noise, normalize=False, progress=False)
        >>> last = result.levels.query("level == 4")[["a", "b"]].mean()
        >>> round(float(last["a"]) / 14, 1), round(float(last["b"]) / 17.5, 1), len(result.points)
        (1.0, 1.0, 64)
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
    alteration = WhiteNoise() if alteration is None else alteration
    if not isinstance(alteration, (WhiteNoise, PGD)):
        raise TypeError(f"alteration must be a WhiteNoise or PGD spec (rmqm.metrics.rmqm.alterations); "
                        f"got {alteration!r}")
    check_int(batch_size, "batch_size", low=1)
    check_choice(drop, DROP_RULES, "drop rule")
    attack = None
    if isinstance(alteration, PGD):
        spec = alteration.attack
        if spec.needs_head and (head is None or labels is None):
            raise ValueError(f"the {spec.loss} attack needs a classifier `head` and labels")
        if spec.needs_labels and labels is None:
            raise ValueError(f"the {spec.loss} attack needs labels")
        attack = _Attack(alteration, head, augment or rotation_augment(spec.rotation))

    device = torch.device(resolve_device(device))
    generator = torch.Generator().manual_seed(int(seed))
    n_levels = alteration.n_levels
    strengths = alteration.strengths()
    images = images.to(encoder_dtype(encoder))  # float32 unless the encoder was converted
    a_parts, b_parts = [], []
    n = images.shape[0]
    n_batches = math.ceil(n / batch_size)
    bar = tqdm(
        total=n_batches * n_levels, disable=not progress, unit="level",
        desc=f"RMQM {alteration.kind} ({n} points, {n_levels} levels)",
    )
    with bar, evaluating_on(encoder, device):
        for start in range(0, n, batch_size):
            x = images[start:start + batch_size].to(device)
            y = labels[start:start + batch_size] if labels is not None else None
            if attack is None:
                assert isinstance(alteration, WhiteNoise)
                levels = _noise_levels(encoder, x, strengths, generator, alteration.nested, alteration.clip)
            else:
                levels = _pgd_levels(encoder, x, y, generator, normalize, attack)
            z = torch.stack([_tick(z_k, bar) for z_k in levels], dim=1)
            a, b = distance_series(z.double(), normalize=normalize)
            a_parts.append(a.cpu().numpy())
            b_parts.append(b.cpu().numpy())

    a_all, b_all = np.concatenate(a_parts), np.concatenate(b_parts)
    points = point_statistics(a_all, b_all, drop=drop)
    label_col = labels.cpu().numpy() if labels is not None else np.full(n, -1)
    points.insert(0, "label", label_col)
    points.insert(0, "point", np.arange(n))
    m = n_levels - 1
    levels_table = pd.DataFrame(
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
    summary.insert(0, "perturbation", alteration.kind)
    config = dict(
        **alteration.keywords(), normalize=normalize, drop=drop, batch_size=int(batch_size), seed=int(seed),
        n_points=int(n), device=str(device),
    )
    return RMQMResult(alteration.kind, strengths.numpy(), points, levels_table, summary, config)


def _tick(z: torch.Tensor, bar: tqdm) -> torch.Tensor:
    bar.update(1)
    return z


def _noise_levels(encoder: nn.Module, x: torch.Tensor, strengths: torch.Tensor, generator: torch.Generator,
                  nested: bool, clip: bool) -> Iterator[torch.Tensor]:
    """Yield the ``(B, d)`` embedding of each white-noise level of one batch, in level order."""
    with torch.no_grad():
        for x_k in white_noise_levels(x, strengths, generator, nested=nested, clip=clip):
            yield _encode(encoder, x_k)


@dataclass(frozen=True)
class _Attack:
    """What the PGD levels of one measurement need besides the batch: the spec and its objects."""

    pgd: PGD
    head: nn.Module | None
    augment: Augment


def _pgd_levels(encoder: nn.Module, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator,
                normalize: bool, attack: _Attack) -> Iterator[torch.Tensor]:
    """Yield the ``(B, d)`` embedding of each PGD level of one batch under ``attack.pgd``."""
    pgd, augment = attack.pgd, attack.augment
    spec = pgd.attack
    if spec.mode == "reference":
        for x_k in attack_levels(encoder, x, spec, pgd.n_levels, generator, step_size=pgd.step_size,
                                 epsilon=pgd.epsilon, labels=y, head=attack.head, augment=augment,
                                 temperature=pgd.temperature, margin=pgd.margin):
            with torch.no_grad():
                yield _encode(encoder, x_k)
        return
    with torch.no_grad():
        z_clean = _encode(encoder, x)
        z_view = None
        if spec.view_loss:  # one augmented clean view, fixed for the whole trajectory
            z_view = _encode(encoder, augment(x, generator), where="encoder (augmented view)")
    if spec.mode == "displacement":
        loss_fn = make_attack_loss("displacement", z_clean, normalize=normalize, generator=generator)
    else:
        def loss_fn(z: torch.Tensor) -> torch.Tensor:
            return own_batch_loss(spec.loss, z, labels=y, head=attack.head, z_view=z_view,
                                  temperature=pgd.temperature, margin=pgd.margin)
    for _, z_k in pgd_trajectory(encoder, x, loss_fn, pgd.n_levels, pgd.step_size, pgd.epsilon):
        yield check_embeddings(z_k, x.shape[0])


def summary_table(*results: RMQMResult, scope: str | None = "all") -> pd.DataFrame:
    """Stack the summaries of several results (e.g. noise and PGD) into one table.

    ``scope="all"`` keeps only the over-all rows; ``None`` keeps the per-class rows too.

    >>> import torch
    >>> from rmqm import PGD, Encoder, WhiteNoise, load_dataset
    >>> pixels, data = Encoder(torch.nn.Flatten()), load_dataset("digits", n=32)
    >>> noise = measure_rmqm(pixels, data, WhiteNoise(n_levels=4, sigma_max=0.3), progress=False)
    >>> pgd = measure_rmqm(pixels, data, PGD(n_levels=4, epsilon=0.1), progress=False)
    >>> summary_table(noise, pgd)[["perturbation", "scope", "n_points"]].to_dict("list")
    {'perturbation': ['noise', 'pgd'], 'scope': ['all', 'all'], 'n_points': [32, 32]}
    """
    if not results or not all(isinstance(r, RMQMResult) for r in results):
        raise TypeError("summary_table takes one or more RMQMResult objects (from measure_rmqm)")
    table = pd.concat([r.summary for r in results], ignore_index=True)
    if scope is not None and scope not in set(table["scope"]):
        raise ValueError(f"unknown scope {scope!r}; the results hold {sorted(set(table['scope']))} "
                         "or None for all rows")
    return table[table["scope"] == scope].reset_index(drop=True) if scope is not None else table


def per_class_summary(result: RMQMResult) -> pd.DataFrame:
    """The per-class rows of ``result.summary`` (RMQM computed over each class's points, as the
    reference's per-method bar plots show it), with an integer ``label`` column first.

    Raises:
        ValueError: the measurement had no labels.
    """
    if not isinstance(result, RMQMResult):
        raise TypeError(f"per_class_summary takes an RMQMResult (from measure_rmqm); got {type(result).__name__}")
    rows = result.summary[result.summary["scope"].str.startswith("label=")].reset_index(drop=True)
    if rows.empty:
        raise ValueError("this measurement has no per-class rows: measure labelled data (an ImageDataset or labels)")
    labels = rows["scope"].str.slice(len("label=")).astype(int)
    return rows.assign(label=labels)[["label", *rows.columns]]
