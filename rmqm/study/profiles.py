"""Study profiles: parameters shared by the notebooks, overrides, validation."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

__all__ = ['RESERVED_PARAMETERS', 'Profile', 'load_profile', 'parse_overrides', 'apply_overrides']


#: Parameters the runner fills in itself (when a notebook declares them); they are not
#: part of the cache key because they name places on this machine, not the experiment.
RESERVED_PARAMETERS: tuple[str, ...] = ("results_dir", "profile")


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass(frozen=True)
class Profile:
    """A named set of study parameters.

    Attributes:
        name: the profile's name (``tiny``, ``default``, ``paper`` or a file stem).
        parameters: values shared by every notebook that declares them.
        notebooks: per-notebook overrides, ``{notebook stem: {parameter: value}}``.
        description: one line shown on the reproducibility page.
    """

    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    notebooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""


def load_profile(name: str | os.PathLike, profiles_dir: str | os.PathLike = "profiles") -> Profile:
    """Load ``profiles_dir/<name>.yaml`` (or a path to a YAML file).

    Raises:
        FileNotFoundError: no such profile (the message lists the available ones).
        ValueError: the file is not valid YAML, or not a mapping with ``parameters``/``notebooks``
            mappings.
    """
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        path = Path(profiles_dir) / f"{name}.yaml"
    if not path.is_file():
        found = sorted(p.stem for p in Path(profiles_dir).glob("*.yaml"))
        raise FileNotFoundError(f"profile {str(name)!r} not found at {path}; available profiles: {found}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a profile must be a YAML mapping; got {type(data).__name__}")
    unknown = set(data) - {"description", "parameters", "notebooks"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {sorted(unknown)}; "
                         "expected 'description', 'parameters', 'notebooks'")
    params = data.get("parameters") or {}
    per_nb = data.get("notebooks") or {}
    if not isinstance(params, dict) or not isinstance(per_nb, dict) or not all(
        isinstance(v, dict) for v in per_nb.values()
    ):
        raise ValueError(f"{path}: 'parameters' must be a mapping and 'notebooks' a mapping of mappings")
    return Profile(path.stem, dict(params), {k: dict(v) for k, v in per_nb.items()},
                   str(data.get("description", "")))


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are read as YAML (``3`` -> int, ``[1,2]`` -> list).

    Raises:
        ValueError: an item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like key=value (e.g. --set n_points=200)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ValueError(f"override {item!r}: value is not valid YAML ({exc})") from None
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads "1e-3" as a string
        out[key] = value
    return out


def apply_overrides(profile: Profile, overrides: Mapping[str, Any]) -> Profile:
    """Return a copy of ``profile`` with overrides applied.

    ``key`` sets a shared parameter; ``<notebook>.key`` (notebook stem, e.g.
    ``03_noise_vs_pgd.n_levels``) sets it for that notebook only.
    """
    params = dict(profile.parameters)
    per_nb = {k: dict(v) for k, v in profile.notebooks.items()}
    for key, value in overrides.items():
        nb, dot, name = key.rpartition(".")
        if dot:
            per_nb.setdefault(nb, {})[name] = value
        else:
            params[key] = value
    return replace(profile, parameters=params, notebooks=per_nb)
