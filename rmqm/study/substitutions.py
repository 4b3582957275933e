"""The numbers the book's text quotes, taken from the run's own parameters.

The methods page and the other Markdown pages never type a grid, a sample size or a seed count:
they write ``{{ syn_n_scales }}`` and the like (MyST substitutions), and :func:`stage_substitutions`
fills them in the staged ``_config.yml`` from the parameters this build ran with, so the text and
the run cannot diverge. A page that names a key this module does not make fails the build
(jupyter-book runs with ``-W``).
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from rmqm.study.chapters.synbench import mean_scales

__all__ = ["book_substitutions", "build_substitutions", "source_commit", "stage_substitutions"]


def _number(value: Any) -> str:
    """A number as the text quotes it: integers with thousands separators, floats short."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _pixels(step: float) -> str:
    """A PGD step in pixel units, as ``k/255`` when it is one."""
    frac = Fraction(float(step)).limit_denominator(1000)
    if frac.denominator == 255 and math.isclose(float(frac), float(step), rel_tol=1e-9):
        return f"{frac.numerator}/255"
    return f"{step:g}"


def _listing(values: Sequence[Any]) -> str:
    items = [_number(v) for v in values]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def book_substitutions(parameters: Mapping[str, Any]) -> dict[str, str]:
    """MyST substitutions (key -> text) for the study parameters of one build.

    Args:
        parameters: the profile's shared parameters as the run used them (the manifest's
            ``shared_parameters``); a missing parameter gives the text ``"(not set)"``.

    Returns:
        e.g. ``n_seeds`` ("3"), ``syn_n_scales`` ("17"), ``syn_s_range`` ("0.3 to 4.9 in steps of 0.3"),
        ``syn_n_samples`` ("1,024"), ``pgd_step`` ("2/255"), ``checkpoints`` ("1, 2, 4 and 8").
    """
    p = dict(parameters)

    def get(name: str) -> Any:
        return p.get(name, "(not set)")

    subs: dict[str, str] = {
        "profile_data": _number(get("data")),
        "arch": _number(get("arch")),
        "n_methods": _number(len(p["methods"])) if "methods" in p else "(not set)",
        "dims": _listing(p["dims"]) if "dims" in p else "(not set)",
        "n_seeds": _number(len(p["zoo_seeds"])) if "zoo_seeds" in p else "(not set)",
        "epochs": _number(get("epochs")),
        "checkpoints": _listing(p["checkpoints"]) if p.get("checkpoints") else _number(get("epochs")),
        "n_train": "all" if p.get("n_train", 0) is None else _number(get("n_train")),
        "train_batch_size": _number(get("train_batch_size")),
        "accumulate": _number(get("accumulate")),
        "n_eval": _number(get("n_eval")),
        "n_transfer": "all" if p.get("n_transfer", 0) is None else _number(get("n_transfer")),
        "n_points": _number(get("n_points")),
        "n_noise_levels": _number(get("n_noise_levels")),
        "noise_sigma_max": _number(get("noise_sigma_max")),
        "n_pgd_levels": _number(get("n_pgd_levels")),
        "pgd_step": _pixels(p["pgd_step_size"]) if "pgd_step_size" in p else "(not set)",
        "pgd_epsilon": _number(get("pgd_epsilon")),
        "pgd_modes": _listing(p["pgd_modes"]) if "pgd_modes" in p else "(not set)",
        "attack_batch_size": "the measuring batch" if p.get("attack_batch_size", 0) is None
        else _number(get("attack_batch_size")),
        "syn_n_samples": _number(get("syn_n_samples")),
        "syn_epsilons": _listing(p["syn_epsilons"]) if "syn_epsilons" in p else "(not set)",
        "syn_n_bootstrap": _number(get("syn_n_bootstrap")),
        "syn_n_directions": _number(get("syn_n_directions")),
        "syn_direction_n_train": _number(get("syn_direction_n_train")),
        "syn_direction_n_test": _number(get("syn_direction_n_test")),
        "probe_n": _number(get("probe_n")),
        "attack_n": _number(get("attack_n")),
        "attack_radii": _listing(p["attack_radii"]) if "attack_radii" in p else "(not set)",
        "attack_steps": _number(get("attack_steps")),
        "added_encoders": _encoders(p["encoders"]) if "encoders" in p else "(not set)",
        "synbench_threshold": _number(get("synbench_threshold")),
        "synbench_epsilon": _number(get("synbench_epsilon")),
        "confidence_pct": _number(round(100 * float(p["confidence"]), 6)) if "confidence" in p else "(not set)",
        "n_resamples": _number(get("n_resamples")),
    }
    if "syn_s_step" in p:
        scales = mean_scales(float(p["syn_s_step"]))  # exactly the grid notebook 04 runs
        subs["syn_n_scales"] = _number(len(scales))
        subs["syn_s_range"] = f"{scales[0]:g} to {scales[-1]:g} in steps of {float(p['syn_s_step']):g}"
    else:
        subs["syn_n_scales"] = subs["syn_s_range"] = "(not set)"
    return subs


def source_commit(root: str | os.PathLike) -> str:
    """The git commit the checkout ``root`` is at (40 hex digits), with ``" plus uncommitted
    changes"`` when its tracked files differ from it; ``"unknown (not a git checkout)"`` where
    git or the repository is missing."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + (" plus uncommitted changes" if dirty else "")


def build_substitutions(root: str | os.PathLike, manifest: Mapping[str, Any]) -> dict[str, str]:
    """What the book was built from: ``build_commit`` (:func:`source_commit` of ``root``),
    ``build_profile`` (the manifest's profile) and ``rmqm_version`` (the installed package's)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        rmqm_version = version("rmqm")
    except PackageNotFoundError:
        rmqm_version = "unknown (rmqm is not installed)"
    return {"build_commit": source_commit(root), "build_profile": str(manifest.get("profile", "unknown")),
            "rmqm_version": rmqm_version}


def _encoders(specs: Any) -> str:
    """The ``encoders`` parameter in words: ``"lite0-imagenet-48px (efficientnet-lite0, ImageNet
    weights, 48 px)"`` and the like; ``"none"`` for none."""
    if not specs:
        return "none"
    words = []
    for spec in specs:
        if isinstance(spec, str):
            words.append(spec)
            continue
        name = str(spec.get("name", spec.get("builtin", "encoder")))
        if "builtin" in spec:
            weights = "ImageNet weights" if spec.get("pretrained", True) else "random init"
            size = f"{spec['input_size']} px" if "input_size" in spec else "native size"
            words.append(f"{name} ({spec['builtin']}, {weights}, {size})")
        else:
            words.append(name)
    return _listing(words)


def stage_substitutions(config: str | os.PathLike, parameters: Mapping[str, Any],
                        extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Write :func:`book_substitutions` of ``parameters``, and the ``extra`` ones (the build's
    results and identity: :func:`rmqm.study.abstract.abstract_substitutions`,
    :func:`build_substitutions`), into the staged book config ``config`` (``parse:
    myst_substitutions``), keeping every other setting; returns them.

    Raises:
        FileNotFoundError: ``config`` does not exist.
    """
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"book config {path} is missing")
    data = yaml.safe_load(path.read_text()) or {}
    subs = {**book_substitutions(parameters), **(extra or {})}
    parse = data.setdefault("parse", {})
    parse["myst_substitutions"] = {**(parse.get("myst_substitutions") or {}), **subs}
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return subs
