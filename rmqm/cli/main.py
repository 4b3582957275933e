"""Command-line interface: ``python -m rmqm <command>`` (or the ``rmqm`` console script).

Every option is checked when parsed (bad ones exit with status 2 before anything is
computed); errors found later, file-system ones included, end as one ``error: ...`` line
on stderr and exit status 2 (``rmqm study``: 1 when a notebook or the book fails; Ctrl-C:
130, what finished is kept).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import pandas as pd

from rmqm.cli.common import INTERRUPTED
from rmqm.cli.rmqm_cmd import add_rmqm_arguments
from rmqm.cli.study_cmd import add_study_arguments
from rmqm.cli.sweep_cmd import add_sweep_arguments
from rmqm.cli.synbench_cmd import add_synbench_arguments
from rmqm.cli.zoo_cmd import add_zoo_arguments

__all__ = ['build_parser', 'main', 'console_main']


def build_parser() -> argparse.ArgumentParser:
    """The ``rmqm`` parser: one subcommand per module of :mod:`rmqm.cli`."""
    parser = argparse.ArgumentParser(
        prog="rmqm", description="Task-free evaluation of representation manifolds (RMQM, SynBench).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_rmqm_arguments(sub.add_parser(
        "rmqm", help="measure RMQM under white noise and PGD",
        description="Measure the Representation Manifold Quality Metric of an encoder "
                    "(the default tiny CNN, trained once and cached) under white noise and PGD."))
    add_sweep_arguments(sub.add_parser("sweep", help="run a resumable grid of measurements (process pool or Dask)"))
    add_synbench_arguments(sub.add_parser("synbench", help="SynBench score of an encoder on synthetic Gaussian data"))
    add_zoo_arguments(sub.add_parser("zoo", help="train the model zoo; print downstream accuracies, RankMe, alpha-ReQ"))
    add_study_arguments(sub.add_parser("study", help="execute the study notebooks of a profile and build the book",
                                       description="Execute the study notebooks of a profile and build the book "
                                                   "(the same as python -m rmqm study)."))
    return parser


def main(argv: Sequence[str] | None = None) -> pd.DataFrame | None:
    """Run the CLI; returns the command's result table (handy in tests and notebooks).

    Raises:
        SystemExit: status 2 for a bad option (argparse) or an error of the command (printed
            as ``error: ...``, never a traceback); ``rmqm study`` exits 1 when a notebook or
            the book fails.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except RecursionError:
        print("error: an input is nested too deeply to read", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C); what finished is kept, rerun to go on", file=sys.stderr)
        raise SystemExit(INTERRUPTED) from None


def console_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rmqm`` console script: :func:`main`, returning exit status 0."""
    main(argv)
    return 0
