"""Trained encoders on disk: configs, names, atomic checkpoints, load-or-train.

A checkpoint records the identity of what trained it (the code fingerprint of the
training code and the content identity of the training data, no folder) and a SHA-256 of its
own content (weights bit for bit, config, history, metrics: :func:`payload_digest`), checked
on every read; :func:`load_or_train` reuses it only when all match, and moves a damaged one to
``<zoo>/quarantine/`` (with a :class:`CheckpointWarning`) before retraining it.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from rmqm._utils.hashing import code_fingerprint, content_identity
from rmqm._utils.validation import check_int
from rmqm.data.dataset import ImageDataset
from rmqm.data.registry import data_identity, load_dataset, resolve_data
from rmqm.models.backbones import build_backbone
from rmqm.models.encoder import Encoder
from rmqm.training.configs import model_config, model_name, with_epochs
from rmqm.training.integrity import CheckpointWarning, payload_digest, quarantine_checkpoint
from rmqm.training.methods import HEAD_METHODS, SUPERVISED_METHODS
from rmqm.training.pretraining import PretrainResult, pretrain

__all__ = ['log', 'CHECKPOINT_FORMAT', 'TRAINING_MODULES', 'CheckpointWarning', 'CorruptCheckpointError',
           'TrainedModel', 'model_config', 'model_name', 'training_identity', 'build_model', 'train_model',
           'payload_digest', 'save_model', 'load_model', 'quarantine_checkpoint', 'load_or_train',
           'load_or_train_checkpoints', 'cached_model', 'default_encoder']


log = logging.getLogger(__name__)


CHECKPOINT_FORMAT = "rmqm-zoo/1"


#: The modules whose code trains a model (with every ``rmqm`` module they import: the
#: pretraining loop, losses, augmentation, backbones and data loaders).
TRAINING_MODULES: tuple[str, ...] = ("rmqm.training.checkpoints",)


class CorruptCheckpointError(ValueError):
    """A file is not a readable, complete rmqm zoo checkpoint; the message names it."""


@dataclass
class TrainedModel:
    """A trained (or random-init) encoder with everything needed to reproduce it.

    Attributes:
        name: unique name, ``<data>_<arch>_<method>_d<dim>_<optimizer>_s<seed>_<hash>``.
        encoder: :class:`rmqm.models.encoder.Encoder` in eval mode; ``[0, 1]`` images -> ``(B, d)``
            embeddings (the layer before ReLU -> logits for cross-entropy models); it applies
            the training data's mean/std itself.
        head: classifier ``(B, d) -> (B, n_classes)`` logits for cross-entropy and
            triplet-entropy models, else None.
        config: the full training config (see :func:`model_config`).
        history: per-step training loss (``step``, ``epoch``, ``loss``, ``elapsed_s``).
        train_info: ``train_time_s``, ``epochs_completed``, ``stopped_early``.
        metrics: downstream/label-free scores added by :func:`rmqm.training.zoo.train_zoo`.
        path: the checkpoint file, when saved.
        training: :func:`training_identity` of the code and data that trained it (empty
            when unknown).
    """

    name: str
    encoder: Encoder
    head: nn.Module | None
    config: dict[str, Any]
    history: pd.DataFrame
    train_info: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return str(self.config["method"])

    @property
    def supervised(self) -> bool:
        """True for methods that used class labels."""
        return self.method in SUPERVISED_METHODS


def training_identity(config: Mapping[str, Any], **data_kwargs: Any) -> dict[str, Any]:
    """What trains the model of ``config`` besides its config: the code fingerprint of
    :data:`TRAINING_MODULES` and the :func:`rmqm.data.registry.data_identity` of
    ``config["data"]`` without its folder (:func:`rmqm._utils.hashing.content_identity`: a data
    folder moved elsewhere is the same data; ``data_kwargs``: the loader's ``root``). JSON-ready."""
    return {"code": code_fingerprint(*TRAINING_MODULES),
            "data": content_identity(data_identity(str(config["data"]), **data_kwargs))}


def build_model(
    config: dict[str, Any], in_channels: int, n_classes: int, mean: Sequence[float], std: Sequence[float]
) -> tuple[Encoder, nn.Module | None]:
    """The untrained encoder (and classifier head) of ``config``, initialised from its seed.

    The head is ``Linear(ReLU(z))`` so that the embedding ``z`` is the layer before
    ReLU -> logits, as in the reference. The global RNG state is left untouched.
    """
    kwargs = {"width": config["width"]} if config["arch"] == "tiny" else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config["seed"]))
        backbone = build_backbone(config["arch"], in_channels, int(config["dim"]), **kwargs)
        head = None
        if config["method"] in HEAD_METHODS:
            head = nn.Sequential(nn.ReLU(), nn.Linear(int(config["dim"]), int(n_classes)))
    encoder = Encoder(backbone, mean, std, name=model_name(config))
    return encoder, head


