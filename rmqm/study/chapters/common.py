"""What every study notebook shares: its setup call, the encoder columns, interval text."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import TqdmWarning

from rmqm.experiments.cache import ZooRMQM, alteration_settings
from rmqm.experiments.store import ResultsStore
from rmqm.plots.style import book_style
from rmqm.stats.intervals import t_interval
from rmqm.stats.verdicts import format_interval
from rmqm.study.chapters.external import load_external

__all__ = [
    'ENCODER', 'PROBES', 'CORRELATION', 'FRACTION', 'PGD_MODE_LABELS', 'setup', 'probe_columns', 'model_meta',
    'load_zoo', 'study_settings', 'zoo_rmqm', 'interval_text', 'interval_pivot', 'seed_line', 'print_lines',
    'FACTOR_LABELS', 'AttackFactorial', 'factorial_settings',
]

#: The columns that name an encoder (a zoo model up to its seed).
ENCODER: tuple[str, ...] = ("method", "family", "dim", "optimizer")
#: Probe suffixes of the zoo's downstream-accuracy columns ``<task>_<probe>``.
PROBES: tuple[str, ...] = ("1nn", "knn", "linear")
#: Prefix of the zoo's in-distribution accuracy columns (probes on the pretraining set's test images).
INDIST = "indist"
#: Range of a correlation coefficient and of a fraction (bounds of their t-intervals).
CORRELATION: tuple[float, float] = (-1, 1)
FRACTION: tuple[float, float] = (0, 1)
#: The study's PGD settings (``pgd-<mode>``) and how tables and figures name them.
PGD_MODE_LABELS: dict[str, str] = {
    "pgd-reference": "reference pipeline (what the paper computed)",
    "pgd-own-loss": "own loss, no augmentation (artefact-free)",
    "pgd-displacement": "displacement (label-free, artefact-free)",
}
#: The factors of the attack ablation (:data:`rmqm.metrics.rmqm.attacks.FACTORS`) as prose names them.
FACTOR_LABELS: dict[str, str] = {
    "augment_output": "output rotation",
    "augment_gradient": "randomness in the gradient path",
    "restarts": "per-level restarts",
    "rotation": "rotation per image instead of per batch",
}
_SHORT = {"augment_output": "out", "augment_gradient": "grad", "restarts": "restart"}


def setup(results_dir: str | os.PathLike) -> Path:
    """Prepare a study notebook and return its results folder.

    Applies the book's figure style (:func:`rmqm.plots.style.book_style`, which sets
    matplotlib's process-wide rcParams), shows table cells in full (pandas'
    ``display.max_colwidth``, process-wide), ignores :class:`tqdm.TqdmWarning` (the study's
    kernel has no ipywidgets and its progress bars are off) and creates ``results_dir``
    with its parents.

    Raises:
        TypeError: ``results_dir`` is not a path.
        NotADirectoryError: ``results_dir`` exists and is not a folder.
    """
    if not isinstance(results_dir, (str, os.PathLike)):
        raise TypeError(f"results_dir must be a path; got {type(results_dir).__name__}")
    results = Path(results_dir)
    if results.exists() and not results.is_dir():
        raise NotADirectoryError(f"results_dir {results} exists and is not a folder")
    warnings.filterwarnings("ignore", category=TqdmWarning)
    book_style()
    pd.set_option("display.max_colwidth", None)  # a table cell never shows a claim cut to "..."
    results.mkdir(parents=True, exist_ok=True)
    return results


def probe_columns(zoo: pd.DataFrame) -> list[str]:
    """The transfer-task accuracy columns ``<task>_<probe>`` of a zoo table, in table order
    (the in-distribution ``indist_<probe>`` columns are not a transfer task)."""
    return [c for c in zoo.columns if c.rsplit("_", 1)[-1] in PROBES and not c.startswith(f"{INDIST}_")]


def model_meta(row: Any) -> dict[str, Any]:
    """``name, method, family, dim, optimizer, seed`` of one zoo model (a row of
    ``zoo.itertuples()``), in that order: the columns added to each model's tables."""
    return dict(name=row.name, method=row.method, family=row.family, dim=row.dim, optimizer=row.optimizer,
                seed=row.seed)


