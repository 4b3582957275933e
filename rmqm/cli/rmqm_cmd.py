"""``rmqm rmqm``: RMQM of an encoder under noise and PGD."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from rmqm._utils.device import resolve_device
from rmqm._utils.io import save_table
from rmqm.cli.common import (
    add_encoder_options,
    int_arg,
    load_encoder,
    measurement_data,
    output_file_arg,
    parse_fraction,
    rule_arg,
)
from rmqm.metrics.rmqm.alterations import PGD, Alteration, WhiteNoise, attacked_with
from rmqm.metrics.rmqm.attacks import PGD_MODES
from rmqm.metrics.rmqm.manifold import DROP_RULES
from rmqm.metrics.rmqm.measure import measure_rmqm, summary_table
from rmqm.metrics.rmqm.perturbations import ATTACK_LOSSES
from rmqm.study.schema import PGD_EPSILON, SIGMA_MAX, STEP_SIZE

__all__ = ['SUMMARY_COLUMNS', 'add_rmqm_arguments', 'cmd_rmqm']


SUMMARY_COLUMNS = [
    "perturbation", "scope", "rmqm", "mean_A", "mean_B", "mean_S_a", "mean_S_b", "n_points", "n_dropped",
]


def add_rmqm_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``rmqm`` options to ``p``: the encoder's (see :func:`add_encoder_options`) and the
    measurement's, each checked when parsed."""
    add_encoder_options(p)
    g = p.add_argument_group("measurement")
    g.add_argument("--n-points", type=int_arg(1), default=1000, help="test points measured (seeded, stratified)")
    g.add_argument("--perturbation", nargs="+", choices=["noise", "pgd"], default=["noise", "pgd"])
    g.add_argument("--noise-levels", type=int_arg(3), default=100, help="noise levels incl. the clean one")
    g.add_argument("--sigma-max", type=rule_arg(SIGMA_MAX, parse_fraction), default=1.0,
                   help="largest noise std (pixel units)")
    g.add_argument("--nested", action="store_true", help="one noise draw shared by all levels")
    g.add_argument("--pgd-levels", type=int_arg(3), default=30, help="PGD levels incl. the clean one")
    g.add_argument("--step-size", type=rule_arg(STEP_SIZE, parse_fraction), default=1 / 255,
                   help="PGD step in pixel units, e.g. 2/255")
    g.add_argument("--epsilon", type=rule_arg(PGD_EPSILON, parse_fraction), default=0.3,
                   help="PGD L-infinity radius (pixel units)")
    g.add_argument("--pgd-mode", choices=PGD_MODES, default=None,
                   help="displacement (label-free, the default), own-loss (the model's training loss, one "
                        "trajectory with a fixed augmented view) or reference (the reference's attack: a separate "
                        "attack per level, its augmentations; use --batch-size 128 --step-size 2/255 for MNIST)")
    g.add_argument("--attack-loss", choices=ATTACK_LOSSES, default=None,
                   help="PGD loss (default: label-free displacement; under --pgd-mode own-loss or reference the "
                        "model's own training loss)")
    g.add_argument("--drop", choices=DROP_RULES, default="per-series",
                   help="points with a non-finite relative change leave the S mean of that series only "
                        "(per-series, the reference) or of both (joint)")
    g.add_argument("--batch-size", type=int_arg(1), default=250)
    g.add_argument("--per-class", action="store_true", help="also print the per-class rows")
    g.add_argument("--out", type=output_file_arg(), default=None, help="save the table (.csv or .parquet)")
    p.set_defaults(func=cmd_rmqm)
    return p


def alterations(args: argparse.Namespace, method: str) -> list[Alteration]:
    """The alteration specs ``args`` ask for, in the order of ``--perturbation``; the PGD attack of a
    model trained with ``method`` is decided by :meth:`rmqm.metrics.rmqm.alterations.PGD.for_method`
    (its own loss under ``--pgd-mode own-loss`` or ``reference``, unless ``--attack-loss`` names one).

    Raises:
        ValueError: a loss that does not fit the mode (named).
    """
    loss = attacked_with(method, args.pgd_mode, args.attack_loss)
    specs: list[Alteration] = []
    for kind in args.perturbation:
        if kind == "noise":
            specs.append(WhiteNoise(n_levels=args.noise_levels, sigma_max=args.sigma_max,
                                    schedule="nested" if args.nested else "fresh"))
        else:
            specs.append(PGD.for_method(loss, args.pgd_mode, n_levels=args.pgd_levels, step_size=args.step_size,
                                        epsilon=args.epsilon))
    return specs


def cmd_rmqm(args: argparse.Namespace) -> pd.DataFrame:
    """``rmqm rmqm``: measure, print (and optionally save) the RMQM summary table of an encoder."""

    start = time.perf_counter()
    model = load_encoder(args)
    data = measurement_data(args, model)
    device = resolve_device(args.device)
    results = []
    for alteration in alterations(args, model.method):
        results.append(measure_rmqm(
            model.encoder, data, alteration, head=model.head, drop=args.drop, batch_size=args.batch_size,
            seed=args.seed, device=device, progress=not args.no_progress,
        ))
    table = summary_table(*results, scope=None if args.per_class else "all")[SUMMARY_COLUMNS]
    table.insert(0, "model", model.name)
    print(f"\nRMQM of {model.name} on {len(data)} points of {data.name} "
          f"({time.perf_counter() - start:.1f} s, device {device})")
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        print(table.drop(columns="model").to_string(index=False))
    if args.out:
        save_table(table, Path(args.out))
    return table
