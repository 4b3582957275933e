"""How the jobs of a sweep run: one job the same way everywhere, and the serial, process-pool
and Dask executors that run many and hand each finished one to a :class:`Recorder`."""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from multiprocessing.context import BaseContext
from typing import Any

import torch
from tqdm import tqdm  # plain bars: tqdm.auto warns on import in a kernel without ipywidgets

from rmqm._utils.hashing import config_hash
from rmqm._utils.progress import describe
from rmqm._utils.provenance import provenance
from rmqm.experiments.store import ResultsStore

__all__ = ['JobFn', 'execute_job', 'Recorder', 'run_serial', 'run_process', 'run_dask']


#: A job: ``job_fn(config) -> rows`` (a DataFrame, a dict or a list of dicts).
JobFn = Callable[[dict[str, Any]], Any]


# torch's global RNG and thread count are process-wide: jobs sharing a process (Dask
# threads) run one at a time so that each sees exactly the state its config sets.
_JOB_LOCK = threading.Lock()


def execute_job(job_fn: JobFn, config: dict[str, Any], threads: int | None) -> tuple[Any, float, dict[str, Any]]:
    """Run one job the same way in every executor; return (rows, wall time, provenance)."""
    with _JOB_LOCK:
        previous = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            start = time.perf_counter()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config["seed"])
                rows = job_fn(copy.deepcopy(config))
            wall = time.perf_counter() - start
        finally:
            torch.set_num_threads(previous)
    return rows, wall, provenance(wall)


def _annotate(err: BaseException, config: Mapping[str, Any]) -> BaseException:
    """``err`` with a note naming the job it came from."""
    note = f"in sweep job {json.dumps(config, sort_keys=True)}"
    if hasattr(err, "add_note"):
        err.add_note(note)
    else:  # Python 3.10: no add_note; keep the note where 3.11+ puts it
        err.__notes__ = [*getattr(err, "__notes__", []), note]  # type: ignore[attr-defined]
    return err


class Recorder:
    """Writes finished jobs to the store and keeps count; shared by all executors."""

    def __init__(self, store: ResultsStore, bar: tqdm, on_error: str, tables: Sequence[str] | None = None) -> None:
        """Record into ``store``, count on ``bar``; ``on_error`` is ``"raise"`` or ``"skip"``;
        with ``tables``, a job returns one table per name, each stored under ``{**config, "table": name}``."""
        self.store, self.bar, self.on_error, self.tables = store, bar, on_error, tables
        self.failed: list[tuple[dict[str, Any], str]] = []

    def done(self, config: dict[str, Any], outcome: tuple[Any, float, dict[str, Any]]) -> None:
        """Store the rows of a finished job (TypeError/ValueError, annotated, if the store refuses them)."""
        rows, wall, info = outcome
        try:
            if self.tables is None:
                self.store.put(config, rows, wall_time_s=wall, provenance_info=info)
            else:
                if not isinstance(rows, Mapping) or set(rows) != set(self.tables):
                    got = sorted(rows) if isinstance(rows, Mapping) else type(rows).__name__
                    raise TypeError(f"a job of this sweep must return the tables {list(self.tables)}; got {got}")
                for name in self.tables:
                    self.store.put({**config, "table": name}, rows[name], wall_time_s=wall, provenance_info=info)
        except (TypeError, ValueError) as err:
            raise _annotate(
                type(err)(f"job_fn returned rows the store cannot keep: {err}"), config
            ) from None
        self.bar.update(1)

    def collect(self, config: dict[str, Any], future: Any) -> None:
        """Record a finished (process-pool or Dask) future: its result, or its error."""
        try:
            outcome = future.result()
        except Exception as err:  # noqa: BLE001 - on_error decides
            self.error(config, err)
            return
        self.done(config, outcome)

    def error(self, config: dict[str, Any], err: BaseException) -> None:
        """Re-raise ``err`` (``on_error="raise"``) or list the job as failed."""
        if self.on_error == "raise":
            raise _annotate(err, config)
        self.failed.append((config, f"{type(err).__name__}: {err}"))
        self.bar.update(1)


def run_serial(todo: list[dict[str, Any]], job_fn: JobFn, threads: int | None, rec: Recorder) -> None:
    """Run the jobs one after the other in this process."""
    for config in todo:
        rec.bar.set_postfix_str(describe(config))  # the job now running, on its bar
        try:
            outcome = execute_job(job_fn, config, threads)
        except Exception as err:  # noqa: BLE001 - reported or re-raised by the recorder
            rec.error(config, err)
            continue
        rec.done(config, outcome)


def _pool_context() -> BaseContext:
    """Forkserver where available (workers fork from a server that imported rmqm and torch
    once, but never ran a torch op), else spawn. Plain fork of a process whose torch
    thread pools are running can deadlock."""
    try:
        ctx = get_context("forkserver")
    except ValueError:  # no forkserver on this platform (Windows)
        return get_context("spawn")
    ctx.set_forkserver_preload(["rmqm.experiments.jobs"])
    return ctx


def run_process(todo: list[dict[str, Any]], job_fn: JobFn, threads: int | None, rec: Recorder,
                 max_workers: int) -> None:
    """Run the jobs on a local pool of ``max_workers`` processes, recording each as it finishes."""
    pool = ProcessPoolExecutor(max_workers=max_workers, mp_context=_pool_context())
    try:
        pending: dict[Future, dict[str, Any]] = {pool.submit(execute_job, job_fn, c, threads): c for c in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                rec.collect(pending.pop(fut), fut)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_dask(todo: list[dict[str, Any]], job_fn: JobFn, threads: int | None, rec: Recorder,
              scheduler_address: Any, max_workers: int | None) -> None:
    """Run the jobs on a Dask cluster (a given one, or a LocalCluster of ``max_workers`` processes)."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "executor='dask' needs dask.distributed: pip install 'rmqm[distributed]'"
        ) from None
    cluster = None
    if isinstance(scheduler_address, Client):
        client, own_client = scheduler_address, False
    elif scheduler_address is None:
        cluster = LocalCluster(
            n_workers=max_workers or os.cpu_count() or 1, threads_per_worker=1,
            processes=True, dashboard_address=None,
        )
        client, own_client = Client(cluster), True
    elif isinstance(scheduler_address, str):
        client, own_client = Client(scheduler_address), True
    else:
        raise TypeError(
            f"scheduler_address must be an address string or a dask.distributed.Client; "
            f"got {type(scheduler_address).__name__}"
        )
    pending: dict[Any, tuple[Any, dict[str, Any]]] = {}
    try:
        for config in todo:
            fut = client.submit(
                execute_job, job_fn, config, threads, pure=False, key=f"rmqm-job-{config_hash(config)}",
            )
            pending[fut.key] = (fut, config)
        for fut in as_completed([f for f, _ in pending.values()]):
            _, config = pending.pop(fut.key)  # dropping the future lets the cluster free it
            rec.collect(config, fut)
    finally:
        for fut, _ in pending.values():
            fut.cancel()
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()
