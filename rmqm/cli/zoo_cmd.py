"""``rmqm zoo``: train the zoo and print its downstream table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from rmqm._utils.io import save_table
from rmqm.cli.common import (
    dataset_arg,
    device_arg,
    int_arg,
    output_file_arg,
    output_folder_arg,
    real_arg,
    rule_arg,
    seed_arg,
)
from rmqm.models.backbones import ARCHITECTURES
from rmqm.study.schema import knn_k_problem, non_empty_text
from rmqm.training.configs import TrainingConfig
from rmqm.training.curves import plateau_table
from rmqm.training.methods import METHODS, OPTIMIZERS
from rmqm.training.zoo import TINY_ZOO, family_summary, train_zoo

__all__ = ['add_zoo_arguments', 'zoo_command']


def add_zoo_arguments(parser: Any) -> Any:
    """Add the ``zoo`` options to an ``argparse`` parser (used by ``rmqm zoo``).

    The defaults train the tiny CPU zoo (every method at d = 16 and 64 on the offline
    default data) and print its table. Every option is checked when parsed (``--epochs 0``,
    an ``--out`` in a folder that cannot exist, a ``--zoo-dir`` that is a file are argparse
    errors), so a bad one fails before any training.
    """
    g = parser.add_argument_group("zoo")
    g.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS), metavar="METHOD",
                   help=f"pretraining methods (default: all: {', '.join(METHODS)})")
    g.add_argument("--dims", type=int_arg(1), nargs="+", default=list(TINY_ZOO["dims"]), help="embedding dimensions")
    g.add_argument("--seeds", type=seed_arg, nargs="+", default=[0], help="training seeds")
    g.add_argument("--optimizers", nargs="+", default=["adam"], choices=list(OPTIMIZERS))
    g.add_argument("--data", default="fashion-mnist", type=dataset_arg,
                   help="pretraining set (fashion-mnist falls back to digits when its files are missing)")
    g.add_argument("--transfer", nargs="+", type=dataset_arg, default=None,
                   help="downstream sets (default: the pretraining set's transfer tasks)")
    g.add_argument("--arch", default="tiny", choices=list(ARCHITECTURES))
    g.add_argument("--lr", type=real_arg(0, low_open=True), default=1e-3, help="learning rate")
    g.add_argument("--epochs", type=int_arg(1), default=TINY_ZOO["epochs"], help="training passes per model")
    g.add_argument("--checkpoints", type=int_arg(1), nargs="+", default=None, metavar="EPOCH",
                   help="keep and score each model after these epochs (e.g. 1 2 4 8 16 25); it is trained once, "
                        "to the last (default: --epochs only)")
    g.add_argument("--accumulate", type=int_arg(1), default=1,
                   help="batches per optimiser step (the reference: --batch-size 64 --accumulate 8)")
    g.add_argument("--batch-size", type=int_arg(2), default=128)
    g.add_argument("--n-train", type=int_arg(0), default=TINY_ZOO["n_train"], help="training images (0: all)")
    g.add_argument("--time-budget", type=real_arg(0), default=TINY_ZOO["time_budget_s"],
                   help="seconds of training per model before it stops early (default and 0: no limit; a limit makes "
                        "the models depend on the machine's speed)")
    g.add_argument("--n-eval", type=int_arg(2), default=TINY_ZOO["n_eval"],
                   help="test points of the pretraining set for RankMe and alpha-ReQ")
    g.add_argument("--n-transfer", type=int_arg(2), default=None, help="subsample each transfer set")
    g.add_argument("--k", type=int_arg(1), default=5, help="neighbours of the k-NN probe")
    g.add_argument("--zoo-dir", default="results/zoo", type=output_folder_arg, help="where checkpoints are cached")
    g.add_argument("--data-root", default=None, type=rule_arg(non_empty_text()),
                   help="root of torchvision datasets (default $RMQM_DATA or ./data)")
    g.add_argument("--download", action="store_true", help="let torchvision download missing datasets")
    g.add_argument("--retrain", action="store_true", help="ignore cached checkpoints")
    g.add_argument("--device", default="auto", type=device_arg, help="auto (cuda when present), cpu, cuda or cuda:N")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    g.add_argument("--out", type=output_file_arg(), default=None, help="save the table (.csv or .parquet)")
    parser.set_defaults(func=zoo_command)
    return parser


def zoo_command(args: Any) -> pd.DataFrame:
    """``rmqm zoo``: train (or load) the zoo and print its downstream and label-free scores."""

    problem = knn_k_problem(args.k, args.n_eval, args.n_transfer)
    if problem is not None:
        raise ValueError(f"--k: {problem}")
    start = time.perf_counter()
    data_kwargs: dict[str, Any] = {}
    if args.data_root is not None:
        data_kwargs["root"] = args.data_root
    if args.download:
        data_kwargs["download"] = True
    training = TrainingConfig(args.data, arch=args.arch, lr=args.lr, epochs=args.epochs,
                              batch_size=args.batch_size, accumulate=args.accumulate, n_train=args.n_train or None,
                              time_budget_s=args.time_budget or None)
    table = train_zoo(
        args.methods, args.dims, args.seeds, data=args.data, transfer=args.transfer, training=training,
        optimizers=args.optimizers, checkpoints=args.checkpoints, n_eval=args.n_eval, n_transfer=args.n_transfer,
        k=args.k, cache_dir=args.zoo_dir, device=args.device, progress=not args.no_progress, retrain=args.retrain,
        **data_kwargs,
    )
    shown = table.drop(columns=["name", "data", "arch"])
    if len(set(table["optimizer"])) == 1:
        shown = shown.drop(columns="optimizer")
    if len(set(table["seed"])) == 1:
        shown = shown.drop(columns="seed")
    epochs = sorted(set(table["epoch"]))
    if len(epochs) == 1:
        shown = shown.drop(columns="epoch")
    n_models = len(table) // len(epochs)
    at = f" at epochs {', '.join(map(str, epochs))}" if len(epochs) > 1 else ""
    print(f"\nModel zoo: {n_models} models{at} pretrained on {table['data'].iloc[0]} "
          f"({time.perf_counter() - start:.1f} s; checkpoints in {args.zoo_dir})")
    with pd.option_context("display.width", 250, "display.max_columns", 50, "display.float_format", "{:.3f}".format):
        print(shown.to_string(index=False))
        print(f"\nMean per family (epoch {epochs[-1]}):")
        print(family_summary(table).to_string())
        if len(epochs) > 1:
            print(f"\nIn-distribution k-NN over the last stretch of training (epoch {epochs[-2]} -> {epochs[-1]}; "
                  "plateau: gain < 1 point):")
            print(plateau_table(table).drop(columns="family").to_string(index=False))
    if args.out:
        save_table(table, Path(args.out))
    return table
