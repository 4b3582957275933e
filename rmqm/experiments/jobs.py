"""Jobs of the sweep engine: build or load an encoder, measure it once, return rows."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from rmqm.data.dataset import ImageDataset
from rmqm.data.registry import load_dataset
from rmqm.experiments.cache import split_options
from rmqm.metrics.baselines import label_free_scores
from rmqm.metrics.probes import embed_dataset, evaluate_probes
from rmqm.metrics.rmqm.alterations import ALTERATION_KEYWORDS, Alteration, alteration_from_keywords, attacked_with
from rmqm.metrics.rmqm.attacks import FACTORS
from rmqm.metrics.rmqm.measure import measure_rmqm
from rmqm.metrics.synbench.evaluate import evaluate_synbench
from rmqm.models.backbones import TinyCNN
from rmqm.models.encoder import Encoder
from rmqm.training.checkpoints import TrainedModel, load_or_train, model_config

__all__ = ['embedding_stats', 'MEASURES', 'measure_job']


def embedding_stats(z: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Task-free and probe-free statistics of embeddings ``z`` ``(N, d)`` with labels ``(N,)``.

    Returns ``mean_norm`` (mean L2 norm), ``effective_rank`` (exp of the entropy of the
    normalised singular values of the centred embeddings; 1..d) and ``knn1_accuracy``
    (leave-one-out 1-nearest-neighbour accuracy on L2-normalised embeddings, in [0, 1]).
    """
    if not isinstance(z, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("z and labels must be torch tensors")
    if z.ndim != 2 or z.shape[0] < 2 or z.shape[1] < 1:
        raise ValueError(f"z must be (N, d) with N >= 2 and d >= 1; got shape {tuple(z.shape)}")
    if labels.shape != (z.shape[0],):
        raise ValueError(f"labels must have shape ({z.shape[0]},); got {tuple(labels.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError("z holds NaN or inf values")
    z = z.double()
    s = torch.linalg.svdvals(z - z.mean(0))
    p = s / s.sum() if s.sum() > 0 else torch.full_like(s, 1.0 / len(s))
    p = p[p > 0]
    u = torch.nn.functional.normalize(z, dim=1)
    dist = torch.cdist(u, u)
    dist.fill_diagonal_(float("inf"))
    nearest = dist.argmin(dim=1)
    return {
        "mean_norm": float(z.norm(dim=1).mean()),
        "effective_rank": float(torch.exp(-(p * p.log()).sum())),
        "knn1_accuracy": float((labels[nearest] == labels).double().mean()),
    }


#: What :func:`measure_job` can measure, and the config entries each one reads
#: (passed on as keyword arguments of the measuring function).
MEASURES: dict[str, tuple[str, ...]] = {
    "stats": (),
    "rmqm": ("perturbation", "n_levels", "sigma_max", "nested", "step_size", "epsilon", "attack_loss", "pgd_mode",
             "clip", "temperature", "margin", "normalize", "drop", "batch_size", *FACTORS),
    "synbench": ("s_values", "epsilons", "n_train", "n_test", "thresholds", "n_bootstrap", "confidence",
                 "batch_size"),
    "probes": ("test_fraction", "k", "batch_size"),
    "baselines": (),
}


_COMMON_KEYS = ("seed", "encoder", "measure", "dataset", "split", "n", "data_seed", "dim", "width", "device", "tag",
                "code")


def _dataset(config: Mapping[str, Any], default: str = "digits") -> ImageDataset:
    """The measured data of a job config (``dataset``, ``split``, ``n``, ``data_seed``)."""
    return load_dataset(
        config.get("dataset", default), split=config.get("split", "test"), n=config.get("n", 64),
        seed=int(config.get("data_seed", 0)),
    )


def _tiny_encoder(config: Mapping[str, Any], dataset: ImageDataset) -> torch.nn.Module:
    """A TinyCNN at random initialisation seeded by ``config["seed"]``, for ``dataset``'s images, in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config["seed"]))
        backbone = TinyCNN(
            in_channels=dataset.input_shape[0], dim=int(config.get("dim", 16)), width=int(config.get("width", 8))
        )
    return Encoder(backbone, dataset.mean, dataset.std, name="tinycnn-random").eval()


def _zoo_model(spec: Mapping[str, Any], seed: int, device: str) -> TrainedModel:
    """The zoo model of ``spec`` (kwargs of :func:`rmqm.training.checkpoints.model_config`), trained once and cached
    in ``$RMQM_ZOO_DIR`` (default ``results/zoo``)."""
    kwargs = {"seed": seed, "time_budget_s": None, **spec}  # a time budget would make training non-deterministic
    try:
        model_cfg = model_config(**kwargs)
    except TypeError as err:
        raise ValueError(f"bad encoder entry {dict(spec)}: {err}") from None
    return load_or_train(model_cfg, os.environ.get("RMQM_ZOO_DIR", "results/zoo"), device=device, progress=False)


def _alteration(entries: Mapping[str, Any], method: str) -> tuple[Alteration, dict[str, Any]]:
    """The alteration and the ``measure_rmqm`` options of an RMQM job's ``entries``
    (:func:`rmqm.experiments.cache.split_options`); the alteration from the flat keywords of its
    ``perturbation`` (:func:`rmqm.metrics.rmqm.alterations.alteration_from_keywords`; a grid may
    cross noise with PGD-only entries, which noise does not read); a ``pgd_mode`` of
    ``"own-loss"`` or ``"reference"`` without ``attack_loss`` attacks with ``method``'s own loss.
    """
    keywords, options = split_options(entries)
    kind = keywords.get("perturbation", "noise")
    if kind == "pgd":
        keywords["attack_loss"] = attacked_with(method, keywords.get("pgd_mode"), keywords.get("attack_loss"))
    if kind in ALTERATION_KEYWORDS:
        keywords = {k: v for k, v in keywords.items() if k == "perturbation" or k in ALTERATION_KEYWORDS[kind]}
    return alteration_from_keywords(keywords), options


def measure_job(config: Mapping[str, Any]) -> pd.DataFrame:
    """The sweep job of the study: build or load an encoder, measure it once, return the rows.

    Config entries:
        seed: seeds the encoder (initialisation and training), the data subsample of a
            trained encoder's training set, and the measurement.
        encoder: ``"tinycnn-random"`` (default; a TinyCNN at random init, options ``dim``
            (16) and ``width`` (8)) or a dict of :func:`rmqm.training.checkpoints.model_config` arguments,
            e.g. ``{"data": "digits", "method": "nt-xent", "dim": 16, "epochs": 1}``; the
            model is trained once and cached in ``$RMQM_ZOO_DIR`` (default ``results/zoo``),
            with no time budget unless the dict sets ``time_budget_s``.
        measure: ``"rmqm"`` (default; :func:`rmqm.metrics.rmqm.measure.measure_rmqm`, its summary
            table), ``"synbench"`` (:func:`rmqm.metrics.synbench.evaluate.evaluate_synbench`, its scores),
            ``"probes"`` (:func:`rmqm.metrics.probes.evaluate_probes`: 1-NN, k-NN and linear
            accuracy), ``"baselines"`` (:func:`rmqm.metrics.baselines.label_free_scores`) or
            ``"stats"`` (:func:`embedding_stats`).
        dataset, split, n, data_seed: the measured data (default: 64 points of the test
            split of the encoder's training data, or of ``"digits"``).
        <options>: the entries :data:`MEASURES` lists for the measure, passed on as
            keyword arguments. ``pgd_mode`` (``"displacement"``, the default, ``"own-loss"`` or
            ``"reference"``; :mod:`rmqm.metrics.rmqm.attacks`): the two own-loss modes attack each
            model with its own training loss (:func:`rmqm.metrics.rmqm.attacks.resolve_attack`; the
            TinyCNN at random init as a ``random-init`` model, with NT-Xent), the reference mode
            with the reference's augmentations
            (:func:`rmqm.metrics.rmqm.attacks.resolve_attack`); leave ``attack_loss`` out for the
            model's own loss. The alteration entries are read by
            :func:`rmqm.metrics.rmqm.alterations.alteration_from_keywords`.
        device: ``"cpu"`` (default) or ``"cuda"``; part of the config because GPU
            numbers differ from CPU numbers in the last bits.
        tag: a free-form label (kept in the table, ignored by the job).

    Raises:
        ValueError: an unknown encoder, measure or config entry.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict; got {type(config).__name__}")
    measure = config.get("measure", "rmqm")
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; choose one of {list(MEASURES)}")
    unknown = sorted(set(config) - set(_COMMON_KEYS) - set(MEASURES[measure]))
    if unknown:
        raise ValueError(
            f"unknown config entries {unknown} for measure {measure!r}; it reads "
            f"{sorted(set(_COMMON_KEYS) | set(MEASURES[measure]))}"
        )
    if "seed" not in config:
        raise ValueError("config needs a 'seed' entry: a job's config must fully determine its result")
    if isinstance(config["seed"], bool) or not isinstance(config["seed"], (int, np.integer)):
        raise TypeError(f"config 'seed' must be an integer; got {config['seed']!r}")
    seed = int(config["seed"])
    device = str(config.get("device", "cpu"))
    spec = config.get("encoder", "tinycnn-random")
    options = {k: config[k] for k in MEASURES[measure] if k in config}

    model = None
    if spec == "tinycnn-random":
        dataset = _dataset(config)
        encoder = _tiny_encoder(config, dataset)
    elif isinstance(spec, Mapping):
        model = _zoo_model(spec, seed, device)
        dataset = _dataset(config, default=model.config["data"]).resized(tuple(model.train_info["input_size"]))
        encoder = model.encoder
    else:
        raise ValueError(f"unknown encoder {spec!r}; give 'tinycnn-random' or a dict of "
                         "rmqm.training.checkpoints.model_config arguments")
    # the measuring functions move the encoder to `device` themselves (and back)

    if measure == "rmqm":
        alteration, options = _alteration(options, model.method if model is not None else "random-init")
        head = model.head if model is not None else None  # the cross-entropy and triplet-entropy attacks' classifier
        return measure_rmqm(encoder, dataset, alteration, head=head, seed=seed, device=device, progress=False,
                            **options).summary
    if measure == "synbench":
        result = evaluate_synbench(encoder, dataset.input_shape, seed=seed, device=device, progress=False, **options)
        return result.scores.assign(feature_dim=result.feature_dim)
    if measure == "probes":
        return pd.DataFrame([evaluate_probes(encoder, dataset, seed=seed, device=device, **options)])

    z = embed_dataset(encoder, dataset.images, device=device)
    if measure == "baselines":
        return pd.DataFrame([label_free_scores(z)])
    return pd.DataFrame([embedding_stats(z, dataset.labels)])
