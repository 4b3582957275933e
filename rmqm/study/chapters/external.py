"""Your own encoders inside the study: the ``encoders`` parameter of notebook 01, evaluated like
a zoo model and carried through every chapter, labelled, without changing the zoo's statistics.

Notebook 01 calls :func:`add_encoders`: each spec (:mod:`rmqm.study.encoders`) is loaded for the
zoo's images, scored by :func:`rmqm.training.zoo.evaluate_model` (transfer and in-distribution
probes, RankMe, alpha-ReQ: the zoo's own evaluation), recorded in ``results/zoo/external.json``
(:data:`RECORD`) and appended to the zoo tables with one row per zoo seed (the same encoder, so
that every per-seed analysis measures it on that seed's points, noise and synthetic draws).
Their rows have ``family`` :data:`EXTERNAL`, ``method`` their name, ``optimizer`` and ``arch``
:data:`EXTERNAL`, ``epoch`` 0.

The later chapters load them again from that record (:func:`load_external`,
:func:`zoo_model`): a user encoder has no training loss, so the own-loss and reference PGD modes
attack it with the label-free displacement loss (:class:`rmqm.experiments.cache.ZooRMQM`;
:func:`attack_notes` says so). Statistics of the zoo (family contrasts, correlations, verdicts)
leave them out: :func:`zoo_only`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pandas as pd
import torch

from rmqm._utils.io import atomic_write_json
from rmqm.data.dataset import ImageDataset
from rmqm.data.registry import OFFLINE_DATASETS, load_dataset
from rmqm.models.adapters import InputAdapter, as_size
from rmqm.models.pretrained import GateResult, PretrainedEncoder, require_gate
from rmqm.study.encoders import EncoderSpec, load_encoder, parse_encoder_specs
from rmqm.training.checkpoints import TrainedModel, load_model
from rmqm.training.zoo import DATA_USED, evaluate_model

__all__ = ["EXTERNAL", "RECORD", "external_model", "add_encoders", "pretrained_gate", "gate_table",
           "external_rows", "load_external", "zoo_model",
           "zoo_only", "native_input_shape", "is_external", "external_names", "attack_notes", "encoder_table",
           "encoder_lines"]

#: ``family`` (and ``optimizer``, ``arch``) of a user encoder's rows.
EXTERNAL = "external"
#: The file in ``results/zoo`` that records the user encoders of the study.
RECORD = "external.json"


def _shape(data: ImageDataset) -> tuple[int, tuple[int, int]]:
    c, h, w = data.images.shape[1:]
    return int(c), (int(h), int(w))


def external_model(spec: EncoderSpec, encoder: torch.nn.Module, in_channels: int,
                    size: Sequence[int], dim: int) -> TrainedModel:
    """A :class:`TrainedModel` view of a user encoder (no head, no history): what the chapters'
    code reads of a zoo model (``encoder``, ``method``, ``train_info`` channels and size)."""
    config = {"method": spec.name, "family": EXTERNAL, "arch": EXTERNAL, "dim": dim, "external": True}
    info = {"in_channels": int(in_channels), "input_size": [int(v) for v in size]}
    history = pd.DataFrame({"step": [], "epoch": [], "loss": [], "elapsed_s": []})
    return TrainedModel(spec.name, cast(Any, encoder), None, config, history, info)


def _dim(encoder: torch.nn.Module, in_channels: int, size: Sequence[int], device: str) -> int:
    with torch.no_grad():
        z = encoder(torch.zeros(2, in_channels, *size, device=device))
    return int(z.shape[1])


def _transfer_sets(zoo_dir: Path, n_transfer: int | None) -> dict[str, ImageDataset]:
    """The transfer sets of the zoo (the tasks :func:`rmqm.training.zoo.train_zoo` recorded)."""
    record = json.loads((zoo_dir / DATA_USED).read_text())
    sets = {}
    for identity in record["transfer"]:
        name = identity["name"]
        split = "all" if name in OFFLINE_DATASETS + ("caltech101",) else "test"
        sets[name] = load_dataset(name, split=split, n=n_transfer, seed=0)
    return sets


def external_rows(model: TrainedModel, scores: Mapping[str, float], data: str,
                  seeds: Sequence[int]) -> pd.DataFrame:
    """One zoo-table row per seed of ``seeds`` for the user encoder ``model`` with ``scores``."""
    base = {"name": model.name, "data": data, "arch": EXTERNAL, "method": model.name, "family": EXTERNAL,
            "dim": int(model.config["dim"]), "optimizer": EXTERNAL, "epoch": 0, "train_time_s": 0.0,
            "epochs_completed": 0.0, "stopped_early": False, "final_loss": float("nan"), **scores}
    return pd.DataFrame([{**base, "seed": int(s)} for s in seeds])


def add_encoders(
    results: str | os.PathLike,
    zoo: pd.DataFrame,
    encoders: Any,
    *,
    base_dir: str | os.PathLike = "..",
    n_transfer: int | None = None,
    n_eval: int | None = None,
    k: int = 5,
    device: str = "cpu",
) -> pd.DataFrame:
    """Put the user encoders of ``encoders`` (the profile parameter; None or ``[]``: none) into
    the zoo: each is loaded for the zoo's images, scored like a zoo model, recorded in
    ``results/zoo/external.json`` and added to ``results/zoo.parquet`` and
    ``results/zoo_checkpoints.parquet`` with one row per zoo seed.

    Args:
        zoo: the checkpoints table of :func:`rmqm.study.chapters.zoo.build_zoo`.
        base_dir: folder that relative checkpoint paths and factory modules are taken from
            (the repository root; the study's notebooks run in ``notebooks/``).
        n_transfer, n_eval, k: as for the zoo (:func:`rmqm.training.zoo.train_zoo`).

    Returns:
        ``zoo`` with the user encoders' rows appended (``zoo`` itself when there is none).

    Raises:
        rmqm.study.encoders.EncoderSpecError: a spec that cannot be loaded (names it and the fix).
    """
    results = Path(results)
    zoo_dir = results / "zoo"
    specs = parse_encoder_specs(encoders, base_dir=Path(base_dir))
    (zoo_dir / RECORD).unlink(missing_ok=True)  # a rerun without encoders forgets earlier ones
    if not specs:
        return zoo
    data = str(zoo["data"].iloc[0])
    eval_data = load_dataset(data, split="test", n=n_eval, seed=0)
    in_channels, size = _shape(eval_data)
    transfer = _transfer_sets(zoo_dir, n_transfer)
    seeds = sorted(int(s) for s in zoo["seed"].unique())
    record: list[dict[str, Any]] = []
    rows = []
    for spec in specs:
        name, encoder = load_encoder(spec, in_channels=in_channels, input_size=size, device=device)
        gate = pretrained_gate(spec.name, encoder)
        model = external_model(spec, encoder, in_channels, size, _dim(encoder, in_channels, size, device))
        scores = evaluate_model(model, transfer, eval_data, k=k, device=device)
        rows.append(external_rows(model, scores, data, seeds))
        record.append({"name": name, "kind": spec.kind, "index": spec.index, "options": spec.options,
                       "in_channels": in_channels, "input_size": list(size), "dim": int(model.config["dim"]),
                       **({"gate": gate.__dict__} if gate is not None else {})})
    atomic_write_json(zoo_dir / RECORD, {"encoders": record})
    extra = pd.concat(rows, ignore_index=True)
    with_extra = pd.concat([zoo, extra], ignore_index=True)
    with_extra.to_parquet(results / "zoo_checkpoints.parquet")
    headline = pd.read_parquet(results / "zoo.parquet")
    pd.concat([headline, extra], ignore_index=True).to_parquet(results / "zoo.parquet")
    return with_extra


def pretrained_gate(name: str, encoder: torch.nn.Module) -> GateResult | None:
    """The ImageNet sanity gate (:func:`rmqm.models.pretrained.require_gate`) of an added encoder
    that wraps ImageNet-pretrained weights, at the input size it is run at: the study refuses one
    that fails (:class:`~rmqm.models.pretrained.GateError` names a size that passes). None for any
    other encoder (a random-init twin, a user checkpoint: nothing to check)."""
    inner = encoder.encoder if isinstance(encoder, InputAdapter) else encoder
    if not isinstance(inner, PretrainedEncoder) or not inner.pretrained:
        return None
    size = encoder.input_size if isinstance(encoder, InputAdapter) and encoder.input_size else None
    side = (size or as_size(inner.input_size) or (inner.input_size,))[0]
    return require_gate(inner, int(side), label=name)


def gate_table(results: str | os.PathLike) -> pd.DataFrame:
    """The gate results recorded by :func:`add_encoders` (one row per pretrained added encoder:
    ``encoder, input_size, top-1 (of 20), dead features``); empty when there is none."""
    path = Path(results) / "zoo" / RECORD
    items = json.loads(path.read_text())["encoders"] if path.is_file() else []
    rows = [{"encoder": item["name"], "input_size": item["gate"]["input_size"],
             "top-1": f"{item['gate']['hits']}/{item['gate']['n']}",
             "dead features": round(item["gate"]["dead_share"], 3),
             "passes": item["gate"]["hits"] >= item["gate"]["min_hits"]} for item in items if "gate" in item]
    return pd.DataFrame(rows, columns=["encoder", "input_size", "top-1", "dead features", "passes"])


def load_external(results: str | os.PathLike, device: str = "cpu") -> dict[str, TrainedModel]:
    """The user encoders recorded by :func:`add_encoders` in ``results/zoo``, by name (empty when
    there is no record)."""
    path = Path(results) / "zoo" / RECORD
    if not path.is_file():
        return {}
    models = {}
    for item in json.loads(path.read_text())["encoders"]:
        spec = EncoderSpec(item["name"], item["kind"], int(item["index"]), dict(item["options"]))
        size = tuple(item["input_size"])
        _, encoder = load_encoder(spec, in_channels=int(item["in_channels"]), input_size=size, device=device)
        models[spec.name] = external_model(spec, encoder, int(item["in_channels"]), size, int(item["dim"]))
    return models


def zoo_model(name: str, results: str | os.PathLike, external: Mapping[str, TrainedModel] | None = None,
              device: str = "cpu") -> TrainedModel:
    """The model ``name`` of the study: a user encoder of ``external`` (default: read with
    :func:`load_external`), else the zoo checkpoint (:func:`rmqm.training.checkpoints.load_model`)."""
    found = (load_external(results, device) if external is None else external).get(name)
    return found if found is not None else load_model(name, Path(results) / "zoo", device=device)


def native_input_shape(model: TrainedModel) -> tuple[int, int, int]:
    """``(C, H, W)``: the input space of ``model``'s own encoder, where SynBench draws its mixture.

    A zoo model: its training images. A user encoder wrapped in an
    :class:`~rmqm.models.adapters.InputAdapter` that expects other channels or another size (a
    built-in EfficientNet-Lite: 3 x ``input_size``): those, so that the adapter passes the
    synthetic images through unchanged. Else the study's images.
    """
    channels = int(model.train_info["in_channels"])
    size = tuple(int(v) for v in model.train_info["input_size"])
    encoder = model.encoder
    if isinstance(encoder, InputAdapter):
        channels = int(encoder.in_channels or channels)
        size = tuple(encoder.input_size or size)
    return channels, int(size[0]), int(size[1])


def is_external(table: pd.DataFrame) -> pd.Series:
    """Which rows of ``table`` are user encoders: ``family`` (else ``optimizer``) is :data:`EXTERNAL`
    (all False when the table has neither column)."""
    for column in ("family", "optimizer"):
        if column in table.columns:
            return table[column] == EXTERNAL
    return pd.Series(False, index=table.index)


def external_names(table: pd.DataFrame) -> list[str]:
    """The names of the user encoders in ``table`` (:func:`is_external` rows), in order."""
    rows = table[is_external(table)]
    column = "name" if "name" in rows.columns else "method"
    return [str(v) for v in dict.fromkeys(rows[column])] if column in rows.columns else []


def zoo_only(table: pd.DataFrame, include_encoders: bool = False) -> pd.DataFrame:
    """``table`` without the user encoders' rows (:func:`is_external`), so that they do not
    change the zoo's statistics; all of it when ``include_encoders``."""
    if include_encoders:
        return table
    return table[~is_external(table)].reset_index(drop=True)


def attack_notes(table: pd.DataFrame, modes: Sequence[str]) -> list[str]:
    """One line per user encoder of ``table`` saying how each PGD mode of ``modes`` attacks it: a
    user encoder has no training loss, so ``own-loss`` and ``reference`` use the displacement
    loss (label-free, as the ``displacement`` mode) and its series of those modes are the same."""
    own = [m for m in modes if m in ("own-loss", "reference")]
    if not own:
        return []
    return [f"{name} (added encoder): no training loss, so PGD modes {', '.join(own)} attack it with the "
            "displacement loss (label-free), as the displacement mode does" for name in external_names(table)]


def encoder_table(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The user encoders' mean over seeds of ``columns`` (those present), one row per encoder,
    beside the zoo's median of the same columns (row ``zoo median``): where they stand."""
    present = [c for c in columns if c in table.columns]
    ext = table[is_external(table)]
    if ext.empty:
        return pd.DataFrame(columns=present)
    mine = ext.groupby("method")[present].mean()
    zoo_median = zoo_only(table)[present].median().rename("zoo median")
    return pd.concat([mine, zoo_median.to_frame().T]).round(3)


def encoder_lines(table: pd.DataFrame) -> list[str]:
    """One line naming the user encoders of ``table`` and how the study treats them (no lines
    when there is none)."""
    names = external_names(table)
    if not names:
        return []
    return [f"added encoders: {', '.join(names)} (family {EXTERNAL!r}; one row per zoo seed, measured on that "
            "seed's points, noise and synthetic draws; shown in every table and figure, left out of the zoo's "
            "statistics: family contrasts, rank agreements, correlations and verdicts)"]
