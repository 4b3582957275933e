"""``rmqm sweep``: a resumable grid of measurements."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rmqm._utils.io import save_table
from rmqm.cli.common import output_file_arg, output_folder_arg
from rmqm.experiments.sweep import EXECUTORS, load_grid, resolve_job, run_sweep

__all__ = ['add_sweep_arguments', 'sweep_command', 'main']


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
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=sweep_command)
    return parser


def sweep_command(args: argparse.Namespace) -> pd.DataFrame:
    """Run the sweep described by parsed ``args``; print, optionally save and return the table."""
    executor = "dask" if args.scheduler else args.executor
    job = resolve_job(args.job)
    module = getattr(job, "__module__", "") or ""
    table = run_sweep(
        load_grid(args.grid), job, args.store, executor=executor,
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
    return 1 if table.attrs.get("failed") else 0
