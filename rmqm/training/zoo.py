"""The model zoo: every (method, dim, optimiser, seed) trained, cached and scored downstream."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rmqm._utils.hashing import code_fingerprint
from rmqm._utils.io import atomic_write_json
from rmqm._utils.progress import progress_bar
from rmqm._utils.validation import check_int
from rmqm.data.dataset import ImageDataset
from rmqm.data.registry import OFFLINE_DATASETS, data_record, load_dataset
from rmqm.metrics.baselines import label_free_scores
from rmqm.metrics.probes import embed_dataset, evaluate_probes
from rmqm.training.checkpoints import (
    TrainedModel,
    load_or_train_checkpoints,
    model_name,
    save_model,
)
from rmqm.training.configs import TrainingConfig, with_epochs
from rmqm.training.methods import METHODS, method_family

__all__ = ['TINY_ZOO', 'TINY_TRAINING', 'DATA_USED', 'EVAL_MODULES', 'evaluate_model', 'eval_key', 'zoo_checkpoints',
           'train_zoo', 'family_summary']


#: The tiny CPU zoo of the book's default profile: every method at two dimensions.
TINY_ZOO: dict[str, Any] = {
    "dims": (16, 64), "n_train": 3000, "epochs": 2, "time_budget_s": None, "n_eval": 1000,
}

#: How :func:`train_zoo` trains each model by default (the tiny zoo of ``rmqm zoo``).
TINY_TRAINING = TrainingConfig(n_train=TINY_ZOO["n_train"], epochs=TINY_ZOO["epochs"],
                               time_budget_s=TINY_ZOO["time_budget_s"])


#: File that :func:`train_zoo` writes into its ``cache_dir``: the :func:`rmqm.data.registry.data_record`
#: of the data it actually used (read by the study runner for the reproducibility page).
DATA_USED = "data_used.json"


#: The modules whose code computes a model's scores (:func:`evaluate_model`, the probes,
#: RankMe and alpha-ReQ), with every ``rmqm`` module they import.
EVAL_MODULES: tuple[str, ...] = ("rmqm.training.zoo",)


def _load_transfer(name: str, n: int | None, **kwargs: Any) -> ImageDataset:
    split = "all" if name in OFFLINE_DATASETS + ("caltech101",) else "test"
    return load_dataset(name, split=split, n=n, seed=0, **kwargs)


def evaluate_model(
    model: TrainedModel,
    transfer: dict[str, ImageDataset],
    eval_data: ImageDataset,
    *,
    k: int = 5,
    device: str = "cpu",
) -> dict[str, float]:
    """Downstream, in-distribution and label-free scores of one model.

    For each transfer task ``t``: ``t_1nn``, ``t_knn`` and ``t_linear`` accuracies on a fixed
    half split (seed 0); ``indist_knn`` and ``indist_linear``, the same k-NN and linear probes on
    the same kind of fixed half split of ``eval_data`` (the pretraining set's test split); then
    ``rankme`` and ``alpha_req`` of the embeddings of ``eval_data`` (no labels used).
    """

    channels = int(model.train_info["in_channels"])
    size = tuple(model.train_info["input_size"])
    scores: dict[str, float] = {}
    for task, ds in transfer.items():
        if ds.images.shape[1] != channels:
            raise ValueError(
                f"transfer set {task!r} has {ds.images.shape[1]} channels but {model.name} takes {channels}"
            )
        accs = evaluate_probes(model.encoder, ds.resized(size), seed=0, k=k, device=device)
        scores.update({f"{task}_{probe}": acc for probe, acc in accs.items()})
    indist = evaluate_probes(model.encoder, eval_data.resized(size), seed=0, k=k, device=device)
    scores.update({"indist_knn": indist["knn"], "indist_linear": indist["linear"]})
    z = embed_dataset(model.encoder, eval_data.resized(size).images, device=device)
    scores.update(label_free_scores(z))
    return scores


def eval_key(record: Mapping[str, Any], n_transfer: int | None, n_eval: int | None, k: int) -> str:
    """The key under which a model's scores are stored in its checkpoint: the evaluation
    settings, the code fingerprint of :data:`EVAL_MODULES` and the identities of the
    transfer sets and of the pretraining set's test split (``record``: :func:`data_record`)."""
    return json.dumps({
        "transfer": [t["name"] for t in record["transfer"]], "n_transfer": n_transfer, "n_eval": n_eval, "k": k,
        "code": code_fingerprint(*EVAL_MODULES), "data": [record["pretraining"], *record["transfer"]],
    }, sort_keys=True)


def zoo_checkpoints(checkpoints: Sequence[int] | None, epochs: int) -> list[int]:
    """The epochs at which :func:`train_zoo` keeps a model: sorted distinct ``checkpoints``
    (each >= 1), or ``[epochs]`` when None.

    Raises:
        TypeError, ValueError: a checkpoint that is not an integer >= 1, or an empty list.
    """
    if checkpoints is None:
        return [check_int(epochs, "epochs", low=1)]
    if isinstance(checkpoints, (str, bytes)) or not isinstance(checkpoints, Sequence):
        raise TypeError(f"checkpoints must be a list of epoch counts (e.g. [1, 2, 4]) or None; got {checkpoints!r}")
    wanted = sorted({check_int(e, "checkpoint epoch", low=1) for e in checkpoints})
    if not wanted:
        raise ValueError("checkpoints is empty: give epoch counts (e.g. [1, 2, 4]) or None for just `epochs`")
    return wanted


def train_zoo(
    methods: Sequence[str] = METHODS,
    dims: Sequence[int] = TINY_ZOO["dims"],
    seeds: Sequence[int] = (0,),
    *,
    data: str = "fashion-mnist",
    transfer: Sequence[str] | None = None,
    training: TrainingConfig = TINY_TRAINING,
    optimizers: Sequence[str] = ("adam",),
    checkpoints: Sequence[int] | None = None,
    n_eval: int | None = TINY_ZOO["n_eval"],
    n_transfer: int | None = None,
    k: int = 5,
    cache_dir: str | os.PathLike = "results/zoo",
    device: str = "cpu",
    progress: bool = True,
    retrain: bool = False,
    **data_kwargs: Any,
) -> pd.DataFrame:
    """Train (or load) every (method, dim, optimizer, seed) model and score it at every checkpoint.

    Each (method, dim, optimizer, seed) is trained ONCE, to ``max(checkpoints)`` epochs, and the
    model after each checkpoint epoch ``e`` is saved as its own cached model (its config has
    ``epochs=e``; a prefix of a run is exactly a shorter run, see
    :func:`rmqm.training.checkpoints.load_or_train_checkpoints`). Every checkpoint is saved as
    soon as it is reached and again with its scores, so an interrupted run loses nothing and a
    rerun skips finished work: models are cached by config, training code and training data,
    scores by :func:`eval_key`. The data actually used (after a loud fallback, see
    :func:`rmqm.data.registry.resolve_data`) is written to ``cache_dir/data_used.json``
    (:data:`DATA_USED`).

    Args:
        methods, dims, seeds, optimizers: the grid (see :data:`rmqm.training.methods.METHODS`).
        data: pretraining set (``"fashion-mnist"`` falls back to ``"digits"`` when missing).
        transfer: downstream sets; default :func:`rmqm.data.registry.transfer_tasks` of ``data``.
            They must differ from ``data``.
        training: how every model is trained (:class:`rmqm.training.configs.TrainingConfig`: arch,
            lr, epochs, batch size, accumulation, training images, ...); its data, method, dim,
            optimizer and seed are replaced by each grid cell's, its epochs by the last checkpoint.
        checkpoints: the epochs at which a model is kept and scored (:func:`zoo_checkpoints`:
            ``checkpoints``, or just ``training.epochs`` when None).
        n_eval: points of ``data``'s test split for the in-distribution probes, RankMe and alpha-ReQ.
        n_transfer: subsample each transfer set (None: all of it).
        k: neighbours of the k-NN probe.
        **data_kwargs: ``root``/``download`` for torchvision datasets.

    Returns:
        One row per model and checkpoint: ``name, data, arch, method, family, dim, optimizer,
        seed, epoch, train_time_s, epochs_completed, stopped_early, final_loss``, then
        ``<task>_1nn``, ``<task>_knn``, ``<task>_linear`` per transfer task, ``indist_knn``,
        ``indist_linear``, ``rankme`` and ``alpha_req``.
    """
    def kwargs_for(name: str) -> dict[str, Any]:  # root/download only reach file-backed loaders
        return {} if name in OFFLINE_DATASETS else data_kwargs

    if not isinstance(training, TrainingConfig):
        raise TypeError(f"training must be a TrainingConfig; got {type(training).__name__} "
                        "(TrainingConfig.from_key reads a dict)")
    kept = zoo_checkpoints(checkpoints, training.epochs)
    record = data_record(data, transfer, **data_kwargs)
    data = record["used"]
    tasks = tuple(t["name"] for t in record["transfer"])
    if data in tasks:
        raise ValueError(f"transfer sets must differ from the pretraining set {data!r}; got {list(tasks)}")
    configs = [
        training.replace(data=data, method=method, dim=dim, optimizer=opt, seed=seed, epochs=max(kept)).key()
        for seed in seeds for opt in optimizers for dim in dims for method in methods
    ]
    if not configs:
        raise ValueError("the zoo is empty: give at least one method, dim, optimizer and seed")
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(cache_dir) / DATA_USED, record)
    key = eval_key(record, n_transfer, n_eval, k)

    cache: dict[Any, Any] = {}

    def training_data(seed: int) -> ImageDataset:  # loaded only if some model must be trained
        if ("train", seed) not in cache:
            cache[("train", seed)] = load_dataset(data, split="train", n=training.n_train, seed=seed,
                                                  **kwargs_for(data))
        return cache[("train", seed)]

    def eval_sets() -> tuple[dict[str, ImageDataset], ImageDataset]:
        if "eval" not in cache:
            sets = {t: _load_transfer(t, n_transfer, **kwargs_for(t)) for t in tasks}
            cache["eval"] = (sets, load_dataset(data, split="test", n=n_eval, seed=0, **kwargs_for(data)))
        return cache["eval"]

    rows = []
    bar = progress_bar(configs, desc="zoo", enabled=progress)
    for config in bar:
        bar.set_postfix_str(model_name(config))
        needs_training = retrain or not all(
            (Path(cache_dir) / f"{model_name(with_epochs(config, e))}.pt").exists() for e in kept)
        models = load_or_train_checkpoints(
            config, kept, cache_dir, dataset=training_data(config["seed"]) if needs_training else None,
            device=device, progress=progress, retrain=retrain, data_kwargs=kwargs_for(data),
        )
        scored: dict[str, Any] = {}
        for epoch, model in models.items():
            if model.metrics.get("eval_key") != key:
                start = time.perf_counter()
                if config["method"] == "random-init" and scored:  # every checkpoint is the same init
                    scores = scored
                else:
                    sets, eval_data = eval_sets()
                    scores = evaluate_model(model, sets, eval_data, k=k, device=device)
                model.metrics = {"eval_key": key, "eval_time_s": time.perf_counter() - start, **scores}
                save_model(model, Path(cache_dir) / f"{model.name}.pt")
            scored = {c: v for c, v in model.metrics.items() if c not in ("eval_key", "eval_time_s")}
            rows.append(_zoo_row(model, epoch, scored))
    return pd.DataFrame(rows)


