"""The execution engine: a grid of jobs, run serially, on a process pool or a Dask cluster, resumable."""

from __future__ import annotations

import copy
import importlib
import itertools
import json
import math
import os
import pickle
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from rmqm._utils.hashing import canonical_config, code_fingerprint, config_hash
from rmqm._utils.progress import progress_bar
from rmqm.experiments.executors import JobFn, Recorder, run_dask, run_process, run_serial
from rmqm.experiments.explain import log_recomputes
from rmqm.experiments.store import ResultsStore

__all__ = ['EXECUTORS', 'JobFn', 'Sweep', 'load_grid', 'run_sweep', 'resolve_job']


EXECUTORS = ("serial", "process", "dask")


@dataclass(frozen=True)
class Sweep:
    """A grid of job configs: the Cartesian product of ``axes``, each merged with ``fixed``.

    Args:
        axes: axis name -> non-empty list of values, e.g. ``{"seed": [0, 1, 2]}``.
            Configs vary the last axis fastest.
        fixed: entries shared by every config (must not repeat an axis name).
    """

    axes: Mapping[str, Sequence[Any]]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.axes, Mapping):
            raise TypeError(f"axes must be a dict of name -> list of values; got {type(self.axes).__name__}")
        if not isinstance(self.fixed, Mapping):
            raise TypeError(f"fixed must be a dict; got {type(self.fixed).__name__}")
        if not self.axes:
            raise ValueError("a sweep needs at least one axis")
        for name, values in self.axes.items():
            if not isinstance(name, str):
                raise TypeError(f"axis names must be strings; got {name!r}")
            if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
                raise TypeError(f"axis {name!r} must be a list of values; got {type(values).__name__}")
            if len(values) == 0:
                raise ValueError(f"axis {name!r} is empty: the sweep would have no jobs")
        clash = sorted(set(self.axes) & set(self.fixed))
        if clash:
            raise ValueError(f"{clash} appear both as axes and as fixed entries")
        canonical_config(dict(self.fixed))  # validate early

    def configs(self) -> list[dict[str, Any]]:
        """Every config of the grid: axes in the order given, the last one varying fastest."""
        # Not sklearn.model_selection.ParameterGrid: it sorts the axes by name, so the axis that
        # varies fastest would be the alphabetically last one rather than the last one given,
        # and the documented job order (and table order) would change.
        names = list(self.axes)
        return [
            {**copy.deepcopy(dict(self.fixed)), **dict(zip(names, copy.deepcopy(values), strict=True))}
            for values in itertools.product(*(list(self.axes[n]) for n in names))
        ]

    def __len__(self) -> int:
        return math.prod(len(v) for v in self.axes.values())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.configs())

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Sweep:
        """A sweep from ``{"axes": {...}, "fixed": {...}}`` (the grid file format)."""
        if not isinstance(spec, Mapping):
            raise TypeError(f"a grid spec must be a mapping with 'axes' (and 'fixed'); got {type(spec).__name__}")
        unknown = sorted(set(spec) - {"axes", "fixed"})
        if unknown:
            raise ValueError(f"unknown grid entries {unknown}; a grid has 'axes' and optional 'fixed'")
        if "axes" not in spec:
            raise ValueError("a grid spec needs an 'axes' entry")
        return cls(axes=spec["axes"], fixed=spec.get("fixed") or {})


def load_grid(path: str | os.PathLike) -> Sweep:
    """Read a grid file (YAML or JSON) with ``axes`` and optional ``fixed`` entries.

    Raises:
        FileNotFoundError: no such file.
        ValueError, TypeError: not valid YAML/JSON, or not a valid grid (see :class:`Sweep`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid file {path} not found")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"grid file {path} is not valid YAML/JSON: {err}") from None
    return Sweep.from_dict(spec)


def _grid_configs(grid: Sweep | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The canonical configs of ``grid``, checked: each has an integer seed, none repeats."""
    configs: list[Mapping[str, Any]]
    if isinstance(grid, Sweep):
        configs = list(grid.configs())
    elif isinstance(grid, Mapping) or isinstance(grid, (str, bytes)):
        raise TypeError("grid must be a Sweep or a list of config dicts, not a single dict or string")
    else:
        try:
            configs = list(grid)
        except TypeError:
            raise TypeError(f"grid must be a Sweep or a list of config dicts; got {type(grid).__name__}") from None
    if not configs:
        raise ValueError("the grid is empty: nothing to run")
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, config in enumerate(configs):
        canonical = canonical_config(config)
        seed = canonical.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(
                f"config #{i} {json.dumps(canonical, sort_keys=True)} needs an integer 'seed' entry: "
                "a job's config must fully determine its result"
            )
        h = config_hash(canonical)
        if h in seen:
            raise ValueError(f"configs #{seen[h]} and #{i} are the same job: {json.dumps(canonical, sort_keys=True)}")
        seen[h] = i
        out.append(canonical)
    return out


def _check_picklable(job_fn: JobFn, executor: str) -> None:
    """Raise TypeError unless ``job_fn`` can be sent to worker processes."""
    try:
        pickle.dumps(job_fn)
    except Exception as err:  # noqa: BLE001 - pickle raises several types
        raise TypeError(
            f"job_fn {job_fn!r} cannot be sent to {executor} workers ({err}); "
            "use a function defined at module level (not a lambda or a local function)"
        ) from None


