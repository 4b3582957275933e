"""Measurements cached in a results store, keyed by their config and code."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from rmqm.data.registry import load_dataset
from rmqm.metrics.rmqm.measure import measure_rmqm
from rmqm.metrics.synbench.evaluate import evaluate_synbench
from rmqm.training.checkpoints import load_model

__all__ = ['cached_table', 'cached_rmqm', 'cached_synbench', 'alteration_settings', 'ZooRMQM']


def cached_table(store: Any, config: Mapping[str, Any], compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """``store.get(config)`` if the store holds it, else ``compute()``, stored first.

    Args:
        store: a :class:`rmqm.experiments.store.ResultsStore`.
        config: the full, JSON-like description of the computation (its cache key).
        compute: returns the table (a non-empty DataFrame) when it is not cached.
    """
    if store.has(config):
        return store.get(config)
    start = time.perf_counter()
    table = compute()
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"compute() must return a pandas DataFrame; got {type(table).__name__}")
    store.put(config, table, wall_time_s=time.perf_counter() - start)
    return store.get(config)


def _cached_tables(store: Any, base: Mapping[str, Any], tables: Sequence[str],
                   compute: Callable[[], Mapping[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    keys = {t: {**base, "table": t} for t in tables}
    if all(store.has(k) for k in keys.values()):
        return {t: store.get(k) for t, k in keys.items()}
    start = time.perf_counter()
    computed = compute()
    wall = time.perf_counter() - start
    for t, k in keys.items():
        store.put(k, computed[t], wall_time_s=wall)
    return {t: store.get(k) for t, k in keys.items()}


def cached_rmqm(
    store: Any, model: str, encoder: Any, data: Any, data_config: Mapping[str, Any], **measure_kwargs: Any
) -> dict[str, pd.DataFrame]:
    """:func:`rmqm.metrics.rmqm.measure.measure_rmqm` of one encoder, cached in a results store.

    Args:
        store: a :class:`rmqm.experiments.store.ResultsStore`.
        model: the encoder's unique name (e.g. a zoo model name).
        encoder, data: passed to ``measure_rmqm``.
        data_config: JSON-like description of ``data`` (part of the cache key).
        **measure_kwargs: keyword arguments of ``measure_rmqm`` (JSON-like values; they are
            part of the key and must include ``seed``). ``head`` and ``augment`` are passed
            on but only their presence enters the key.

    Returns:
        ``{"summary", "points", "levels"}`` tables of the :class:`~rmqm.metrics.rmqm.measure.RMQMResult`.
    """

    if "seed" not in measure_kwargs:
        raise ValueError("give the measurement's seed explicitly (it is part of the cache key)")
    objects = {k: measure_kwargs.pop(k) for k in ("head", "augment") if k in measure_kwargs}
    base = {"kind": "rmqm", "model": model, "data": dict(data_config), **measure_kwargs,
            **{k: v is not None for k, v in objects.items()}}

    def compute() -> dict[str, pd.DataFrame]:
        res = measure_rmqm(encoder, data, progress=False, **measure_kwargs, **objects)
        return {"summary": res.summary, "points": res.points, "levels": res.levels}

    return _cached_tables(store, base, ("summary", "points", "levels"), compute)


def cached_synbench(
    store: Any, model: str, encoder: Any, input_shape: Sequence[int], **synbench_kwargs: Any
) -> dict[str, pd.DataFrame]:
    """:func:`rmqm.metrics.synbench.evaluate.evaluate_synbench` of one encoder, cached in a results store.

    Returns:
        ``{"table", "scores", "raw", "curves"}`` of the :class:`~rmqm.metrics.synbench.evaluate.SynBenchResult`.
    """

    if "seed" not in synbench_kwargs:
        raise ValueError("give the measurement's seed explicitly (it is part of the cache key)")
    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in synbench_kwargs.items()}
    base = {"kind": "synbench", "model": model, "input_shape": list(input_shape), **kwargs}

    def compute() -> dict[str, pd.DataFrame]:
        res = evaluate_synbench(encoder, tuple(input_shape), progress=False, **synbench_kwargs)
        return {"table": res.table, "scores": res.scores, "raw": res.raw, "curves": res.curves}

    return _cached_tables(store, base, ("table", "scores", "raw", "curves"), compute)


def alteration_settings(
    n_noise_levels: int,
    noise_sigma_max: float,
    n_pgd_levels: int,
    pgd_step_size: float,
    pgd_epsilon: float,
    attack_loss: str = "displacement",
) -> dict[str, dict[str, Any]]:
    """The study's two alteration settings as :func:`rmqm.metrics.rmqm.measure.measure_rmqm` keywords:
    ``"noise"`` (fresh white noise per level, the reference's choice) and ``"pgd"``."""
    return {
        "noise": dict(perturbation="noise", n_levels=n_noise_levels, sigma_max=noise_sigma_max, nested=False),
        "pgd": dict(perturbation="pgd", n_levels=n_pgd_levels, step_size=pgd_step_size, epsilon=pgd_epsilon,
                    attack_loss=attack_loss),
    }


@dataclass
class ZooRMQM:
    """RMQM of zoo models, each measured with its own seed, cached in a results store.

    A zoo seed is one replicate of the study: the model trained with seed ``s`` is measured
    on the ``n_points`` test images of ``dataset`` drawn with seed ``s``, with alteration
    noise seeded by ``s`` too. Calling the object returns the cached tables of
    :func:`cached_rmqm` (the dataset of each seed is loaded once).

    Args:
        store: a :class:`rmqm.experiments.store.ResultsStore`.
        zoo_dir: folder of the zoo's checkpoints (:func:`rmqm.training.checkpoints.load_model`).
        dataset: name of the measured dataset (:func:`rmqm.data.registry.load_dataset`), its test split.
        n_points: test images per seed.
        settings: alteration name -> ``measure_rmqm`` keywords (:func:`alteration_settings`).
        batch_size, device: passed to ``measure_rmqm``.
    """

    store: Any
    zoo_dir: str | os.PathLike
    dataset: str
    n_points: int
    settings: Mapping[str, Mapping[str, Any]]
    batch_size: int = 256
    device: str = "cpu"
    _data: dict[int, Any] = field(default_factory=dict, init=False, repr=False)

    def data(self, seed: int) -> Any:
        """The ``n_points`` test images measured for seed ``seed``."""

        if seed not in self._data:
            self._data[seed] = load_dataset(self.dataset, split="test", n=self.n_points, seed=seed)
        return self._data[seed]

    def __call__(self, name: str, seed: int, setting: str, **extra: Any) -> dict[str, pd.DataFrame]:
        """Tables of zoo model ``name`` (trained with ``seed``) under alteration ``setting``;
        ``extra`` overrides or adds ``measure_rmqm`` keywords (e.g. ``nested=True``, an
        ``attack_loss`` with its ``head`` or ``augment``)."""

        if setting not in self.settings:
            raise ValueError(f"unknown alteration setting {setting!r}; have {sorted(self.settings)}")
        seed = int(seed)
        model = load_model(name, Path(self.zoo_dir))
        data_config = {"name": self.dataset, "split": "test", "n": self.n_points, "seed": seed}
        kwargs = {**self.settings[setting], **extra, "batch_size": self.batch_size, "seed": seed,
                  "device": self.device}
        return cached_rmqm(self.store, name, model.encoder, self.data(seed), data_config, **kwargs)