def load_zoo(results: str | os.PathLike) -> pd.DataFrame:
    """The zoo table ``results/zoo.parquet`` written by the first notebook.

    Raises:
        FileNotFoundError: the table is missing (run ``01_model_zoo`` first).
    """
    path = Path(results) / "zoo.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"no zoo table at {path}; the notebook 01_model_zoo writes it")
    return pd.read_parquet(path)


def study_settings(
    n_noise_levels: int,
    noise_sigma_max: float,
    n_pgd_levels: int,
    pgd_step_size: float,
    pgd_epsilon: float,
    pgd_modes: Sequence[str],
    attack_batch_size: int | None = None,
) -> dict[str, dict[str, Any]]:
    """The alteration settings of the RMQM chapters: ``"noise"`` (a fresh draw per level, the
    reference's choice) and one ``"pgd-<mode>"`` per PGD mode of ``pgd_modes``
    (:func:`rmqm.experiments.cache.alteration_settings`; ``reference`` and ``own-loss`` attack
    each model with its own training loss, ``displacement`` with the shared label-free loss).

    Args:
        attack_batch_size: images per PGD batch (the own losses are batch means: the reference
            attacks MNIST in batches of 128); None: the measuring batch size.

    Raises:
        ValueError: ``pgd_modes`` is empty, repeats a mode or names an unknown one.
    """
    modes = list(pgd_modes)
    unknown = [m for m in modes if f"pgd-{m}" not in PGD_MODE_LABELS]
    if not modes or unknown or len(set(modes)) != len(modes):
        raise ValueError(f"pgd_modes must be distinct modes among {[k[4:] for k in PGD_MODE_LABELS]}; got {modes}")
    levels = (n_noise_levels, noise_sigma_max, n_pgd_levels, pgd_step_size, pgd_epsilon)
    settings = {"noise": alteration_settings(*levels)["noise"]}
    for mode in modes:
        settings[f"pgd-{mode}"] = alteration_settings(*levels, pgd_mode=mode,
                                                      attack_batch_size=attack_batch_size)["pgd"]
    return settings


@dataclass(frozen=True)
class AttackFactorial:
    """The PGD settings of the attack ablation and what each one switches.

    Attributes:
        settings: setting name -> ``measure_rmqm`` keywords (reference mode with factor switches).
        cells: one row per setting: ``setting``, one boolean column per two-level factor
            (``augment_output``, ``augment_gradient``, ``restarts``), ``rotation`` (``"batch"`` or
            ``"image"``) and ``sensitivity`` (True for the per-image rotation row, outside the 2^k design).
        factors: the two-level factors varied (the others are held: the augmentations on, as the
            reference; restarts off, one trajectory, the cheap scheme).
    """

    settings: dict[str, dict[str, Any]]
    cells: pd.DataFrame
    factors: tuple[str, ...]