def _training_data(config: dict[str, Any], **data_kwargs: Any) -> ImageDataset:
    return load_dataset(config["data"], split="train", n=config["n_train"], seed=config["seed"], **data_kwargs)


def train_model(
    config: dict[str, Any],
    *,
    dataset: ImageDataset | None = None,
    device: str = "cpu",
    progress: bool = True,
    checkpoint_epochs: Sequence[int] = (),
    on_checkpoint: Callable[[TrainedModel], None] | None = None,
) -> TrainedModel:
    """Build and train the model of ``config`` (no caching; see :func:`load_or_train`).

    Args:
        config: from :func:`model_config`.
        dataset: training data; by default the ``train`` split of ``config["data"]``
            subsampled to ``config["n_train"]`` with ``config["seed"]``.
        checkpoint_epochs: epoch counts in ``[1, config["epochs"]]``; after each,
            ``on_checkpoint`` gets the model so far as the model of ``config`` with
            ``epochs=e`` (its name and config; the live, eval-mode modules: save or copy them
            before returning).
    """
    ds = dataset if dataset is not None else _training_data(config)
    encoder, head = build_model(config, ds.images.shape[1], ds.n_classes, ds.mean, ds.std)

    def info(result: PretrainResult) -> dict[str, Any]:
        return {
            "train_time_s": result.train_time_s, "epochs_completed": result.epochs_completed,
            "stopped_early": result.stopped_early, "n_train_used": len(ds),
            "in_channels": int(ds.images.shape[1]), "n_classes": int(ds.n_classes),
            "mean": list(map(float, ds.mean)), "std": list(map(float, ds.std)),
            "input_size": list(ds.images.shape[2:]),
        }

    def snapshot(epoch: int, result: PretrainResult) -> None:
        if on_checkpoint is not None:
            at = {**config, "epochs": int(epoch)}
            on_checkpoint(TrainedModel(model_name(at), encoder, head, at, result.history, info(result)))

    result = pretrain(
        encoder, ds, config["method"], head=head, epochs=config["epochs"],
        batch_size=config["batch_size"], accumulate=config.get("accumulate", 1), optimizer=config["optimizer"],
        lr=config["lr"], temperature=config["temperature"], margin=config["margin"], seed=config["seed"],
        time_budget_s=config["time_budget_s"], device=device, progress=progress,
        checkpoint_epochs=checkpoint_epochs, on_checkpoint=snapshot,
    )
    return TrainedModel(model_name(config), encoder, head, dict(config), result.history, info(result))


