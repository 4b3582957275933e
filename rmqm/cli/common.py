"""Options and helpers shared by the subcommands.

Every option is checked when the command line is parsed, before anything is computed:
numbers against the rules of :mod:`rmqm.study.schema`, ``--device`` against this machine,
output paths against the file system (a table must end in ``.csv``/``.parquet`` and its
folder must be creatable; a folder option must not name a file). A bad value is an
``argparse`` error (``error: argument --epochs: expected an integer >= 1; got '0'``, exit
status 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from rmqm._utils.device import resolve_device
from rmqm.data.dataset import ImageDataset
from rmqm.data.registry import available_datasets, load_dataset
from rmqm.study.schema import (
    SCHEMA,
    Rule,
    check_output_folder,
    folder_problem,
    integer,
    non_empty_text,
    path_problem,
    real,
    seed,
)
from rmqm.training.checkpoints import TrainedModel, default_encoder, load_model
from rmqm.training.methods import METHODS

__all__ = ['INTERRUPTED', 'TABLE_SUFFIXES', 'parse_fraction', 'rule_arg', 'int_arg', 'real_arg', 'seed_arg',
           'name_arg', 'device_arg', 'dataset_arg', 'output_file_arg', 'output_folder_arg', 'add_encoder_options',
           'load_encoder', 'measurement_data']


#: Exit status after Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130

#: The suffixes of the tables a command can save (:func:`rmqm._utils.io.save_table`).
TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".parquet")


def parse_fraction(text: str) -> float:
    """Parse ``0.004`` or ``1/255`` as a float.

    Raises:
        argparse.ArgumentTypeError: not a number or fraction, or too large for a float.
    """
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError, OverflowError):
        raise argparse.ArgumentTypeError(f"not a number or fraction: {text!r}") from None


def rule_arg(rule: Rule, convert: Callable[[str], Any] = str) -> Callable[[str], Any]:
    """An ``argparse`` type: ``convert(text)``, accepted when ``rule`` accepts it.

    The error (shown after ``argument --option:``) says what the rule expects and repeats the text.
    """
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            value = None
        else:
            if rule.test(value):
                return value
        raise argparse.ArgumentTypeError(f"expected {rule.expected}; got {text!r}")

    parse.__name__ = rule.expected
    return parse


def int_arg(low: int) -> Callable[[str], int]:
    """An ``argparse`` type: an integer ``>= low``."""
    return rule_arg(integer(low), int)


def real_arg(low: float, high: float = float("inf"), *, low_open: bool = False,
             high_open: bool = False) -> Callable[[str], float]:
    """An ``argparse`` type: a finite number in the given range (fractions such as ``2/255`` too)."""
    return rule_arg(real(low, high, low_open=low_open, high_open=high_open), parse_fraction)


#: An ``argparse`` type: a seed, an integer in ``[0, 2**32 - 1]`` (:func:`rmqm.study.schema.seed`).
seed_arg = rule_arg(seed(), int)

#: An ``argparse`` type: a non-empty name (e.g. ``--model``).
name_arg = rule_arg(non_empty_text())


def device_arg(text: str) -> str:
    """An ``argparse`` type: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` present on this machine,
    returned resolved (``auto`` -> ``cuda`` or ``cpu``)."""
    rule_arg(SCHEMA["device"].rule)(text)
    try:
        return resolve_device(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def dataset_arg(text: str) -> str:
    """An ``argparse`` type: a name :func:`rmqm.data.registry.load_dataset` accepts."""
    if text not in available_datasets():
        raise argparse.ArgumentTypeError(f"unknown dataset {text!r}; choose one of {available_datasets()}")
    return text


def output_file_arg(suffixes: Sequence[str] = TABLE_SUFFIXES) -> Callable[[str], str]:
    """An ``argparse`` type: a file to write, ending in one of ``suffixes``, that is not an
    existing folder and whose folder exists or can be created (nothing is created)."""
    def parse(text: str) -> str:
        path = Path(text)
        problem = path_problem(text)
        if problem is not None:
            raise argparse.ArgumentTypeError(f"cannot write {text[:60]!r}: {problem}")
        if path.suffix not in suffixes:
            raise argparse.ArgumentTypeError(f"{text} must end in {' or '.join(suffixes)}")
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name ending in {' or '.join(suffixes)}")
        problem = folder_problem(path.absolute().parent)
        if problem is not None:
            raise argparse.ArgumentTypeError(f"cannot write {text}: {problem}")
        return text

    parse.__name__ = "output file"
    return parse


def output_folder_arg(text: str) -> str:
    """An ``argparse`` type: a folder to write in -- not a file, creatable (nothing is created)."""
    try:
        check_output_folder(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def add_encoder_options(p: argparse.ArgumentParser) -> None:
    """Options that pick the encoder: the cached default, or a zoo checkpoint."""
    g = p.add_argument_group("encoder")
    g.add_argument("--data", default="fashion-mnist", type=dataset_arg,
                   help="dataset the default encoder is trained on and measured with "
                        "(fashion-mnist, falling back to digits when its files are missing)")
    g.add_argument("--model", default=None, type=name_arg,
                   help="name or path of a zoo checkpoint to measure instead of the default encoder")
    g.add_argument("--method", default="cross-entropy", choices=list(METHODS), metavar="METHOD",
                   help=f"pretraining method of the default encoder ({', '.join(METHODS)})")
    g.add_argument("--dim", type=int_arg(1), default=32, help="embedding dimension of the default encoder")
    g.add_argument("--zoo-dir", default="results/zoo", type=output_folder_arg, help="where checkpoints are cached")
    g.add_argument("--seed", type=seed_arg, default=0, help="seed of training, subsampling and alterations")
    g.add_argument("--device", default="auto", type=device_arg, help="auto (cuda when present), cpu, cuda or cuda:N")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def load_encoder(args: argparse.Namespace) -> TrainedModel:
    """The :class:`rmqm.training.checkpoints.TrainedModel` the options name (trains the default if needed)."""
    device = resolve_device(args.device)
    if args.model:
        return load_model(args.model, zoo_dir=args.zoo_dir, device=device)
    return default_encoder(args.data, dim=args.dim, method=args.method, seed=args.seed,
                           cache_dir=args.zoo_dir, device=device, progress=not args.no_progress)


def measurement_data(args: argparse.Namespace, model: TrainedModel) -> ImageDataset:
    """The test split of the data ``model`` was trained on: ``args.n_points`` points, seeded by ``args.seed``."""
    return load_dataset(model.config.get("data", args.data), split="test", n=args.n_points, seed=args.seed)
