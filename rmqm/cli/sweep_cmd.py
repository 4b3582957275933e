"""``rmqm sweep``: a resumable grid of measurements."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rmqm._utils.io import save_table
from rmqm.cli.common import output_file_arg, output_folder_arg
from rmqm.experiments.sweep import EXECUTORS, load_grid, resolve_job, run_sweep
from rmqm.metrics.rmqm.attacks import PGD_MODES
from rmqm.study.schema import scheduler_problem

__all__ = ['add_sweep_arguments', 'with_pgd_mode', 'sweep_command', 'main']


def with_pgd_mode(configs: Iterable[Mapping[str, Any]], pgd_mode: str) -> list[dict[str, Any]]:
    """The configs with ``pgd_mode`` set on every RMQM job under PGD (``measure`` ``"rmqm"``, the
    default, and ``perturbation`` ``"pgd"``); the others unchanged (noise does not depend on it).

    Raises:
        ValueError: a config that sets another ``pgd_mode``.
    """
    out = []
    for config in configs:
        config = dict(config)
        if config.get("measure", "rmqm") == "rmqm" and config.get("perturbation") == "pgd":
            if config.get("pgd_mode", pgd_mode) != pgd_mode:
                raise ValueError(f"--pgd-mode {pgd_mode} conflicts with the grid's pgd_mode {config['pgd_mode']!r}")
            config["pgd_mode"] = pgd_mode
        out.append(config)
    return out


def add_sweep_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``sweep`` options to ``parser`` (used by ``rmqm sweep`` and ``python -m rmqm.sweep``)."""
    parser.add_argument("grid", help="grid file (YAML or JSON) with 'axes' and optional 'fixed'")
    parser.add_argument("--store", default="results/store", type=output_folder_arg,
                        help="results store folder (default: %(default)s)")
    parser.add_argument("--job", default="rmqm.experiments.jobs:measure_job",
                        help="job function, module:function (default: %(default)s)")
    parser.add_argument("--executor", choices=EXECUTORS, default="process",
                        help="where jobs run (default: %(default)s)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="Dask scheduler address, e.g. tcp://host:8786 (implies --executor dask)")
    parser.add_argument("--workers", type=int, default=None, help="pool size / LocalCluster workers")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise")
    parser.add_argument("--out", type=output_file_arg(), default=None,
                        help="also write the table to this .csv or .parquet file")
    parser.add_argument("--pgd-mode", choices=PGD_MODES, default=None,
                        help="PGD mode of every RMQM job under PGD: displacement (label-free), own-loss (each "
                             "model's training loss, one trajectory) or reference (the reference's attack); "
                             "default: the grid's")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=sweep_command)
    return parser


def sweep_command(args: argparse.Namespace) -> pd.DataFrame:
    """Run the sweep described by parsed ``args``; print, optionally save and return the table."""
    executor = "dask" if args.scheduler else args.executor
    problem = scheduler_problem(args.scheduler) if args.scheduler else None
    if problem is not None:
        raise ValueError(f"--scheduler: {problem}")
    job = resolve_job(args.job)
    module = getattr(job, "__module__", "") or ""
    grid: Any = load_grid(args.grid)
    if args.pgd_mode is not None:
        grid = with_pgd_mode(grid.configs(), args.pgd_mode)
    table = run_sweep(
        grid, job, args.store, executor=executor,
        code=[module] if module.split(".")[0] == "rmqm" else [],
        scheduler_address=args.scheduler, max_workers=args.workers, progress=not args.no_progress,
        on_error=args.on_error,
    )
    assert isinstance(table, pd.DataFrame)  # a sweep of one-table jobs
    if args.out:
        save_table(table, Path(args.out))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        shown = table.assign(config_hash=table["config_hash"].str[:12]) if len(table) else table
        print(shown.to_string(index=False, max_rows=50))
    for config, error in table.attrs.get("failed", []):
        print(f"FAILED {json.dumps(config, sort_keys=True)}: {error}", file=sys.stderr)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rmqm.sweep GRID [options]``."""
    parser = add_sweep_arguments(argparse.ArgumentParser(prog="rmqm sweep", description=__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    try:
        table = args.func(args)
    except (ValueError, TypeError, OSError, KeyError) as err:
        parser.exit(2, f"rmqm sweep: error: {err}\n")
    except RecursionError:
        parser.exit(2, "rmqm sweep: error: the grid is nested too deeply to read\n")
    except KeyboardInterrupt:
        parser.exit(130, "rmqm sweep: error: interrupted (Ctrl-C); finished jobs are kept in the store\n")
    return 1 if table.attrs.get("failed") else 0