def save_model(model: TrainedModel, path: str | os.PathLike) -> Path:
    """Write ``model`` (weights, config, history, metrics, the :func:`payload_digest` of all
    of them) to ``path`` atomically, with the same permissions as any other file (umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "name": model.name,
        "config": model.config,
        "train_info": model.train_info,
        "metrics": model.metrics,
        "training": model.training,
        "history": {c: model.history[c].tolist() for c in model.history.columns},
        "encoder_state": {k: v.detach().cpu() for k, v in model.encoder.state_dict().items()},
        "head_state": None if model.head is None else {k: v.detach().cpu() for k, v in model.head.state_dict().items()},
    }
    payload["content_sha256"] = payload_digest(payload)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # created as open() does: umask, not 0600
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    model.path = path
    return path


def _read_model(path: Path, device: str) -> TrainedModel:
    """The model of the checkpoint at ``path``; :class:`CorruptCheckpointError` naming the file otherwise."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch all raise their own types on garbage
        raise CorruptCheckpointError(
            f"{path} is not a readable rmqm zoo checkpoint: {type(err).__name__}: {err}") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CorruptCheckpointError(f"{path} is not an rmqm zoo checkpoint (format {CHECKPOINT_FORMAT})")
    try:
        actual = payload_digest(payload)
    except (TypeError, ValueError, AttributeError, RuntimeError) as err:
        raise CorruptCheckpointError(f"{path} is an incomplete rmqm zoo checkpoint: {err}") from err
    if payload.get("content_sha256") != actual:
        recorded = str(payload.get("content_sha256"))[:12] if payload.get("content_sha256") else "none"
        raise CorruptCheckpointError(f"{path} is damaged: its content's SHA-256 {actual[:12]} is not the one "
                                     f"recorded when it was written ({recorded})")
    try:
        config, info = payload["config"], payload["train_info"]
        encoder, head = build_model(config, info["in_channels"], info["n_classes"], info["mean"], info["std"])
        encoder.load_state_dict(payload["encoder_state"])
        if head is not None:
            head.load_state_dict(payload["head_state"])
            head.to(device).eval()
        history = pd.DataFrame(payload["history"] or {"step": [], "epoch": [], "loss": [], "elapsed_s": []})
        return TrainedModel(payload["name"], encoder.to(device).eval(), head, config, history, info,
                            payload.get("metrics") or {}, path, payload.get("training") or {})
    except (KeyError, TypeError, ValueError, RuntimeError) as err:  # incomplete, or weights that do not fit
        raise CorruptCheckpointError(f"{path} is an incomplete or inconsistent rmqm zoo checkpoint: "
                                     f"{type(err).__name__}: {err}") from err


def load_model(name_or_path: str | os.PathLike, zoo_dir: str | os.PathLike = "results/zoo",
               device: str = "cpu") -> TrainedModel:
    """Load a checkpoint by file path, or by model name from ``zoo_dir``.

    A damaged checkpoint found by name is moved to ``zoo_dir/quarantine/`` (see
    :func:`quarantine_checkpoint`) before the error is raised, so that the zoo retrains it.

    Raises:
        FileNotFoundError: no such checkpoint (the message lists what the zoo holds).
        CorruptCheckpointError: (a ValueError) the file is not a readable rmqm zoo
            checkpoint; the message names it and says how to retrain it.
    """
    path = Path(name_or_path)
    by_name = not path.exists()
    if by_name:
        path = Path(zoo_dir) / f"{name_or_path}.pt"
    if not path.exists():
        names = sorted(p.stem for p in Path(zoo_dir).glob("*.pt")) if Path(zoo_dir).is_dir() else []
        raise FileNotFoundError(
            f"no checkpoint {str(name_or_path)!r} (looked for {path}); zoo {str(zoo_dir)!r} holds {names[:20]}"
        )
    try:
        return _read_model(path, device)
    except CorruptCheckpointError as err:
        if not by_name:
            raise
        dest = quarantine_checkpoint(path, str(err))
        raise CorruptCheckpointError(
            f"{err}\nIt was moved to {dest}. Retrain it by rerunning the zoo (rmqm.training.zoo.train_zoo, "
            "`rmqm zoo`, or `rmqm study run`, which reruns the notebook whose checkpoint went missing)."
        ) from None


def load_or_train(
    config: dict[str, Any],
    cache_dir: str | os.PathLike = "results/zoo",
    *,
    dataset: ImageDataset | None = None,
    device: str = "cpu",
    progress: bool = True,
    retrain: bool = False,
    data_kwargs: Mapping[str, Any] | None = None,
) -> TrainedModel:
    """Load the cached model of ``config`` from ``cache_dir``, or train and save it first.

    The checkpoint is reused only if it holds ``config`` and was trained by the current
    training code on the same data (:func:`training_identity`); otherwise the model is
    retrained and the file replaced. A damaged checkpoint is quarantined (with a
    :class:`CheckpointWarning`) and retrained.

    Args:
        dataset: the training data of ``config`` (saves reloading it for each model).
        data_kwargs: the data loader's keyword arguments (``root``).
    """
    epochs = int(config["epochs"])
    return load_or_train_checkpoints(config, [epochs], cache_dir, dataset=dataset, device=device, progress=progress,
                                     retrain=retrain, data_kwargs=data_kwargs)[epochs]


