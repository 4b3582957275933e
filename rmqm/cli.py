"""Command-line interface: ``python -m rmqm <command>`` (or the ``rmqm`` console script).

Commands:
    rmqm      measure RMQM of the default encoder (or a zoo checkpoint) under noise and PGD
"""

from __future__ import annotations

import argparse
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

__all__ = ["main", "build_parser"]

SUMMARY_COLUMNS = [
    "perturbation", "scope", "rmqm", "mean_A", "mean_B", "mean_S_a", "mean_S_b", "n_points", "n_dropped",
]


def _fraction(text: str) -> float:
    """Parse ``0.004`` or ``1/255``."""
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number or fraction: {text!r}") from None


def resolve_device(name: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is present, else ``"cpu"``."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but no CUDA device is available")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {name!r}; use cpu, cuda, cuda:N or auto")
    return name


def _add_encoder_options(p: argparse.ArgumentParser) -> None:
    """Options that pick the encoder: the cached default, or a zoo checkpoint."""
    g = p.add_argument_group("encoder")
    g.add_argument("--data", default="fashion-mnist",
                   help="dataset the default encoder is trained on and measured with "
                        "(fashion-mnist, falling back to digits when its files are missing)")
    g.add_argument("--model", default=None,
                   help="name or path of a zoo checkpoint to measure instead of the default encoder")
    g.add_argument("--method", default="cross-entropy", help="pretraining method of the default encoder")
    g.add_argument("--dim", type=int, default=32, help="embedding dimension of the default encoder")
    g.add_argument("--zoo-dir", default="results/zoo", help="where checkpoints are cached")
    g.add_argument("--seed", type=int, default=0, help="seed of training, subsampling and alterations")
    g.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda when present)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def load_encoder(args: argparse.Namespace):
    """The :class:`rmqm.zoo.TrainedModel` the options name (trains the default if needed)."""
    from rmqm.zoo import default_encoder, load_model

    device = resolve_device(args.device)
    if args.model:
        return load_model(args.model, zoo_dir=args.zoo_dir, device=device)
    return default_encoder(args.data, dim=args.dim, method=args.method, seed=args.seed,
                           cache_dir=args.zoo_dir, device=device, progress=not args.no_progress)


def _measurement_data(args: argparse.Namespace, model):
    from rmqm.data import load_dataset

    # measure on the test split of the data the encoder was trained on
    return load_dataset(model.config.get("data", args.data), split="test", n=args.n_points, seed=args.seed)


def cmd_rmqm(args: argparse.Namespace) -> pd.DataFrame:
    from rmqm.measure import measure_rmqm, summary_table
    from rmqm.pretrain import augment

    start = time.perf_counter()
    model = load_encoder(args)
    data = _measurement_data(args, model)
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
        _save_table(table, Path(args.out))
    return table


def _own_attack_loss(model) -> str:
    """The attack that matches the model's training loss, as the reference does."""
    if model.head is not None:
        return "cross-entropy"
    from rmqm.pretrain import SELF_SUPERVISED_METHODS

    if model.method in SELF_SUPERVISED_METHODS:
        return "nt-xent"
    return "displacement"


def _save_table(table: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".parquet":
        table.to_parquet(tmp, index=False)
    else:
        table.to_csv(tmp, index=False)
    tmp.replace(path)
    print(f"saved {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rmqm", description="Task-free evaluation of representation manifolds (RMQM, SynBench).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("rmqm", help="measure RMQM under white noise and PGD",
                       description="Measure the Representation Manifold Quality Metric of an encoder "
                                   "(the default tiny CNN, trained once and cached) under white noise and PGD.")
    _add_encoder_options(p)
    g = p.add_argument_group("measurement")
    g.add_argument("--n-points", type=int, default=1000, help="test points measured (seeded, stratified)")
    g.add_argument("--perturbation", nargs="+", choices=["noise", "pgd"], default=["noise", "pgd"])
    g.add_argument("--noise-levels", type=int, default=100, help="noise levels incl. the clean one")
    g.add_argument("--sigma-max", type=float, default=1.0, help="largest noise std (pixel units)")
    g.add_argument("--nested", action="store_true", help="one noise draw shared by all levels")
    g.add_argument("--pgd-levels", type=int, default=30, help="PGD levels incl. the clean one")
    g.add_argument("--step-size", type=_fraction, default=1 / 255, help="PGD step in pixel units, e.g. 2/255")
    g.add_argument("--epsilon", type=_fraction, default=0.3, help="PGD L-infinity radius (pixel units)")
    g.add_argument("--attack-loss", choices=["displacement", "cross-entropy", "nt-xent", "own"],
                   default="displacement",
                   help="PGD loss: label-free displacement, or 'own' = the model's training loss")
    g.add_argument("--batch-size", type=int, default=250)
    g.add_argument("--per-class", action="store_true", help="also print the per-class rows")
    g.add_argument("--out", default=None, help="save the table (.csv or .parquet)")
    p.set_defaults(func=cmd_rmqm)
    from rmqm.sweep import add_sweep_arguments  # the sweep subcommand lives with the sweep
    add_sweep_arguments(sub.add_parser("sweep", help="run a resumable grid of measurements (process pool or Dask)"))
    from rmqm.synbench import add_synbench_arguments  # the synbench subcommand lives with SynBench
    add_synbench_arguments(sub.add_parser("synbench", help="SynBench score of an encoder on synthetic Gaussian data"))
    from rmqm.zoo import add_zoo_arguments  # the zoo subcommand lives with the zoo
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


if __name__ == "__main__":  # pragma: no cover
    main()
