"""Measurements cached in a results store, keyed by their config, their inputs and their code.

Every key holds the :func:`rmqm._utils.hashing.code_fingerprint` of the code that computes
the record and the identity of what it measured (encoder weights, data content), so that a
changed function or changed data recomputes instead of reading back old numbers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from rmqm._utils.hashing import code_fingerprint, module_digest, tensors_digest
from rmqm._utils.validation import check_choice, check_int
from rmqm.data.registry import load_dataset
from rmqm.experiments.explain import log_recomputes
from rmqm.experiments.sweep import run_sweep
from rmqm.metrics.rmqm.alterations import OWN_LOSS_MODES, PGD, Alteration, alteration_from_keywords, attacked_with
from rmqm.metrics.rmqm.attacks import FACTORS, HEAD_LOSSES, AttackSpec, resolve_attack
from rmqm.metrics.rmqm.manifold import DROP_RULES
from rmqm.metrics.rmqm.measure import measure_rmqm, resolve_pgd_mode
from rmqm.metrics.rmqm.perturbations import NOISE_SCHEDULES
from rmqm.metrics.synbench.evaluate import evaluate_synbench
from rmqm.training.checkpoints import TrainedModel, load_model

__all__ = [
    "RMQM_MODULES", "HEAD_LOSSES", "RMQM_TABLES", "RMQM_KEY_ONLY", "rmqm_key", "SYNBENCH_MODULES", "cached_table",
    "cached_rmqm", "cached_synbench", "alteration_settings", "ZooRMQM", "EXTERNAL_ATTACK", "RMQM_OPTIONS",
    "rmqm_request", "split_options",
]


#: The modules whose code computes :func:`cached_rmqm`'s tables (with what they import).
RMQM_MODULES: tuple[str, ...] = ("rmqm.metrics.rmqm.measure",)


#: The modules whose code computes :func:`cached_synbench`'s tables (with what they import).
SYNBENCH_MODULES: tuple[str, ...] = ("rmqm.metrics.synbench.evaluate", "rmqm.metrics.synbench.width")


def _rmqm_module(obj: Any) -> str | None:
    """The ``rmqm`` module that defines ``obj`` (a function), or None."""
    module = getattr(obj, "__module__", None) or ""
    return module if module.split(".")[0] == "rmqm" else None


def cached_table(store: Any, config: Mapping[str, Any], compute: Callable[[], pd.DataFrame],
                 *, code: Sequence[str | ModuleType] = ()) -> pd.DataFrame:
    """``store.get(key)`` if the store holds it, else ``compute()``, stored first.

    The key is ``config`` plus ``"code"``: the :func:`rmqm._utils.hashing.code_fingerprint`
    of the ``code`` modules and of the ``rmqm`` module that defines ``compute`` (when
    there is one), so that a change to the computing code recomputes instead of reading
    back old numbers.

    Args:
        store: a :class:`rmqm.experiments.store.ResultsStore`.
        config: the full, JSON-like description of the computation and of its inputs.
        compute: returns the table (a non-empty DataFrame) when it is not cached.
        code: ``rmqm`` modules whose code ``compute`` runs.

    Raises:
        TypeError: ``compute()`` returned something else than a DataFrame.
    """
    modules = [*code, *filter(None, [_rmqm_module(compute)])]
    key = {**config, "code": code_fingerprint(*modules)} if modules else dict(config)
    if store.has(key):
        return store.get(key)
    log_recomputes(store, [key])
    start = time.perf_counter()
    table = compute()
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"compute() must return a pandas DataFrame; got {type(table).__name__}")
    store.put(key, table, wall_time_s=time.perf_counter() - start)
    return store.get(key)


def _cached_tables(store: Any, base: Mapping[str, Any], tables: Sequence[str],
                   compute: Callable[[], Mapping[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """Several tables computed together, one store record each (``base`` plus ``"table"``):
    a one-job sweep of the engine (:func:`rmqm.experiments.sweep.run_sweep`, serial, torch's
    thread setting left alone), read back from the store."""
    run_sweep([base], lambda _config: compute(), store, executor="serial", progress=False,
              threads_per_job=None, tables=tables)
    return {t: store.get({**base, "table": t}) for t in tables}


def _object_identity(obj: Any) -> str | None:
    """Identity of a keyword object of a measurement: a module's :func:`module_digest`,
    a function's module and name with that module's code fingerprint, else None."""
    if obj is None:
        return None
    if isinstance(obj, nn.Module):
        return module_digest(obj)
    module = _rmqm_module(obj)
    name = getattr(obj, "__qualname__", type(obj).__qualname__)
    return f"{getattr(obj, '__module__', '?')}.{name}" + (f"@{code_fingerprint(module)}" if module else "")


#: The attack of an encoder without a training loss (a user encoder of the study,
#: :class:`ZooRMQM`'s ``external``) in the own-loss and reference modes: the label-free displacement.
EXTERNAL_ATTACK: AttackSpec = resolve_attack("displacement")


#: The tables of one RMQM measurement, as :func:`cached_rmqm` stores them.
RMQM_TABLES: tuple[str, ...] = ("summary", "points", "levels")

#: Entries of an RMQM key that are objects of the measurement, by their identity.
RMQM_OBJECTS: tuple[str, ...] = ("head", "augment")

#: ``measure_rmqm``'s options besides the alteration and its objects (entries of an RMQM key).
RMQM_OPTIONS: tuple[str, ...] = ("normalize", "drop", "batch_size", "seed", "device")

#: Entries of an RMQM key that identify what was measured and by which code (neither the
#: alteration nor an option).
RMQM_KEY_ONLY: tuple[str, ...] = ("kind", "model", "data", *RMQM_OBJECTS, "encoder", "data_content", "code")


def split_options(keywords: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(alteration keywords, options)`` of flat ``measure_rmqm`` keywords (a profile's setting,
    a sweep job's entries, a stored key without its identity): the :data:`RMQM_OPTIONS` entries
    apart from the rest."""
    return ({k: v for k, v in keywords.items() if k not in RMQM_OPTIONS},
            {k: v for k, v in keywords.items() if k in RMQM_OPTIONS})