def load_or_train_checkpoints(
    config: dict[str, Any],
    epochs: Sequence[int],
    cache_dir: str | os.PathLike = "results/zoo",
    *,
    dataset: ImageDataset | None = None,
    device: str = "cpu",
    progress: bool = True,
    retrain: bool = False,
    data_kwargs: Mapping[str, Any] | None = None,
) -> dict[int, TrainedModel]:
    """The models of ``config`` after each of ``epochs`` epochs, each cached as the model of
    ``config`` with that many epochs (:func:`rmqm.training.configs.with_epochs`).

    Those cached and valid (see :func:`cached_model`) are loaded; if any is missing, ONE run of
    ``max(missing)`` epochs trains them all and saves each missing one when it is reached (a
    prefix of a run is exactly a shorter run: :func:`rmqm.training.pretraining.pretrain`).

    Args:
        config: from :func:`model_config` (its ``epochs`` is ignored).
        epochs: epoch counts, each >= 1, or 0 for a ``random-init`` config (its initial model; any
            order; duplicates ignored).
        dataset, device, progress, retrain, data_kwargs: as :func:`load_or_train`.

    Returns:
        ``{e: model}`` in increasing ``e``.
    """
    wanted = sorted({check_int(e, "checkpoint epoch", low=0) for e in epochs})
    if not wanted:
        raise ValueError("give at least one checkpoint epoch (e.g. [config['epochs']])")
    kwargs = dict(data_kwargs or {})
    configs = {e: with_epochs(config, e) for e in wanted}  # refuses epoch 0 unless the method is random-init
    models = {} if retrain else {e: cached_model(c, cache_dir, device=device, data_kwargs=kwargs)
                                 for e, c in configs.items()}
    missing = [e for e in wanted if models.get(e) is None]
    if missing:
        identity = training_identity(config, **kwargs)

        def save(model: TrainedModel) -> None:
            if model.config["epochs"] in missing:
                model.training = identity
                save_model(model, Path(cache_dir) / f"{model.name}.pt")

        data = dataset if dataset is not None else _training_data(config, **kwargs)
        if 0 in missing:  # the random init itself: built, not trained
            save(train_model(configs[0], dataset=data, device=device, progress=progress))
        trained = [e for e in missing if e > 0]
        if trained:
            train_model(configs[max(trained)], dataset=data, device=device, progress=progress,
                        checkpoint_epochs=trained, on_checkpoint=save)
        models.update({e: _read_model(Path(cache_dir) / f"{model_name(configs[e])}.pt", device) for e in missing})
    return {e: m for e, m in sorted(models.items()) if m is not None}


def cached_model(config: dict[str, Any], cache_dir: str | os.PathLike = "results/zoo", *, device: str = "cpu",
                 data_kwargs: Mapping[str, Any] | None = None) -> TrainedModel | None:
    """The model of ``config`` cached in ``cache_dir`` if it holds ``config`` and was trained by
    the current training code on the same data (:func:`training_identity`), else None (a
    damaged checkpoint is quarantined with a :class:`CheckpointWarning` first)."""
    path = Path(cache_dir) / f"{model_name(config)}.pt"
    if not path.exists():
        return None
    try:
        model = _read_model(path, device)
    except CorruptCheckpointError as err:
        quarantine_checkpoint(path, f"{err}; retraining it")
        return None
    if model.config == config and model.training == training_identity(config, **dict(data_kwargs or {})):
        return model
    log.info("checkpoint %s was trained by other code, data or config; retraining", path)
    return None


def default_encoder(
    data: str = "fashion-mnist",
    *,
    dim: int = 32,
    method: str = "cross-entropy",
    n_train: int = 6000,
    epochs: int = 2,
    seed: int = 0,
    cache_dir: str | Path = "results/zoo",
    device: str = "cpu",
    progress: bool = True,
) -> TrainedModel:
    """The study's default CPU encoder: a :class:`rmqm.models.backbones.TinyCNN` trained on ``data``.

    Loads the checkpoint cached under its config in ``cache_dir``, or trains it (Adam,
    lr 1e-3, batch 128, a fixed number of epochs: no wall-clock budget) on ``n_train`` images of the train split
    and saves it. Falls back to ``"digits"`` with a
    :class:`~rmqm.data.dataset.DataFallbackWarning` when Fashion-MNIST is missing.
    """
    config = model_config(resolve_data(data), method, dim, n_train=n_train, epochs=epochs, seed=seed)
    return load_or_train(config, cache_dir, device=device, progress=progress)
