"""The study's notebooks: discovery, execution order, parameters, cache keys."""

from __future__ import annotations

import graphlib
import hashlib
import heapq
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from rmqm.study.profiles import RESERVED_PARAMETERS, Profile

__all__ = ['NotebookSpec', 'read_notebook', 'discover_notebooks', 'execution_order', 'upstream_of',
           'notebook_parameters',
           'check_profile', 'library_fingerprint', 'library_files', 'changed_files', 'cache_key']


@dataclass(frozen=True)
class NotebookSpec:
    """A study notebook: its path, the notebooks it depends on, its declared parameters."""

    name: str
    path: Path
    depends_on: tuple[str, ...]
    declared: tuple[str, ...]


def read_notebook(path: str | os.PathLike, *, validate: bool = False) -> nbformat.NotebookNode:
    """The notebook at ``path`` (nbformat 4), read with :mod:`nbformat`.

    Args:
        validate: also check it against the notebook schema (``nbformat.validate``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable (or, with ``validate``, a valid) notebook; the
            message names it.
    """
    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
        if validate:
            nbformat.validate(nb)
    except FileNotFoundError:
        raise
    except Exception as exc:  # NotJSONError, ValidationError, KeyError, UnicodeDecodeError, ...
        raise ValueError(f"{path} is not a valid notebook ({type(exc).__name__}: {str(exc)[:300]})") from None
    return nb


