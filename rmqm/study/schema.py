"""What a study run accepts: the type and range of every study parameter, and its build folder.

:data:`SCHEMA` lists every parameter the notebooks declare (except the runner's own
:data:`rmqm.study.profiles.RESERVED_PARAMETERS`) with the values it accepts and what it
means. :func:`validate_profile` checks a merged profile (after ``--set``) against it and
raises one :class:`ValueError` that names every bad value, so that a wrong value fails in
a second rather than in the notebook that uses it, minutes or hours later. Parameters the
schema does not know are left to :mod:`rmqm.study.notebooks` (which refuses those no
notebook declares). :func:`check_output_folder` checks a folder a run will write to.
"""

from __future__ import annotations

import math
import numbers
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch

from rmqm._utils.device import resolve_device
from rmqm.data.registry import available_datasets
from rmqm.experiments.engine import engine_options
from rmqm.metrics.rmqm import FACTORS, PGD_MODES
from rmqm.metrics.synbench import DEFAULT_S_VALUES, DEFAULT_THRESHOLDS, MIN_POSITIVE_EPSILON
from rmqm.models.backbones import ARCHITECTURES
from rmqm.study.profiles import RESERVED_PARAMETERS, Profile
from rmqm.training.methods import METHODS, OPTIMIZERS

__all__ = [
    "Rule", "Parameter", "integer", "real", "seed", "non_empty_text", "one_of", "optional", "non_empty_list",
    "EPSILON", "MAX_SEED", "SIGMA_MAX", "STEP_SIZE", "PGD_EPSILON", "SCHEMA", "parameter_problems",
    "scheduler_problem", "knn_k_problem", "validate_profile", "path_problem", "folder_problem", "check_output_folder",
]


@dataclass(frozen=True)
class Rule:
    """The values a parameter accepts: ``test(value)`` is True for them; ``expected`` says
    which in words (it completes "expected ...")."""

    expected: str
    test: Callable[[Any], bool]


@dataclass(frozen=True)
class Parameter:
    """A study parameter: the values it accepts and what it means."""

    rule: Rule
    meaning: str


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def integer(low: int) -> Rule:
    """An int ``>= low`` (bools and floats such as ``3.0`` are refused)."""
    return Rule(f"an integer >= {low}", lambda v: _is_int(v) and v >= low)


def real(low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False) -> Rule:
    """A finite number in the interval from ``low`` to ``high`` (open ends as flagged)."""
    if high == math.inf:
        text = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        text = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def test(v: Any) -> bool:
        if not _is_real(v):
            return False
        x = float(v)
        return (x > low if low_open else x >= low) and (x < high if high_open else x <= high)

    return Rule(text, test)


def one_of(options: Sequence[Any]) -> Rule:
    """One of ``options`` (numbers compare with :func:`math.isclose`)."""
    options = list(options)

    def test(v: Any) -> bool:
        if _is_real(v):
            return any(_is_real(o) and math.isclose(float(v), float(o)) for o in options)
        return isinstance(v, str) and v in options

    return Rule(f"one of {options}", test)


#: The largest seed: numpy's generators take seeds below 2**32.
MAX_SEED = 2**32 - 1


def seed() -> Rule:
    """A seed: an int in ``[0, 2**32 - 1]`` (what numpy and torch both accept)."""
    return Rule(f"an integer in [0, {MAX_SEED}] (a seed)", lambda v: _is_int(v) and 0 <= v <= MAX_SEED)