def run_sweep(
    grid: Sweep | Iterable[Mapping[str, Any]],
    job_fn: JobFn,
    store: ResultsStore | str | os.PathLike,
    executor: str = "process",
    scheduler_address: Any = None,
    max_workers: int | None = None,
    progress: bool = True,
    *,
    on_error: str = "raise",
    threads_per_job: int | None = 1,
    tables: Sequence[str] | None = None,
    code: Sequence[str] = (),
) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Run every job of ``grid`` that ``store`` does not hold yet; return the full table.

    Args:
        grid: a :class:`Sweep` or a list of config dicts; each needs an integer ``"seed"``.
        job_fn: ``job_fn(config) -> rows`` (a DataFrame, a dict or a list of dicts), a
            module-level function for the ``"process"`` and ``"dask"`` executors.
        store: a :class:`~rmqm.experiments.store.ResultsStore` or its folder.
        executor: ``"serial"`` (this process), ``"process"`` (a local process pool,
            default) or ``"dask"`` (a dask.distributed cluster).
        scheduler_address: with ``executor="dask"``: the scheduler's address, e.g.
            ``"tcp://10.0.0.5:8786"``, or a ``dask.distributed.Client``; None starts a
            ``LocalCluster`` of ``max_workers`` single-threaded worker processes.
        max_workers: pool size (default: the CPU count, at most the number of jobs).
        progress: show a tqdm bar over jobs.
        on_error: ``"raise"`` (stop at the first failing job; finished ones stay stored)
            or ``"skip"`` (leave failed jobs out; they are listed in
            ``table.attrs["failed"]`` and retried by the next run).
        threads_per_job: torch CPU threads per job (None leaves torch's setting alone);
            keep it fixed so every executor gives the same numbers.
        tables: names of the tables each job returns (``job_fn(config) -> {name: rows}``);
            each is stored under ``{**config, "table": name}`` (the keys of
            :func:`rmqm.experiments.cache.cached_rmqm`), and a job counts as done when all are.

        code: ``rmqm`` modules whose code the job runs; their
            :func:`rmqm._utils.hashing.code_fingerprint` becomes every config's ``"code"`` entry,
            so a record made by other code is recomputed instead of read back.

    Returns:
        One table in grid order: config columns, ``config_hash``, ``seed``, metric
        columns (see :meth:`ResultsStore.to_frame`), read back from the store; with
        ``tables``, one such table per name.

    Raises:
        ValueError, TypeError: a bad argument or grid; rows the store cannot keep.
        Exception: with ``on_error="raise"``, the first job's error, with a note naming the job.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}")
    if not callable(job_fn):
        raise TypeError(f"job_fn must be callable; got {type(job_fn).__name__}")
    if max_workers is not None and (
        isinstance(max_workers, bool) or not isinstance(max_workers, (int, np.integer)) or max_workers < 1
    ):
        raise ValueError(f"max_workers must be a positive integer or None; got {max_workers!r}")
    if threads_per_job is not None and (
        isinstance(threads_per_job, bool) or not isinstance(threads_per_job, (int, np.integer)) or threads_per_job < 1
    ):
        raise ValueError(f"threads_per_job must be a positive integer or None; got {threads_per_job!r}")
    if scheduler_address is not None and executor != "dask":
        raise ValueError("scheduler_address is only used with executor='dask'")
    if not isinstance(store, ResultsStore):
        store = ResultsStore(store)
    configs = _grid_configs(grid)
    if code:
        fingerprint = code_fingerprint(*code)
        configs = [{**c, "code": fingerprint} for c in configs]
    if executor != "serial":
        _check_picklable(job_fn, executor)

    if tables is not None:
        tables = list(tables)
        if not tables or not all(isinstance(name, str) and name for name in tables):
            raise ValueError(f"tables must be a non-empty list of table names; got {tables!r}")
        clash = [c for c in configs if "table" in c]
        if clash:
            raise ValueError("with tables, the configs must not hold a 'table' entry (the store adds it)")
    keys = (lambda c: [c]) if tables is None else (lambda c: [{**c, "table": name} for name in tables])
    todo = [c for c in configs if not all(store.has(k) for k in keys(c))]
    log_recomputes(store, [keys(c)[0] for c in todo])  # why each is computed: <store>/.recomputed.jsonl
    bar = progress_bar(
        total=len(configs), initial=len(configs) - len(todo), enabled=progress,
        unit="job", desc=f"sweep ({executor})",
    )
    rec = Recorder(store, bar, on_error, tables)
    try:
        if todo:
            workers = int(max_workers or os.cpu_count() or 1)
            if executor == "serial" or (executor == "process" and min(workers, len(todo)) == 1):
                run_serial(todo, job_fn, threads_per_job, rec)
            elif executor == "process":
                run_process(todo, job_fn, threads_per_job, rec, min(workers, len(todo)))
            else:
                run_dask(todo, job_fn, threads_per_job, rec, scheduler_address, max_workers)
    finally:
        bar.close()
    missing = "skip" if on_error == "skip" else "raise"
    if tables is not None:
        out = {name: store.to_frame([{**c, "table": name} for c in configs], missing=missing) for name in tables}
        for frame in out.values():
            frame.attrs["failed"] = rec.failed
        return out
    table = store.to_frame(configs, missing=missing)
    table.attrs["failed"] = rec.failed
    return table


def resolve_job(spec: str) -> JobFn:
    """The job function named ``"package.module:function"``.

    Raises:
        ValueError: a malformed name, a module that cannot be imported, no such function.
    """
    if not isinstance(spec, str) or spec.count(":") != 1 or "" in spec.split(":"):
        raise ValueError(f"a job is named 'package.module:function'; got {spec!r}")
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except (ImportError, ValueError, TypeError) as err:  # ValueError: e.g. a relative name like '.x'
        raise ValueError(f"cannot import job module {module_name!r}: {err}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"{module_name!r} has no job function {attr!r}")
    return fn
