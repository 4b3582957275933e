"""``rmqm rmqm``: RMQM of an encoder under noise and PGD."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from rmqm._utils.device import resolve_device
from rmqm._utils.io import save_table
from rmqm.cli.common import load_encoder, measurement_data
from rmqm.metrics.rmqm.measure import measure_rmqm, summary_table
from rmqm.training.augmentation import augment
from rmqm.training.methods import SELF_SUPERVISED_METHODS

__all__ = ['SUMMARY_COLUMNS', 'cmd_rmqm']


SUMMARY_COLUMNS = [
    "perturbation", "scope", "rmqm", "mean_A", "mean_B", "mean_S_a", "mean_S_b", "n_points", "n_dropped",
]


def cmd_rmqm(args: argparse.Namespace) -> pd.DataFrame:

    start = time.perf_counter()
    model = load_encoder(args)
    data = measurement_data(args, model)
    device = resolve_device(args.device)
    results = []
    for perturbation in args.perturbation:
        attack_loss = args.attack_loss
        if perturbation == "pgd" and attack_loss == "own":
            attack_loss = _own_attack_loss(model)
        results.append(measure_rmqm(
            model.encoder, data, perturbation=perturbation,
            n_levels=args.noise_levels if perturbation == "noise" else args.pgd_levels,
            sigma_max=args.sigma_max, nested=args.nested, step_size=args.step_size, epsilon=args.epsilon,
            attack_loss=attack_loss if perturbation == "pgd" else "displacement",
            head=model.head, augment=augment, batch_size=args.batch_size, seed=args.seed, device=device,
            progress=not args.no_progress,
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


def _own_attack_loss(model) -> str:
    """The attack that matches the model's training loss, as the reference does."""
    if model.head is not None:
        return "cross-entropy"

    if model.method in SELF_SUPERVISED_METHODS:
        return "nt-xent"
    return "displacement"