def _declared_parameters(nb: nbformat.NotebookNode, path: Path) -> tuple[str, ...]:
    cells = [c for c in nb.get("cells", []) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        return ()
    import papermill as pm

    return tuple(pm.inspect_notebook(str(path)).keys())


def discover_notebooks(folder: str | os.PathLike = "notebooks") -> list[NotebookSpec]:
    """The notebooks ``folder/*.ipynb`` with their dependencies and declared parameters."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"notebook folder {folder} does not exist")
    specs = []
    for path in sorted(folder.glob("*.ipynb")):
        nb = read_notebook(path)
        deps = nb.get("metadata", {}).get("rmqm", {}).get("depends_on", [])
        if isinstance(deps, str) or not all(isinstance(d, str) for d in deps):
            raise ValueError(f"{path}: metadata rmqm.depends_on must be a list of notebook names")
        specs.append(NotebookSpec(path.stem, path, tuple(deps), _declared_parameters(nb, path)))
    if not specs:
        raise FileNotFoundError(f"no notebooks (*.ipynb) in {folder}")
    return specs


def execution_order(specs: Sequence[NotebookSpec]) -> list[NotebookSpec]:
    """Topological order of ``specs`` (ties broken by name).

    Raises:
        ValueError: a dependency names no notebook, or the dependencies form a cycle.
    """
    by_name = {s.name: s for s in specs}
    for s in specs:
        missing = [d for d in s.depends_on if d not in by_name]
        if missing:
            raise ValueError(f"notebook {s.name} depends on unknown notebook(s) {missing}")
    sorter = graphlib.TopologicalSorter({s.name: s.depends_on for s in specs})
    try:
        sorter.prepare()
    except graphlib.CycleError as err:
        raise ValueError(f"notebook dependencies form a cycle: {' -> '.join(err.args[1])}") from None
    ready = list(sorter.get_ready())
    heapq.heapify(ready)
    done: list[NotebookSpec] = []
    while ready:  # always the first ready notebook by name: the order is unique
        name = heapq.heappop(ready)
        done.append(by_name[name])
        sorter.done(name)
        for nxt in sorter.get_ready():
            heapq.heappush(ready, nxt)
    return done


def upstream_of(specs: Sequence[NotebookSpec], name: str) -> list[NotebookSpec]:
    """The notebooks ``name`` reads, directly or through others, in execution order (not ``name``).

    >>> a, b, c = (NotebookSpec(n, Path(f"{n}.ipynb"), d, ()) for n, d in [("a", ()), ("b", ("a",)), ("c", ("b",))])
    >>> [s.name for s in upstream_of([c, b, a], "c")]
    ['a', 'b']

    Raises:
        ValueError: no notebook is called ``name`` (the message lists them), or bad dependencies.
    """
    by_name = {s.name: s for s in specs}
    if name not in by_name:
        raise ValueError(f"no notebook {name!r}; the notebooks are {sorted(by_name)}")
    needed: set[str] = set()
    todo = list(by_name[name].depends_on)
    while todo:
        dep = todo.pop()
        if dep not in needed:
            needed.add(dep)
            todo.extend(by_name[dep].depends_on if dep in by_name else ())
    return [s for s in execution_order(specs) if s.name in needed]


def notebook_parameters(spec: NotebookSpec, profile: Profile) -> dict[str, Any]:
    """The parameters papermill injects into ``spec``: the shared ones it declares,
    then its own overrides (which must be declared)."""
    params = {k: v for k, v in profile.parameters.items() if k in spec.declared}
    own = profile.notebooks.get(spec.name, {})
    undeclared = sorted(set(own) - set(spec.declared))
    if undeclared:
        raise ValueError(
            f"notebook {spec.name} declares no parameter(s) {undeclared}; "
            f"its parameters cell declares {sorted(spec.declared)}"
        )
    params.update(own)
    return params


def check_profile(profile: Profile, specs: Sequence[NotebookSpec]) -> None:
    """Check that ``profile`` fits ``specs``: every per-notebook section names a notebook and
    declares each of its keys, every shared parameter is declared by some notebook (or reserved).

    Raises:
        ValueError: naming the unknown notebooks or the undeclared parameters.
    """
    names = {s.name for s in specs}
    unknown_nb = sorted(set(profile.notebooks) - names)
    if unknown_nb:
        raise ValueError(f"profile {profile.name!r} names unknown notebook(s) {unknown_nb}; have {sorted(names)}")
    declared = set().union(*(s.declared for s in specs))
    unused = sorted(set(profile.parameters) - declared - set(RESERVED_PARAMETERS))
    if unused:
        raise ValueError(
            f"parameter(s) {unused} of profile {profile.name!r} are declared by no notebook; "
            f"known parameters: {sorted(declared)}"
        )
    by_name = {s.name: s for s in specs}
    for nb, values in sorted(profile.notebooks.items()):
        unknown = sorted(set(values) - set(by_name[nb].declared) - set(RESERVED_PARAMETERS))
        if unknown:
            raise ValueError(
                f"notebook {nb} declares no parameter(s) {unknown} (profile {profile.name!r} sets "
                f"{[f'{nb}.{k}' for k in unknown]}); its parameters cell declares {sorted(by_name[nb].declared)}"
            )


def library_fingerprint(package_dir: str | os.PathLike | None = None) -> str:
    """SHA-256 of a Python package's source: every ``*.py`` file under ``package_dir``.

    Files are taken in the order of their paths relative to ``package_dir`` (POSIX form);
    each contributes its relative path, its size and its bytes, so renaming a file or
    moving code between files changes the fingerprint as well as editing it. Compiled
    files (``__pycache__``) and data files are ignored.

    Args:
        package_dir: the package's folder; default the installed ``rmqm`` package (this
            module's folder; the checkout itself for an editable install).

    Raises:
        FileNotFoundError: ``package_dir`` is not a folder or holds no ``*.py`` file.
    """
    folder = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"package folder {folder} does not exist")
    files = sorted((p.relative_to(folder).as_posix(), p) for p in folder.rglob("*.py") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no Python source (*.py) in package folder {folder}")
    digest = hashlib.sha256()
    for rel, path in files:
        data = path.read_bytes()
        digest.update(f"{rel}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def library_files(package_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """``{path relative to the package: SHA-256 of its bytes}`` of every ``*.py`` file that
    :func:`library_fingerprint` covers: which file a changed fingerprint comes from."""
    folder = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent.parent
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.py")) if p.is_file()}


def changed_files(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """The files that differ between two :func:`library_files` maps (edited, added or removed), sorted."""
    return sorted(f for f in set(before) | set(after) if before.get(f) != after.get(f))


def cache_key(
    spec: NotebookSpec,
    parameters: Mapping[str, Any],
    upstream: Mapping[str, str],
    *,
    library: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> str:
    """SHA-256 of the notebook's cells (type, source, tags), its parameters (minus the
    :data:`RESERVED_PARAMETERS`), the tokens of the notebooks it depends on (``upstream``:
    name -> token; the runner passes a token of each one's key and executed output) and,
    when given, ``library`` -- the :func:`library_fingerprint` of the code the notebook
    runs -- and ``data`` -- the identity of the data its parameters name (the runner
    passes both; without them the key ignores code and data)."""
    nb = read_notebook(spec.path)
    cells = [
        [c.get("cell_type"), "".join(c.get("source", "")), sorted(c.get("metadata", {}).get("tags", []))]
        for c in nb.get("cells", [])
    ]
    payload = {
        "cells": cells,
        "parameters": {k: v for k, v in parameters.items() if k not in RESERVED_PARAMETERS},
        "upstream": {d: upstream[d] for d in spec.depends_on},
    }
    if library is not None:
        payload["library"] = library
    if data is not None:
        payload["data"] = dict(data)
    blob = json.dumps(payload, sort_keys=True, default=repr).encode()
    return hashlib.sha256(blob).hexdigest()
