"""``rmqm synbench``: the SynBench score table of an encoder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import torch
from matplotlib.backend_bases import FigureCanvasBase

from rmqm._utils.device import resolve_device
from rmqm._utils.io import save_table
from rmqm.cli.common import add_encoder_options, int_arg, load_encoder, output_file_arg, real_arg, rule_arg
from rmqm.data.registry import load_dataset
from rmqm.metrics.synbench.evaluate import evaluate_synbench
from rmqm.plots.figures import plot_synbench
from rmqm.study.schema import EPSILON

__all__ = ['FIGURE_SUFFIXES', 'add_synbench_arguments', 'synbench_command']


#: The figure formats matplotlib writes (``--figure``).
FIGURE_SUFFIXES: tuple[str, ...] = tuple(f".{ext}" for ext in FigureCanvasBase.get_supported_filetypes())


def add_synbench_arguments(parser: Any) -> Any:
    """Add the ``synbench`` options to an ``argparse`` parser (used by ``rmqm synbench``).

    The encoder options are those of ``rmqm rmqm`` (the cached default encoder or a zoo
    checkpoint); the rest are :func:`evaluate_synbench`'s.
    """

    add_encoder_options(parser)
    g = parser.add_argument_group("SynBench")
    g.add_argument("--s-values", type=real_arg(0, low_open=True), nargs="+", default=None,
                   help="mean scales ||mu|| (default 0.1 ... 4.9, step 0.1)")
    g.add_argument("--epsilons", type=rule_arg(EPSILON, float), nargs="+", default=[0.0, 0.2],
                   help="robustness budgets in [0, 1) (default: %(default)s: the reference runs 0.2 only; "
                        "0 is plain LDA, shown beside it)")
    g.add_argument("--n-train", type=int_arg(4), default=2048, help="train samples per s (default: %(default)s)")
    g.add_argument("--n-test", type=int_arg(1), default=2048, help="test samples per s (default: %(default)s)")
    g.add_argument("--thresholds", type=real_arg(0.5, 1, low_open=True, high_open=True), nargs="+", default=None,
                   help="threshold accuracies in (0.5, 1) (default 0.6, 0.65, ..., 0.95, 0.99)")
    g.add_argument("--n-bootstrap", type=int_arg(0), default=200, help="bootstrap replicates (0: no interval)")
    g.add_argument("--batch-size", type=int_arg(1), default=128,
                   help="samples per encoder call (default: %(default)s; larger CPU batches of the 28x28 CNN "
                        "spend ~25%% more time in page faults)")
    g.add_argument("--threads", type=int_arg(0), default=1,
                   help="torch CPU threads for this run; 0 keeps torch's choice (default: %(default)s: on a "
                        "shared 2-core machine more threads oversubscribe and run 2-3x slower)")
    g.add_argument("--out", type=output_file_arg(), default=None, help="save the score table (.csv or .parquet)")
    g.add_argument("--figure", type=output_file_arg(FIGURE_SUFFIXES), default=None,
                   help="save the expected-bound figure (.png, .pdf, .svg, ...)")
    parser.set_defaults(func=synbench_command)
    return parser


def synbench_command(args: Any) -> pd.DataFrame:
    """``rmqm synbench``: print (and optionally save) the SynBench scores of an encoder."""
    start = time.perf_counter()
    model = load_encoder(args)
    device = resolve_device(args.device)
    input_shape = load_dataset(model.config.get("data", args.data), split="test", n=2, seed=args.seed).input_shape
    threads = torch.get_num_threads()
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        result = evaluate_synbench(
            model.encoder, input_shape, s_values=args.s_values, epsilons=args.epsilons, n_train=args.n_train,
            n_test=args.n_test, thresholds=args.thresholds, batch_size=args.batch_size,
            n_bootstrap=args.n_bootstrap, seed=args.seed, device=device, progress=not args.no_progress,
        )
    finally:
        torch.set_num_threads(threads)
    n_s = len(result.config["s_values"])
    print(f"\nSynBench of {model.name} (input {tuple(input_shape)}, d={result.feature_dim}; {n_s} values of s "
          f"x {args.n_train}+{args.n_test} samples; {time.perf_counter() - start:.1f} s, device {device})")
    with pd.option_context("display.width", 160, "display.float_format", "{:.4f}".format):
        print(result.scores.to_string(index=False))
    if args.out:
        save_table(result.scores.assign(model=model.name), Path(args.out))
    if args.figure:
        ax = plot_synbench(result, title=f"SynBench: {model.name}")
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        ax.figure.savefig(args.figure, bbox_inches="tight", dpi=150)
        plt.close(ax.figure)
        print(f"saved {args.figure}")
    return result.scores