def _zoo_row(model: TrainedModel, epoch: int, scores: Mapping[str, Any]) -> dict[str, Any]:
    config = model.config
    tail = model.history["loss"].tail(5)
    return {
        "name": model.name, "data": config["data"], "arch": config["arch"], "method": config["method"],
        "family": method_family(config["method"]), "dim": config["dim"],
        "optimizer": config["optimizer"], "seed": config["seed"], "epoch": int(epoch),
        "train_time_s": model.train_info.get("train_time_s", 0.0),
        "epochs_completed": model.train_info.get("epochs_completed", 0.0),
        "stopped_early": bool(model.train_info.get("stopped_early", False)),
        "final_loss": float(tail.mean()) if len(tail) else float("nan"),
        **scores,
    }


def family_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean of every score column of a :func:`train_zoo` table per method family, over the rows
    of its last checkpoint (the largest ``epoch``) when the table has several."""
    if "epoch" in table.columns and len(table):
        table = table[table["epoch"] == table["epoch"].max()]
    skip = {"dim", "seed", "epoch", "epochs_completed", "stopped_early", "train_time_s", "final_loss"}
    scores = [c for c in table.columns if c not in skip and pd.api.types.is_numeric_dtype(table[c])]
    return table.groupby("family")[scores].mean()