def _check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(RMQM_OPTIONS))
    if unknown:
        raise ValueError(f"unknown measure_rmqm options {unknown}; the options are {list(RMQM_OPTIONS)} (the "
                         "alteration is a WhiteNoise or PGD spec)")
    if "seed" not in options:
        raise ValueError("give the measurement's seed explicitly (it is part of the cache key)")
    return dict(options)


def rmqm_key(model: str, encoder: Any, data: Any, data_config: Mapping[str, Any], alteration: Alteration,
             options: Mapping[str, Any], objects: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The store key of one RMQM measurement (see :func:`cached_rmqm`): the alteration's
    keywords, the options, the objects' identities, the encoder's and the data's digests and
    the code fingerprint; :func:`rmqm_request` reads the alteration and the options back.

    Raises:
        ValueError: ``options`` has an unknown entry or no ``seed``.
    """
    return {"kind": "rmqm", "model": model, "data": dict(data_config), **alteration.keywords(),
            **_check_options(options), **{k: _object_identity(v) for k, v in (objects or {}).items()},
            "encoder": module_digest(encoder), "data_content": data.fingerprint(),
            "code": code_fingerprint(*RMQM_MODULES)}


def rmqm_request(key: Mapping[str, Any]) -> tuple[Alteration, dict[str, Any]]:
    """``(alteration, options)`` of a stored RMQM key (:func:`rmqm_key`).

    Raises:
        ValueError: an entry that is neither the alteration's, an option nor identity.
    """
    rest, options = split_options({k: v for k, v in key.items() if k not in RMQM_KEY_ONLY and k != "table"})
    return alteration_from_keywords(rest), options


def cached_rmqm(
    store: Any, model: str, encoder: Any, data: Any, data_config: Mapping[str, Any], alteration: Alteration,
    *, head: nn.Module | None = None, augment: Any = None, **options: Any,
) -> dict[str, pd.DataFrame]:
    """:func:`rmqm.metrics.rmqm.measure.measure_rmqm` of one encoder, cached in a results store.

    The key holds everything the numbers depend on: ``model`` (a label), the encoder's
    :func:`~rmqm._utils.hashing.module_digest` (weights, layers, code), ``data_config``
    and the :meth:`~rmqm.data.dataset.ImageDataset.fingerprint` of ``data``, the alteration's
    keywords, the options, and the code fingerprint of :data:`RMQM_MODULES`.

    Args:
        store: a :class:`rmqm.experiments.store.ResultsStore`.
        model: the encoder's unique name (e.g. a zoo model name).
        encoder: a torch module, ``[0, 1]`` images -> ``(B, d)`` embeddings.
        data: the :class:`~rmqm.data.dataset.ImageDataset` measured.
        data_config: JSON-like description of ``data``.
        alteration: a :class:`~rmqm.metrics.rmqm.alterations.WhiteNoise` or
            :class:`~rmqm.metrics.rmqm.alterations.PGD`.
        head, augment: the attack's objects; they enter the key by their identity.
        **options: :data:`RMQM_OPTIONS` of ``measure_rmqm`` (JSON-like; ``seed`` is required).

    Returns:
        ``{"summary", "points", "levels"}`` tables of the :class:`~rmqm.metrics.rmqm.measure.RMQMResult`.

    Raises:
        ValueError: ``seed`` is missing or an option unknown.
    """
    objects = {k: v for k, v in (("head", head), ("augment", augment)) if v is not None}
    base = rmqm_key(model, encoder, data, data_config, alteration, options, objects)

    def compute() -> dict[str, pd.DataFrame]:
        res = measure_rmqm(encoder, data, alteration, head=head, augment=augment, progress=False, **options)
        return {"summary": res.summary, "points": res.points, "levels": res.levels}

    return _cached_tables(store, base, RMQM_TABLES, compute)


def cached_synbench(
    store: Any, model: str, encoder: Any, input_shape: Sequence[int], **synbench_kwargs: Any
) -> dict[str, pd.DataFrame]:
    """:func:`rmqm.metrics.synbench.evaluate.evaluate_synbench` of one encoder, cached in a results store.

    The key holds ``model`` (a label), the encoder's
    :func:`~rmqm._utils.hashing.module_digest`, ``input_shape``, the keyword arguments
    (which must include ``seed``) and the code fingerprint of :data:`SYNBENCH_MODULES`. A
    ``direction`` given as an array (e.g. a PCA direction of real images) enters the key as
    the :func:`~rmqm._utils.hashing.tensors_digest` of its float32 values; a name as it is.

    Returns:
        ``{"table", "scores", "raw", "curves"}`` of the :class:`~rmqm.metrics.synbench.evaluate.SynBenchResult`.

    Raises:
        ValueError: ``seed`` is missing, or ``input_shape`` is not ``(C, H, W)``.
    """

    if "seed" not in synbench_kwargs:
        raise ValueError("give the measurement's seed explicitly (it is part of the cache key)")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W); got {tuple(input_shape)}")
    shape = (int(input_shape[0]), int(input_shape[1]), int(input_shape[2]))
    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in synbench_kwargs.items()}
    direction = kwargs.get("direction")
    if direction is not None and not isinstance(direction, str):
        values = torch.as_tensor(np.asarray(direction, dtype=np.float32))
        kwargs["direction"] = {"sha256": tensors_digest([("direction", values)]), "shape": list(values.shape)}
    base = {"kind": "synbench", "model": model, "input_shape": list(shape), **kwargs,
            "encoder": module_digest(encoder), "code": code_fingerprint(*SYNBENCH_MODULES)}

    def compute() -> dict[str, pd.DataFrame]:
        res = evaluate_synbench(encoder, shape, progress=False, **synbench_kwargs)
        return {"table": res.table, "scores": res.scores, "raw": res.raw, "curves": res.curves}

    return _cached_tables(store, base, ("table", "scores", "raw", "curves"), compute)


def alteration_settings(
    n_noise_levels: int,
    noise_sigma_max: float,
    n_pgd_levels: int,
    pgd_step_size: float,
    pgd_epsilon: float,
    attack_loss: str = "displacement",
    pgd_mode: str | None = None,
    *,
    noise_schedule: str = "fresh",
    drop: str = "per-series",
    attack_batch_size: int | None = None,
    factors: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """The study's two alteration settings as :func:`rmqm.metrics.rmqm.measure.measure_rmqm` keywords:
    ``"noise"`` and ``"pgd"``.

    Args:
        n_noise_levels, noise_sigma_max: the white-noise levels (incl. the clean one) and largest std.
        n_pgd_levels, pgd_step_size, pgd_epsilon: the PGD levels, step and L-inf radius (pixel units).
        attack_loss: the PGD loss of the ``"displacement"`` mode (or, with ``pgd_mode`` None, one
            loss for every model, the ``"own-loss"`` mode).
        pgd_mode: one of :data:`rmqm.metrics.rmqm.attacks.PGD_MODES`; ``"own-loss"`` and
            ``"reference"`` attack each model with its own loss, which :class:`ZooRMQM` looks up per
            model (:func:`rmqm.training.methods.own_attack_loss`,
            :func:`rmqm.training.methods.reference_attack_semantics`). None: implied by ``attack_loss``.
        noise_schedule: ``"fresh"`` (a new draw per level, the reference's choice) or ``"nested"``
            (:data:`rmqm.metrics.rmqm.perturbations.NOISE_SCHEDULES`).
        drop: the rule for non-finite relative changes (:data:`rmqm.metrics.rmqm.manifold.DROP_RULES`).
        attack_batch_size: the PGD setting's batch (the batch-mean own losses depend on it; the
            reference attacks MNIST in batches of 128); None: :class:`ZooRMQM`'s ``batch_size``.
        factors: the reference mode's factor switches (names of
            :data:`rmqm.metrics.rmqm.attacks.FACTORS`), resolved per model by
            :func:`rmqm.metrics.rmqm.attacks.resolve_attack`.

    Raises:
        ValueError: an unknown mode, loss, schedule, drop rule or factor, or a mode that does not fit the loss.
    """
    check_choice(noise_schedule, NOISE_SCHEDULES, "noise schedule")
    check_choice(drop, DROP_RULES, "drop rule")
    if pgd_mode in ("own-loss", "reference") and attack_loss == "displacement":
        pgd: dict[str, Any] = dict(pgd_mode=pgd_mode)  # the loss is each model's own
    else:
        pgd = dict(attack_loss=attack_loss, pgd_mode=resolve_pgd_mode(pgd_mode, attack_loss))
    factors = dict(factors or {})
    unknown = sorted(set(factors) - set(FACTORS))
    if unknown:
        raise ValueError(f"unknown attack factors {unknown}; choose among {list(FACTORS)}")
    if factors:
        resolve_attack("cross-entropy", pgd["pgd_mode"], **factors)  # validates the switches for this mode
        pgd.update(factors)
    if attack_batch_size is not None:
        pgd["batch_size"] = check_int(attack_batch_size, "attack_batch_size", low=1)
    return {
        "noise": dict(perturbation="noise", n_levels=n_noise_levels, sigma_max=noise_sigma_max,
                      nested=noise_schedule == "nested", drop=drop),
        "pgd": dict(perturbation="pgd", n_levels=n_pgd_levels, step_size=pgd_step_size, epsilon=pgd_epsilon,
                    **pgd, drop=drop),
    }


@dataclass
class ZooRMQM:
    """RMQM of zoo models, each measured with its own seed, cached in a results store.

    A zoo seed is one replicate of the study: the model trained with seed ``s`` is measured
    on the ``n_points`` test images of ``dataset`` drawn with seed ``s``, with alteration
    noise seeded by ``s`` too. Calling the object returns the cached tables of
    :func:`cached_rmqm` (the dataset of each seed is loaded once), whose key holds the
    checkpoint's identity (the digest of its encoder's weights, and of the head when an
    attack uses it), the content of the measured images and the measuring code.

    Args:
        store: a :class:`rmqm.experiments.store.ResultsStore`.
        zoo_dir: folder of the zoo's checkpoints (:func:`rmqm.training.checkpoints.load_model`).
        dataset: name of the measured dataset (:func:`rmqm.data.registry.load_dataset`), its test split.
        n_points: test images per seed.
        settings: alteration name -> ``measure_rmqm`` keywords (:func:`alteration_settings`); a
            setting with ``pgd_mode`` ``"own-loss"`` or ``"reference"`` and no ``attack_loss`` attacks
            each model with its own loss (:func:`own_attack_keywords`, with the model's head).
        batch_size, device: passed to ``measure_rmqm`` (a setting's own ``batch_size`` wins).
        external: models that are not zoo checkpoints (the user's encoders of the study), by name,
            looked up before ``zoo_dir``. They have no training loss: the ``"own-loss"`` and
            ``"reference"`` modes attack them with the label-free ``"displacement"`` loss
            (:data:`EXTERNAL_ATTACK`).
    """

    store: Any
    zoo_dir: str | os.PathLike
    dataset: str
    n_points: int
    settings: Mapping[str, Mapping[str, Any]]
    batch_size: int = 256
    device: str = "cpu"
    external: Mapping[str, TrainedModel] = field(default_factory=dict)
    _data: dict[int, Any] = field(default_factory=dict, init=False, repr=False)

    def data(self, seed: int) -> Any:
        """The ``n_points`` test images measured for seed ``seed``."""

        if seed not in self._data:
            self._data[seed] = load_dataset(self.dataset, split="test", n=self.n_points, seed=seed)
        return self._data[seed]

    def __call__(self, name: str, seed: int, setting: str, **extra: Any) -> dict[str, pd.DataFrame]:
        """Tables of zoo model ``name`` (trained with ``seed``) under alteration ``setting``;
        ``extra`` overrides or adds ``measure_rmqm`` keywords (e.g. ``nested=True``, an
        ``attack_loss``, which implies its PGD mode unless ``pgd_mode`` is given too; the model's
        head is added for the cross-entropy and triplet-entropy losses)."""

        model, data_config, alteration, options = self._request(name, seed, setting, extra)
        return cached_rmqm(self.store, name, model.encoder, self.data(int(seed)), data_config, alteration, **options)

    def key(self, name: str, seed: int, setting: str) -> dict[str, Any]:
        """The store key of ``self(name, seed, setting)`` (JSON-like entries only)."""
        model, data_config, alteration, options = self._request(name, seed, setting, {})
        objects = {"head": options.pop("head")} if "head" in options else {}
        return rmqm_key(name, model.encoder, self.data(int(seed)), data_config, alteration, options, objects)

    def _request(self, name: str, seed: int, setting: str,
                 extra: Mapping[str, Any]) -> tuple[TrainedModel, dict[str, Any], Alteration, dict[str, Any]]:
        if setting not in self.settings:
            raise ValueError(f"unknown alteration setting {setting!r}; have {sorted(self.settings)}")
        model = self.external[name] if name in self.external else load_model(name, Path(self.zoo_dir))
        data_config = {"name": self.dataset, "split": "test", "n": self.n_points, "seed": int(seed)}
        keywords, given = split_options({**self.settings[setting], **extra})
        if "attack_loss" in extra and "pgd_mode" not in extra:  # a loss for this call: its implied mode
            keywords["pgd_mode"] = None
        options = {"batch_size": self.batch_size, "drop": "per-series", **given, "seed": int(seed),
                   "device": self.device}
        if keywords.get("perturbation") == "pgd":
            if name in self.external and keywords.get("pgd_mode") in OWN_LOSS_MODES and "attack_loss" not in keywords:
                keywords = {k: v for k, v in keywords.items() if k not in FACTORS}  # no training loss to attack
                keywords.update(EXTERNAL_ATTACK.keywords())
            else:
                keywords["attack_loss"] = attacked_with(model.method, keywords.get("pgd_mode"),
                                                        keywords.get("attack_loss"))
        alteration = alteration_from_keywords(keywords)
        if isinstance(alteration, PGD) and alteration.attack.needs_head and model.head is not None:
            options["head"] = model.head
        return model, data_config, alteration, options