def factorial_settings(
    n_pgd_levels: int,
    pgd_step_size: float,
    pgd_epsilon: float,
    factors: Sequence[str],
    attack_batch_size: int | None = None,
) -> AttackFactorial:
    """The cells of the attack ablation: every combination of the two-level ``factors`` among
    ``augment_output``, ``augment_gradient`` and ``restarts`` (each on as the reference has it, or
    off; see :func:`rmqm.metrics.rmqm.attacks.resolve_attack`), the others held (augmentations on,
    restarts off), the rotation drawn per batch; and when ``factors`` holds ``"rotation"``, one
    sensitivity cell: every varied factor on, the rotation drawn per image (bilinear).

    Raises:
        ValueError: an unknown or repeated factor, or no two-level factor.
    """
    factors = list(factors)
    two_level = [f for f in factors if f != "rotation"]
    if len(set(factors)) != len(factors) or set(factors) - set(FACTOR_LABELS) or not two_level:
        raise ValueError(f"factors must be distinct names among {list(FACTOR_LABELS)} with at least one of "
                         f"{list(_SHORT)}; got {factors}")
    held = {"augment_output": True, "augment_gradient": True, "restarts": False}
    combos = [dict(zip(two_level, levels, strict=True)) for levels in product((True, False), repeat=len(two_level))]
    rows = [({**held, **c}, "batch") for c in combos]
    if "rotation" in factors:
        rows.append(({**held, **{f: True for f in two_level}}, "image"))
    settings, cells = {}, []
    for levels, rotation in rows:
        name = "ablation " + " ".join(f"{_SHORT[f]}{'+' if levels[f] else '-'}" for f in _SHORT)
        name += " per-image" if rotation == "image" else ""
        pgd = alteration_settings(3, 1.0, n_pgd_levels, pgd_step_size, pgd_epsilon, pgd_mode="reference",
                                  attack_batch_size=attack_batch_size, factors={**levels, "rotation": rotation})
        settings[name] = pgd["pgd"]
        cells.append({"setting": name, **levels, "rotation": rotation, "sensitivity": rotation == "image"})
    return AttackFactorial(settings, pd.DataFrame(cells), tuple(two_level))


def zoo_rmqm(
    results: str | os.PathLike,
    zoo: pd.DataFrame,
    n_points: int,
    settings: Mapping[str, Mapping[str, Any]],
    batch_size: int = 256,
    device: str = "cpu",
) -> ZooRMQM:
    """The :class:`~rmqm.experiments.cache.ZooRMQM` of the study: zoo checkpoints in
    ``results/zoo``, cached tables in the store ``results/store``, measured on ``n_points``
    test images of the zoo's pretraining set (each model with its own seed).

    Args:
        settings: alteration name -> keywords, from :func:`rmqm.experiments.cache.alteration_settings`.

    The user encoders of the study (:func:`rmqm.study.chapters.external.load_external`) are
    measured beside the zoo's checkpoints.
    """
    results = Path(results)
    return ZooRMQM(ResultsStore(results / "store"), results / "zoo", zoo["data"].iloc[0], n_points, settings,
                   batch_size=batch_size, device=device, external=load_external(results, device))


def interval_text(ci: pd.DataFrame, digits: int = 3, signed: bool = False) -> list[str]:
    """``"mean [low, high]"`` of each row of a :func:`rmqm.stats.intervals.summarize_seeds` table."""
    return [format_interval(m, lo, hi, digits, signed) for m, lo, hi in ci[["mean", "ci_low", "ci_high"]].to_numpy()]


def interval_pivot(
    ci: pd.DataFrame,
    index: Sequence[str],
    columns: str | Sequence[str],
    digits: int = 3,
    signed: bool = False,
) -> pd.DataFrame:
    """A :func:`rmqm.stats.intervals.summarize_seeds` table as text ``"mean [low, high]"``,
    ``index`` rows by ``columns`` columns."""
    return ci.assign(interval=interval_text(ci, digits, signed)).pivot_table(
        index=list(index), columns=columns, values="interval", aggfunc="first")


def seed_line(values: Any, label: str, bounds: tuple[float, float], digits: int = 2) -> str:
    """``"<label>: mean [low, high] over n seeds (per seed: v1, v2, ...)"``: the mean over
    seeds with its 95 % t-interval clipped to ``bounds``; signed when ``bounds`` allow negatives."""
    values = pd.Series(values, dtype=float)
    m, lo, hi = t_interval(values, bounds=bounds)
    per = ", ".join(f"{v:.{digits}f}" for v in values)
    return (f"{label}: {format_interval(m, lo, hi, digits, signed=bounds[0] < 0)} over {len(values)} seeds "
            f"(per seed: {per})")


def print_lines(lines: Sequence[str]) -> None:
    """Print each of ``lines`` on its own line (nothing at all for no lines)."""
    for line in lines:
        print(line)
