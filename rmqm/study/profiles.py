"""Study profiles: parameters shared by the notebooks, a base profile, ``--set`` overrides.

A profile is a YAML file ``profiles/<name>.yaml``::

    base: default            # optional: start from profiles/default.yaml
    description: one line shown on the reproducibility page
    parameters: {n_points: 32, ...}          # shared by every notebook that declares them
    notebooks: {03_noise_vs_pgd: {n_points: 64}}   # per-notebook values

A profile with a ``base`` states only what differs from it: :func:`load_profile` merges
the chain of bases with :func:`omegaconf.OmegaConf.merge` (mappings merge key by key,
every other value -- lists included -- is replaced whole). The values' types and ranges
are checked by :mod:`rmqm.study.schema`, not here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

__all__ = ['RESERVED_PARAMETERS', 'PROFILE_NAME', 'Profile', 'load_profile', 'merge_layers', 'parse_overrides',
           'apply_overrides']


#: Parameters the runner fills in itself (when a notebook declares them); they are not
#: part of the cache key because they name places on this machine, not the experiment.
RESERVED_PARAMETERS: tuple[str, ...] = ("results_dir", "profile")

#: The top-level keys a profile file may have.
PROFILE_KEYS: tuple[str, ...] = ("base", "description", "parameters", "notebooks")


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")

#: A profile name is a plain label (it names the profile's folder inside the build folder):
#: letters, digits, ``_``, ``-`` and ``.``, starting with a letter, digit or ``_``, at most 100 characters.
PROFILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class Profile:
    """A named set of study parameters (after merging its bases).

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

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and PROFILE_NAME.fullmatch(self.name)):
            raise ValueError(f"profile name {self.name!r} is not a plain label: use letters, digits, '_', '-' and "
                             "'.', starting with a letter, digit or '_', at most 100 characters (it names the "
                             "profile's folder inside the build folder; rename the file)")


def _profile_path(name: str | os.PathLike, profiles_dir: Path, *, base_of: Path | None = None) -> Path:
    """The file a profile name (or a ``.yaml``/``.yml`` path) refers to; a base's relative
    path is taken from the folder of the profile that names it."""
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        path = profiles_dir / f"{name}.yaml"
    elif base_of is not None and not path.is_absolute():
        path = base_of.parent / path
    if not path.is_file():
        found = sorted(p.stem for p in profiles_dir.glob("*.yaml"))
        named = f" (the base of {base_of})" if base_of is not None else ""
        raise FileNotFoundError(f"profile {str(name)!r}{named} not found at {path}; available profiles: {found}")
    return path


def _read_profile_file(path: Path) -> dict[str, Any]:
    """One profile file as a mapping with the keys of :data:`PROFILE_KEYS` (empty ones dropped).

    Raises:
        ValueError: not valid YAML, not a mapping, unknown top-level keys, a ``base`` that
            is not a non-empty string, or ``parameters``/``notebooks`` of the wrong shape.
    """
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from err
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply to read") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a profile must be a YAML mapping; got {type(data).__name__}")
    unknown = set(data) - set(PROFILE_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {sorted(map(str, unknown))}; expected one of "
                         f"{list(PROFILE_KEYS)}")
    base = data.get("base")
    if base is not None and (not isinstance(base, str) or not base.strip()):
        raise ValueError(f"{path}: 'base' must name a profile (e.g. base: default); got {base!r}")
    params = data.get("parameters") or {}
    per_nb = data.get("notebooks") or {}
    if not isinstance(params, dict) or not isinstance(per_nb, dict) or not all(
        isinstance(v, dict) for v in per_nb.values()
    ):
        raise ValueError(f"{path}: 'parameters' must be a mapping and 'notebooks' a mapping of mappings")
    layer: dict[str, Any] = {"parameters": params, "notebooks": per_nb}
    if "description" in data:
        layer["description"] = str(data["description"] or "")
    if base is not None:
        layer["base"] = base.strip()
    return layer


def merge_layers(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge nested mappings with :func:`omegaconf.OmegaConf.merge`, later ones winning.

    Mappings merge key by key at every depth; any other value (a list too) replaces the
    earlier one whole. Strings are kept as written (``${...}`` is not interpolated).

    Raises:
        ValueError: OmegaConf cannot merge them (a mapping over a list, a malformed
            ``${`` interpolation, a key of an unsupported type); the message is OmegaConf's.
    """
    try:
        configs = [OmegaConf.create(dict(layer), flags={"allow_objects": True}) for layer in layers]
        merged = OmegaConf.to_container(OmegaConf.merge(*configs), resolve=False)
    except OmegaConfBaseException as err:
        raise ValueError(f"cannot merge profile values: {err}") from None
    except RecursionError:
        raise ValueError("cannot merge profile values: they are nested too deeply") from None
    return cast(dict, merged)


def load_profile(name: str | os.PathLike, profiles_dir: str | os.PathLike = "profiles") -> Profile:
    """Load ``profiles_dir/<name>.yaml`` (or a path to a YAML file), merged over its bases.

    ``base: <name>`` names another profile of ``profiles_dir`` (or a ``.yaml`` path, relative
    to the file naming it); bases may have bases. The profile's values win over its base's
    (see :func:`merge_layers`); its name is its own file's stem.

    Raises:
        FileNotFoundError: no such profile or base (the message lists the available ones).
        ValueError: a file is not valid YAML, not a mapping with ``parameters``/``notebooks``
            mappings, has unknown top-level keys, or the bases form a cycle.
    """
    folder = Path(profiles_dir)
    path = _profile_path(name, folder)
    chain: list[dict[str, Any]] = []
    seen: list[Path] = []
    while True:
        seen.append(path.resolve())
        layer = _read_profile_file(path)
        chain.append(layer)
        base = layer.pop("base", None)
        if base is None:
            break
        next_path = _profile_path(base, folder, base_of=path)
        if next_path.resolve() in seen:
            cycle = " -> ".join(p.stem for p in [*seen, next_path.resolve()])
            raise ValueError(f"profile bases form a cycle: {cycle}")
        path = next_path
    merged = merge_layers(*reversed(chain))
    leaf = Path(name) if Path(name).suffix in (".yaml", ".yml") else folder / f"{name}.yaml"
    return Profile(leaf.stem, dict(merged.get("parameters") or {}),
                   {str(k): dict(v) for k, v in (merged.get("notebooks") or {}).items()},
                   str(merged.get("description", "")))


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are read as YAML (``3`` -> int, ``[1,2]`` -> list).

    Raises:
        ValueError: an item without ``=`` or with an empty key, or a value that is not YAML.
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
        except RecursionError:
            raise ValueError(f"override {key!r}: value is nested too deeply to read") from None
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads "1e-3" as a string
        out[key] = value
    return out


def apply_overrides(profile: Profile, overrides: Mapping[str, Any]) -> Profile:
    """Return a copy of ``profile`` with overrides applied; each replaces a value whole.

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
