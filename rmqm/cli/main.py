"""Command-line interface: ``python -m rmqm <command>`` (or the ``rmqm`` console script)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import pandas as pd

from rmqm.cli.common import add_encoder_options, parse_fraction
from rmqm.cli.rmqm_cmd import cmd_rmqm
from rmqm.cli.sweep_cmd import add_sweep_arguments
from rmqm.cli.synbench_cmd import add_synbench_arguments
from rmqm.cli.zoo_cmd import add_zoo_arguments

__all__ = ['build_parser', 'main']


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rmqm", description="Task-free evaluation of representation manifolds (RMQM, SynBench).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("rmqm", help="measure RMQM under white noise and PGD",
                       description="Measure the Representation Manifold Quality Metric of an encoder "
                                   "(the default tiny CNN, trained once and cached) under white noise and PGD.")
    add_encoder_options(p)
    g = p.add_argument_group("measurement")
    g.add_argument("--n-points", type=int, default=1000, help="test points measured (seeded, stratified)")
    g.add_argument("--perturbation", nargs="+", choices=["noise", "pgd"], default=["noise", "pgd"])
    g.add_argument("--noise-levels", type=int, default=100, help="noise levels incl. the clean one")
    g.add_argument("--sigma-max", type=float, default=1.0, help="largest noise std (pixel units)")
    g.add_argument("--nested", action="store_true", help="one noise draw shared by all levels")
    g.add_argument("--pgd-levels", type=int, default=30, help="PGD levels incl. the clean one")
    g.add_argument("--step-size", type=parse_fraction, default=1 / 255, help="PGD step in pixel units, e.g. 2/255")
    g.add_argument("--epsilon", type=parse_fraction, default=0.3, help="PGD L-infinity radius (pixel units)")
    g.add_argument("--attack-loss", choices=["displacement", "cross-entropy", "nt-xent", "own"],
                   default="displacement",
                   help="PGD loss: label-free displacement, or 'own' = the model's training loss")
    g.add_argument("--batch-size", type=int, default=250)
    g.add_argument("--per-class", action="store_true", help="also print the per-class rows")
    g.add_argument("--out", default=None, help="save the table (.csv or .parquet)")
    p.set_defaults(func=cmd_rmqm)
    add_sweep_arguments(sub.add_parser("sweep", help="run a resumable grid of measurements (process pool or Dask)"))
    add_synbench_arguments(sub.add_parser("synbench", help="SynBench score of an encoder on synthetic Gaussian data"))
    add_zoo_arguments(sub.add_parser("zoo", help="train the model zoo; print downstream accuracies, RankMe, alpha-ReQ"))
    return parser


def main(argv: Sequence[str] | None = None) -> pd.DataFrame | None:
    """Run the CLI; returns the command's result table (handy in tests and notebooks)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
