"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import argparse
from fractions import Fraction

from rmqm._utils.device import resolve_device
from rmqm.data.registry import load_dataset
from rmqm.training.checkpoints import default_encoder, load_model

__all__ = ['load_encoder']


def parse_fraction(text: str) -> float:
    """Parse ``0.004`` or ``1/255``."""
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number or fraction: {text!r}") from None


def add_encoder_options(p: argparse.ArgumentParser) -> None:
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
    """The :class:`rmqm.training.checkpoints.TrainedModel` the options name (trains the default if needed)."""

    device = resolve_device(args.device)
    if args.model:
        return load_model(args.model, zoo_dir=args.zoo_dir, device=device)
    return default_encoder(args.data, dim=args.dim, method=args.method, seed=args.seed,
                           cache_dir=args.zoo_dir, device=device, progress=not args.no_progress)


def measurement_data(args: argparse.Namespace, model):

    # measure on the test split of the data the encoder was trained on
    return load_dataset(model.config.get("data", args.data), split="test", n=args.n_points, seed=args.seed)