def non_empty_text() -> Rule:
    """A string that is not empty or only blanks."""
    return Rule("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip()))


def optional(rule: Rule) -> Rule:
    """``null`` (None) or a value ``rule`` accepts."""
    return Rule(f"null or {rule.expected}", lambda v: v is None or rule.test(v))


def non_empty_list(item: Rule) -> Rule:
    """A non-empty list of distinct values, each accepted by ``item``."""
    def test(v: Any) -> bool:
        return (isinstance(v, list) and len(v) > 0 and all(item.test(x) for x in v)
                and len({float(x) if _is_real(x) else repr(x) for x in v}) == len(v))

    return Rule(f"a non-empty list of distinct values, each {item.expected}", test)


def _is_device_name(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if value == "auto":
        return True
    try:
        return torch.device(value).type in ("cpu", "cuda", "mps")
    except (RuntimeError, ValueError, TypeError):
        return False


def _is_scheduler(value: Any) -> bool:
    try:
        engine_options(value)
    except (TypeError, ValueError):
        return False
    return True


#: A robustness budget of SynBench or the robust probe (see rmqm.metrics.synbench.qcqp).
EPSILON = Rule(f"0 or a number in [{MIN_POSITIVE_EPSILON:g}, 1)",
               lambda v: _is_real(v) and (float(v) == 0.0 or MIN_POSITIVE_EPSILON <= float(v) < 1.0))

#: The largest white-noise std (pixel units), the PGD step and the PGD radius: one rule each,
#: shared by the study's parameters and the ``rmqm rmqm`` options.
SIGMA_MAX = real(0, low_open=True)
STEP_SIZE = real(0, 1, low_open=True)
PGD_EPSILON = real(0, 1, low_open=True)

#: Every parameter of the study notebooks (``notebooks/*.ipynb``, their ``parameters`` cells).
SCHEMA: dict[str, Parameter] = {
    "device": Parameter(Rule("auto, cpu, cuda, cuda:N or mps", _is_device_name),
                        "where models run (auto: cuda when present)"),
    "scheduler": Parameter(Rule("null (this process), serial, process, dask or a Dask address tcp://host:port",
                                _is_scheduler), "where the zoo and RMQM jobs run (rmqm.experiments.engine)"),
    # 01 model zoo
    "data": Parameter(one_of(available_datasets()), "pretraining set of the zoo"),
    "methods": Parameter(non_empty_list(one_of(METHODS)), "pretraining methods of the zoo"),
    "dims": Parameter(non_empty_list(integer(1)), "embedding dimensions d"),
    "zoo_seeds": Parameter(non_empty_list(seed()), "replicates: each seed trains every model again"),
    "arch": Parameter(one_of(ARCHITECTURES), "encoder architecture"),
    "optimizers": Parameter(non_empty_list(one_of(OPTIMIZERS)), "optimizers of the zoo"),
    "epochs": Parameter(integer(1), "training epochs of each model's last checkpoint"),
    "checkpoints": Parameter(optional(non_empty_list(integer(1))),
                             "epochs after which a model is kept and scored; the largest must equal epochs "
                             "(null: just epochs)"),
    "train_batch_size": Parameter(integer(2), "images per training step"),
    "accumulate": Parameter(integer(1), "training steps per optimiser update (gradient accumulation)"),
    "n_train": Parameter(optional(integer(2)), "training images per model (null: all)"),
    "time_budget_s": Parameter(optional(real(0, low_open=True)),
                               "seconds of training per model before it stops early (null: no limit)"),
    "n_eval": Parameter(integer(2), "test images for RankMe and alpha-ReQ"),
    "n_transfer": Parameter(optional(integer(2)), "subsample of each transfer set (null: all of it)"),
    "encoders": Parameter(Rule("a list of encoder specs (mappings, or a built-in's name)",
                               lambda v: isinstance(v, list) and all(isinstance(x, (dict, str)) for x in v)),
                          "your own encoders, added to the study beside the zoo (each spec is checked by "
                          "rmqm.study.encoders.check_profile_encoders before any notebook runs)"),
    # 02/03 RMQM
    "n_points": Parameter(integer(1), "test images of the pretraining set that are altered"),
    "n_noise_levels": Parameter(integer(3), "white-noise levels, including the clean one"),
    "noise_sigma_max": Parameter(SIGMA_MAX, "largest noise std (pixel units, pixels in [0, 1])"),
    "n_pgd_levels": Parameter(integer(3), "PGD levels, including the clean one"),
    "pgd_step_size": Parameter(STEP_SIZE, "PGD step (pixel units)"),
    "pgd_epsilon": Parameter(PGD_EPSILON, "PGD L-infinity radius (pixel units)"),
    "pgd_modes": Parameter(non_empty_list(one_of(PGD_MODES)),
                           "PGD modes measured: reference (the reference's pipeline), own-loss, displacement"),
    "pgd_factors": Parameter(non_empty_list(one_of(FACTORS)),
                             "factors of the chapter-2 attack ablation: augment_output, augment_gradient, restarts "
                             "(two levels each) and rotation (a per-image sensitivity cell)"),
    "attack_batch_size": Parameter(optional(integer(1)),
                                   "images per PGD batch (the own losses are batch means; null: batch_size)"),
    "batch_size": Parameter(integer(1), "images per encoder call when measuring RMQM"),
    # 04 SynBench
    "syn_s_step": Parameter(real(0, float(max(DEFAULT_S_VALUES)), low_open=True),
                            "spacing of the SynBench mean scales s (up to the largest, 4.9)"),
    "syn_n_samples": Parameter(integer(4), "SynBench train and test samples per s"),
    "syn_epsilons": Parameter(non_empty_list(EPSILON), "SynBench robustness budgets (0: plain LDA)"),
    "syn_n_bootstrap": Parameter(integer(0), "bootstrap replicates of the SynBench score interval"),
    "syn_batch_size": Parameter(integer(1), "samples per encoder call in SynBench"),
    "syn_n_directions": Parameter(integer(1), "random mean directions each encoder and control is scored under"),
    "syn_direction_n_train": Parameter(integer(4), "SynBench train samples per s of the random-direction runs"),
    "syn_direction_n_test": Parameter(integer(1), "SynBench test samples per s of the random-direction runs"),
    "probe_n": Parameter(integer(4), "images of the transfer task for the robust probes (half fit, half test)"),
    "attack_n": Parameter(integer(1), "test images attacked through encoder and robust probe (claim 2)"),
    "attack_radii": Parameter(non_empty_list(real(0, 1, low_open=True)),
                              "L-infinity radii of the input-space attack (pixel units; book/endpoints.yaml declares "
                              "claim 2's)"),
    "attack_steps": Parameter(integer(1), "PGD steps of the input-space attack"),
    # 05 correlations
    "synbench_threshold": Parameter(one_of(DEFAULT_THRESHOLDS),
                                    "threshold accuracy t of the SynBench score (one notebook 04 computes)"),
    "synbench_epsilon": Parameter(EPSILON, "robustness budget of the SynBench score (one of syn_epsilons)"),
    "confidence": Parameter(real(0, 1, low_open=True, high_open=True), "level of the intervals of the verdicts"),
    "n_resamples": Parameter(integer(100), "two-level bootstrap replicates of each correlation"),
    "include_encoders_in_stats": Parameter(Rule("true or false", lambda v: isinstance(v, bool)),
                                           "count the user's encoders in notebook 05's correlations"),
}


def knn_k_problem(k: int, n_eval: int | None, n_transfer: int | None = None) -> str | None:
    """Why a k-NN probe with ``k`` neighbours cannot run as asked (None when it can): each probe
    fits on the train half, ``floor(n / 2)`` points, of ``n_eval`` test images and of each
    ``n_transfer`` subsample (:func:`rmqm.metrics.probes.evaluate_probes`), and ``k`` must
    not exceed it (it would silently become a vote of every point)."""
    given = [(name, int(n)) for name, n in (("n_eval", n_eval), ("n_transfer", n_transfer)) if n is not None]
    bad = [(n // 2, name, n) for name, n in given if n // 2 < k]
    if not bad:
        return None
    m, name, n = min(bad)
    return (f"k = {k} neighbours, but the k-NN probe trains on {m} points (the train half of {name} = {n}); "
            f"give k <= {m} or a larger {name}")


def parameter_problems(values: Mapping[str, Any], *, prefix: str = "") -> list[str]:
    """One line per value of ``values`` that :data:`SCHEMA` refuses (unknown names are skipped).

    Each line names the parameter (after ``prefix``, e.g. ``"03_noise_vs_pgd."``), its
    value and what is expected.
    """
    problems = []
    for name, value in values.items():
        spec = SCHEMA.get(name)
        if spec is not None and not spec.rule.test(value):
            problems.append(f"{prefix}{name} = {value!r} ({type(value).__name__}): expected {spec.rule.expected}"
                            f" -- {spec.meaning}")
    return problems


def _checkpoint_problems(profile: Profile) -> list[str]:
    """``checkpoints`` must end at ``epochs`` (the zoo trains to the last checkpoint)."""
    values = dict(profile.parameters)
    for nb_values in profile.notebooks.values():
        values.update({k: v for k, v in nb_values.items() if k in ("epochs", "checkpoints")})
    epochs, kept = values.get("epochs"), values.get("checkpoints")
    if (kept is None or not SCHEMA["checkpoints"].rule.test(kept) or not SCHEMA["epochs"].rule.test(epochs)
            or max(kept) == epochs):
        return []
    return [f"checkpoints = {kept!r}: the largest must equal epochs = {epochs!r} (the zoo trains each model to its "
            "last checkpoint); set epochs to max(checkpoints)"]


def scheduler_problem(address: Any, timeout_s: float = 2.0) -> str | None:
    """Why the Dask scheduler ``address`` (``tcp://host:port``) cannot be reached (None when a
    TCP connection opens within ``timeout_s``; nothing is sent). Other schedulers: None."""
    if not isinstance(address, str) or "://" not in address:
        return None
    parts = urlsplit(address)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if parts.scheme != "tcp" or not host or port is None:
        return f"expected a Dask scheduler address tcp://host:port; got {address!r}"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as err:
        return f"the Dask scheduler {address} cannot be reached ({err}); start it or fix the address"


def validate_profile(profile: Profile, *, check_device: bool = True, check_scheduler: bool = True) -> Profile:
    """Check every value of a merged profile (shared and per notebook) against :data:`SCHEMA`.

    Also checks that ``synbench_epsilon`` is one of ``syn_epsilons`` (notebook 05 reads a
    score notebook 04 computed) and, with ``check_device``, that every ``device`` is present
    on this machine and, with ``check_scheduler``, that a Dask scheduler address answers
    (:func:`scheduler_problem`). Parameters the runner fills in itself
    (:data:`rmqm.study.profiles.RESERVED_PARAMETERS`) cannot be set. Returns ``profile`` unchanged.

    Raises:
        ValueError: one message that lists every bad parameter, its value and what is expected.
    """
    problems = parameter_problems(profile.parameters)
    for nb, values in profile.notebooks.items():
        problems += parameter_problems(values, prefix=f"{nb}.")
    for prefix, values in [("", profile.parameters), *((f"{nb}.", v) for nb, v in profile.notebooks.items())]:
        problems += [f"{prefix}{k}: set by the runner (the build folder's results/ and the profile's name); "
                     "it cannot be given" for k in RESERVED_PARAMETERS if k in values]
    effective: dict[str, tuple[str, Any]] = {
        k: (k, profile.parameters[k]) for k in ("synbench_epsilon", "syn_epsilons") if k in profile.parameters}
    for nb, values in profile.notebooks.items():  # each is read by one notebook only
        effective.update({k: (f"{nb}.{k}", v) for k, v in values.items() if k in ("synbench_epsilon", "syn_epsilons")})
    if "synbench_epsilon" in effective and "syn_epsilons" in effective:
        (eps_key, eps), (syn_key, syn_eps) = effective["synbench_epsilon"], effective["syn_epsilons"]
        if (EPSILON.test(eps) and SCHEMA["syn_epsilons"].rule.test(syn_eps)
                and not any(math.isclose(float(eps), float(e)) for e in syn_eps)):
            problems.append(f"{eps_key} = {eps!r}: expected one of {syn_key} {syn_eps} "
                            "(notebook 05 reads a SynBench score that notebook 04 computed)")
    problems += _checkpoint_problems(profile)
    if check_device:
        devices = [(k, v) for k, v in [("device", profile.parameters.get("device"))] if v is not None]
        devices += [(f"{nb}.device", v["device"]) for nb, v in profile.notebooks.items() if "device" in v]
        for key, value in devices:
            if _is_device_name(value):
                try:
                    resolve_device(value)
                except ValueError as err:
                    problems.append(f"{key} = {value!r}: {err}")
    if check_scheduler:
        schedulers = [("scheduler", profile.parameters.get("scheduler"))]
        schedulers += [(f"{nb}.scheduler", v.get("scheduler")) for nb, v in profile.notebooks.items()]
        for key, value in schedulers:
            problem = scheduler_problem(value) if _is_scheduler(value) else None
            if problem is not None:
                problems.append(f"{key} = {value!r}: {problem}")
    if problems:
        raise ValueError(f"profile {profile.name!r} has {len(problems)} bad parameter value(s):\n  "
                         + "\n  ".join(problems))
    return profile


def _name_max(folder: Path) -> int:
    """The longest file name the file system holding ``folder`` (or its nearest ancestor) allows."""
    for ancestor in (folder, *folder.parents):
        try:
            return int(os.pathconf(ancestor, "PC_NAME_MAX"))
        except (OSError, ValueError, AttributeError):
            continue
    return 255


def path_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot name a file or folder here (None when it can): it is empty, or one of
    its names is longer than the file system allows. Nothing is read but the limit."""
    if not str(path).strip():
        return "the path is empty (give a name, e.g. . for this folder)"
    limit = _name_max(Path(path).absolute())
    long = next((part for part in Path(path).parts if len(os.fsencode(part)) > limit), None)
    if long is not None:
        return f"the name {long[:40]}... is {len(os.fsencode(long))} bytes long; this file system allows {limit}"
    return None


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be created or written in (None when it can); nothing is created.

    An empty path or too long a name (:func:`path_problem`), a file in the way and a missing
    permission are problems."""
    problem = path_problem(folder)
    if problem is not None:
        return problem
    if folder.exists():
        if not folder.is_dir():
            return f"{folder} is a file, not a folder"
        return None if os.access(folder, os.W_OK | os.X_OK) else f"no permission to write in {folder}"
    ancestor = folder.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"no permission to create folders in {ancestor}"
    return None


def check_output_folder(path: str | os.PathLike, what: str = "") -> Path:
    """``path`` as a Path after checking that it is a folder, or can be made one, to write in.

    Nothing is created. ``what`` names the path in the message (e.g. ``"--zoo-dir"``).

    Raises:
        ValueError: ``path`` is an existing file, one of its ancestors is a file, or this
            user may not write there; the message names ``path`` and the reason.
    """
    if not str(path).strip():
        raise ValueError(f"cannot write {what + ' ' if what else ''}to an empty path; give a folder "
                         "(e.g. . for this one)")
    folder = Path(path)
    problem = folder_problem(folder.absolute())
    if problem is not None:
        raise ValueError(f"cannot write {what + ' ' if what else ''}{folder}: {problem}")
    return folder
