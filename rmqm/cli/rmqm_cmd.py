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
from rmqm.experiments.cache import own_attack_keywords
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
    g.add_argument("--attack-loss", choices=[*ATTACK_LOSSES, "own"], default="displacement",
                   help="PGD loss: label-free displacement, or 'own' = the model's training loss "
                        "(rmqm.training.methods.own_attack_loss; the same as --pgd-mode own-loss)")
    g.add_argument("--drop", choices=DROP_RULES, default="per-series",
                   help="points with a non-finite relative change leave the S mean of that series only "
                        "(per-series, the reference) or of both (joint)")
    g.add_argument("--batch-size", type=int_arg(1), default=250)
    g.add_argument("--per-class", action="store_true", help="also print the per-class rows")
    g.add_argument("--out", type=output_file_arg(), default=None, help="save the table (.csv or .parquet)")
    p.set_defaults(func=cmd_rmqm)
    return p


def cmd_rmqm(args: argparse.Namespace) -> pd.DataFrame:
    """``rmqm rmqm``: measure, print (and optionally save) the RMQM summary table of an encoder."""

    start = time.perf_counter()
    model = load_encoder(args)
    data = measurement_data(args, model)
    device = resolve_device(args.device)
    mode = "own-loss" if args.attack_loss == "own" and args.pgd_mode is None else args.pgd_mode
    if mode in ("own-loss", "reference"):
        if args.attack_loss not in ("own", "displacement"):
            raise ValueError(f"--pgd-mode {mode} attacks the model with its own loss; leave --attack-loss out")
        attack = own_attack_keywords(model.method, mode)
    else:
        attack = {"attack_loss": args.attack_loss, "pgd_mode": mode}
    results = []
    for perturbation in args.perturbation:
        results.append(measure_rmqm(
            model.encoder, data, perturbation=perturbation,
            n_levels=args.noise_levels if perturbation == "noise" else args.pgd_levels,
            sigma_max=args.sigma_max, nested=args.nested, step_size=args.step_size, epsilon=args.epsilon,
            **(attack if perturbation == "pgd" else {}), head=model.head, drop=args.drop,
            batch_size=args.batch_size, seed=args.seed, device=device, progress=not args.no_progress,
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
