"""The pre-registered confirmatory families of the study (``book/endpoints.yaml``), loaded and
validated into frozen objects, with the file's SHA-256 and the commit that last changed it.

Each family is one claim of a paper, tested as a set of rows (one per transfer task, per
alteration or per attack radius); Holm's correction runs within a family only. Every row the
file does not declare is exploratory: an estimate and an interval, no verdict.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ['KINDS', 'Family', 'Endpoints', 'default_endpoints_path', 'load_endpoints', 'last_commit']

#: What a family tests: a score-accuracy correlation per task, the SSL-vs-supervised step
#: contrasts per alteration, or SynBench's claim 2 per attack radius.
KINDS: tuple[str, ...] = ("correlation", "steps", "claim2")
_REQUIRED: dict[str, tuple[str, ...]] = {"correlation": ("score", "probe", "tasks"), "steps": ("per",),
                                         "claim2": ("radii",)}
_COMMON = ("id", "label", "claim", "chapter", "kind", "expected_sign")


@dataclass(frozen=True)
class Family:
    """One confirmatory family: ``id`` (unique), a short ``label`` for tables, the ``claim`` in
    words, the ``chapter`` that tests it, its ``kind`` (:data:`KINDS`), the ``expected_sign``
    and the kind's settings (``score``, ``probe``, ``tasks``, ``radii``, ...) as sorted pairs."""
    id: str
    label: str
    claim: str
    chapter: str
    kind: str
    expected_sign: str
    settings: tuple[tuple[str, Any], ...]

    def get(self, key: str, default: Any = None) -> Any:
        """A setting's value (lists come back as tuples)."""
        return dict(self.settings).get(key, default)


@dataclass(frozen=True)
class Endpoints:
    """The file's ``families`` (in file order), the family-wise ``alpha``, its ``version``, the
    ``path`` it was read from and the ``sha256`` of its bytes."""
    version: int
    alpha: float
    families: tuple[Family, ...]
    path: str
    sha256: str

    def family(self, family_id: str) -> Family:
        """The family of that id.

        Raises:
            KeyError: no such family (the message lists them)."""
        for f in self.families:
            if f.id == family_id:
                return f
        raise KeyError(f"no confirmatory family {family_id!r}; declared: {[f.id for f in self.families]}")


def default_endpoints_path() -> Path:
    """``book/endpoints.yaml`` of the repository this package was imported from."""
    return Path(__file__).resolve().parents[2] / "book" / "endpoints.yaml"


def _frozen(value: Any) -> Any:
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


def _family(raw: Any, index: int) -> Family:
    if not isinstance(raw, Mapping):
        raise ValueError(f"family {index} must be a mapping; got {type(raw).__name__}")
    missing = [k for k in _COMMON if k not in raw]
    if missing:
        raise ValueError(f"family {raw.get('id', index)!r} lacks {missing}")
    kind = raw["kind"]
    if kind not in KINDS:
        raise ValueError(f"family {raw['id']!r} has unknown kind {kind!r}; known: {list(KINDS)}")
    if raw["expected_sign"] not in ("positive", "negative"):
        raise ValueError(f"family {raw['id']!r}: expected_sign must be 'positive' or 'negative'")
    lacking = [k for k in _REQUIRED[kind] if k not in raw]
    if lacking:
        raise ValueError(f"family {raw['id']!r} of kind {kind!r} lacks {lacking}")
    if kind == "claim2":
        radii = raw["radii"]
        if not (isinstance(radii, list) and radii and all(isinstance(r, (int, float)) and 0 < r < 1 for r in radii)):
            raise ValueError(f"family {raw['id']!r}: radii must be a non-empty list of numbers in (0, 1); "
                             f"got {radii!r}")
    settings = tuple(sorted((k, _frozen(v)) for k, v in raw.items() if k not in _COMMON))
    return Family(str(raw["id"]), str(raw["label"]), str(raw["claim"]), str(raw["chapter"]), str(kind),
                  str(raw["expected_sign"]), settings)


def load_endpoints(path: str | os.PathLike | None = None) -> Endpoints:
    """Read and check the confirmatory families (default :func:`default_endpoints_path`).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a mapping with ``version``, ``alpha`` in (0, 1) and a non-empty list
            ``families``; a family without its keys, of an unknown kind, or a repeated id.
    """
    path = Path(path) if path is not None else default_endpoints_path()
    if not path.is_file():
        raise FileNotFoundError(f"no endpoints file {path}; the confirmatory families are declared in "
                                "book/endpoints.yaml")
    data = path.read_bytes()
    raw = yaml.safe_load(data)
    if not isinstance(raw, Mapping) or not {"version", "alpha", "families"} <= set(raw):
        raise ValueError(f"{path} must be a mapping with version, alpha and families")
    alpha = raw["alpha"]
    if not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"{path}: alpha must lie in (0, 1); got {alpha!r}")
    if not isinstance(raw["families"], list) or not raw["families"]:
        raise ValueError(f"{path}: families must be a non-empty list")
    families = tuple(_family(f, i) for i, f in enumerate(raw["families"]))
    ids = [f.id for f in families]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: repeated family id among {ids}")
    return Endpoints(int(raw["version"]), float(alpha), families, str(path), hashlib.sha256(data).hexdigest())


def last_commit(path: str | os.PathLike) -> str:
    """``"<short hash> (<date>)"`` of the last commit that changed ``path`` (``git log -1``), or
    a sentence saying why there is none (no git, not a repository, never committed)."""
    path = Path(path).resolve()
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%h (%cs)", "--", path.name], cwd=path.parent,
                             capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        return f"unknown (git unavailable: {type(err).__name__})"
    if out.returncode != 0:
        return "unknown (not in a git repository)"
    return out.stdout.strip() or "uncommitted (no commit has changed it yet)"
