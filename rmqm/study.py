"""Run the study: execute the notebooks of a profile with papermill, then build the book.

One command reruns the whole published study::

    python -m rmqm.study run --profile tiny|default|paper [--set key=value ...]

It

1. loads ``profiles/<name>.yaml`` (shared ``parameters`` plus optional per-notebook
   overrides under ``notebooks``) and applies ``--set`` overrides (values are YAML, so
   ``--set dims=[16,32]`` gives a list; ``--set 03_noise_vs_pgd.n_levels=5`` targets
   one notebook);
2. executes ``notebooks/*.ipynb`` in dependency order (a notebook lists the notebooks
   it reads from in its metadata, ``{"rmqm": {"depends_on": ["01_model_zoo"]}}``) into
   ``build/<profile>/notebooks/``, injecting only the parameters each notebook declares
   in its cell tagged ``parameters``;
3. skips a notebook whose executed copy exists and whose cache key -- a hash of its
   parameters, its source cells, the keys of the notebooks it depends on and the
   source of the ``rmqm`` package (:func:`library_fingerprint`, so any change to
   ``rmqm/*.py`` reruns everything) -- is the one recorded in
   ``build/<profile>/study.json``; the manifest is rewritten after every
   finished notebook, so an interrupted or failed run loses nothing that finished;
4. on a failing cell stops and reports the notebook, the cell and the error
   (:class:`NotebookFailed`);
5. stages the book (``_config.yml``, ``_toc.yml``, ``book/``, a local MathJax and a
   generated page of run information) next to the executed notebooks and builds it
   with ``jupyter-book build -W -n --keep-going``, executing nothing itself. The HTML
   lands in ``build/<profile>/_build/html``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import yaml

__all__ = [
    "Profile",
    "NotebookSpec",
    "NotebookRun",
    "NotebookFailed",
    "BookBuildFailed",
    "RESERVED_PARAMETERS",
    "load_profile",
    "parse_overrides",
    "apply_overrides",
    "discover_notebooks",
    "execution_order",
    "notebook_parameters",
    "library_fingerprint",
    "cache_key",
    "run_notebooks",
    "stage_book",
    "build_book",
    "run_study",
    "main",
]

#: Parameters the runner fills in itself (when a notebook declares them); they are not
#: part of the cache key because they name places on this machine, not the experiment.
RESERVED_PARAMETERS: tuple[str, ...] = ("results_dir", "profile")

#: Tags the runner puts on papermill's parameter cells so that the book hides them:
#: the notebook's defaults are removed (they are overridden), the injected values are
#: folded behind a toggle.
_HIDE_TAGS = {"parameters": "remove-cell", "injected-parameters": "hide-cell"}

MANIFEST = "study.json"
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# --------------------------------------------------------------------------- profiles
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


# --------------------------------------------------------------------------- notebooks
@dataclass(frozen=True)
class NotebookSpec:
    """A study notebook: its path, the notebooks it depends on, its declared parameters."""

    name: str
    path: Path
    depends_on: tuple[str, ...]
    declared: tuple[str, ...]


def _read_nb(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not a valid notebook (JSON error: {exc})") from None


def _declared_parameters(nb: dict, path: Path) -> tuple[str, ...]:
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
        nb = _read_nb(path)
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
    done: list[NotebookSpec] = []
    placed: set[str] = set()
    pending = sorted(specs, key=lambda s: s.name)
    while pending:
        ready = [s for s in pending if set(s.depends_on) <= placed]
        if not ready:
            raise ValueError(f"notebook dependencies form a cycle among {[s.name for s in pending]}")
        first = ready[0]
        done.append(first)
        placed.add(first.name)
        pending.remove(first)
    return done


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


def _check_profile(profile: Profile, specs: Sequence[NotebookSpec]) -> None:
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
    folder = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent
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


def cache_key(
    spec: NotebookSpec,
    parameters: Mapping[str, Any],
    upstream: Mapping[str, str],
    *,
    library: str | None = None,
) -> str:
    """SHA-256 of the notebook's cells (type, source, tags), its parameters (minus the
    :data:`RESERVED_PARAMETERS`), the keys of the notebooks it depends on and, when
    given, ``library`` -- the :func:`library_fingerprint` of the code the notebook runs
    (:func:`run_notebooks` always passes it; without it the key ignores the code)."""
    nb = _read_nb(spec.path)
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
    blob = json.dumps(payload, sort_keys=True, default=repr).encode()
    return hashlib.sha256(blob).hexdigest()


# --------------------------------------------------------------------------- execution
class NotebookFailed(RuntimeError):
    """A notebook cell raised; the message names the notebook, the cell and the error."""

    def __init__(self, notebook: str, cell_index: int | None, execution_count: int | None,
                 cell_source: str, ename: str, evalue: str, output: Path) -> None:
        self.notebook = notebook
        self.cell_index = cell_index
        self.execution_count = execution_count
        self.cell_source = cell_source
        self.ename = ename
        self.evalue = evalue
        self.output = output
        lines = cell_source.strip().splitlines()
        shown = "\n".join("    " + ln for ln in lines[:8]) + ("\n    ..." if len(lines) > 8 else "")
        super().__init__(
            f"notebook {notebook} failed in cell {cell_index} (In [{execution_count}]): "
            f"{ename}: {evalue}\n  cell source:\n{shown}\n  partial output kept in {output}"
        )


class BookBuildFailed(RuntimeError):
    """``jupyter-book build`` exited non-zero (warnings are errors); the message quotes them."""


@dataclass(frozen=True)
class NotebookRun:
    """What happened to one notebook: ``status`` is ``"executed"`` or ``"cached"``;
    ``wall_s`` is the wall time of the execution that produced the output."""

    name: str
    status: str
    wall_s: float
    key: str
    output: Path
    parameters: dict[str, Any]


def _load_manifest(path: Path) -> dict:
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("notebooks"), dict):
                return data
        except json.JSONDecodeError:
            pass
    return {"notebooks": {}}


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=repr))
    os.replace(tmp, path)


def _hide_parameter_cells(output: Path) -> None:
    nb = _read_nb(output)
    for cell in nb.get("cells", []):
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        for tag, hide in _HIDE_TAGS.items():
            if tag in tags and hide not in tags:
                tags.append(hide)
    output.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _source_cell_index(output: Path, fallback: int | None) -> int | None:
    """Index of the failing cell in the *source* notebook: papermill inserts its
    injected-parameters cell and, on failure, error-marker cells into the output."""
    if not output.is_file():
        return fallback
    from papermill.execute import ERROR_MARKER_TAG

    added = {"injected-parameters", ERROR_MARKER_TAG}
    index = 0
    for cell in _read_nb(output).get("cells", []):
        if added & set(cell.get("metadata", {}).get("tags", [])):
            continue
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return index
        index += 1
    return fallback


def hardware_summary() -> str:
    """One line: CPU model, core count, GPU (when torch sees one), OS."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except Exception:  # torch missing or broken CUDA: still describe the CPU
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores, {gpu}, {platform.system()} {platform.release()}"


def run_notebooks(
    profile: Profile,
    notebooks_dir: str | os.PathLike = "notebooks",
    out_dir: str | os.PathLike = "build/default",
    *,
    force: bool = False,
    progress: bool = True,
    kernel_name: str | None = None,
    log: Callable[[str], None] = print,
) -> list[NotebookRun]:
    """Execute the notebooks of ``notebooks_dir`` for ``profile`` into ``out_dir/notebooks``.

    A notebook whose output exists with the cache key recorded in ``out_dir/study.json``
    is skipped (unless ``force``); the key includes the :func:`library_fingerprint` of
    the installed ``rmqm`` (hashed once per call and recorded in the manifest as
    ``library_fingerprint``), so a change to the library reruns every notebook. The
    manifest is updated after each finished notebook.

    Returns:
        One :class:`NotebookRun` per notebook, in execution order.

    Raises:
        NotebookFailed: a cell raised (finished notebooks stay recorded).
        ValueError: bad profile (unknown notebook or parameter) or dependencies.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    nb_out = out_dir / "notebooks"
    results_dir = (out_dir / "results").resolve()
    nb_out.mkdir(parents=True, exist_ok=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    specs = execution_order(discover_notebooks(notebooks_dir))
    _check_profile(profile, specs)

    manifest_path = out_dir / MANIFEST
    manifest = _load_manifest(manifest_path)
    library = library_fingerprint()
    manifest.update(profile=profile.name, description=profile.description,
                    shared_parameters=profile.parameters, library_fingerprint=library)
    keys: dict[str, str] = {}
    runs: list[NotebookRun] = []
    bar = tqdm(specs, desc=f"study [{profile.name}]", unit="notebook", disable=not progress)
    for spec in bar:
        params = notebook_parameters(spec, profile)
        reserved = {"results_dir": str(results_dir), "profile": profile.name}
        params.update({k: v for k, v in reserved.items() if k in spec.declared})
        key = keys[spec.name] = cache_key(spec, params, keys, library=library)
        output = nb_out / spec.path.name
        entry = manifest["notebooks"].get(spec.name, {})
        if not force and entry.get("key") == key and entry.get("status") == "ok" and output.is_file():
            runs.append(NotebookRun(spec.name, "cached", float(entry.get("wall_s", 0.0)), key, output, params))
            log(f"[{profile.name}] {spec.name}: cached (key {key[:10]}, ran in {entry.get('wall_s', 0):.1f} s)")
            continue
        bar.set_postfix_str(spec.name)
        log(f"[{profile.name}] {spec.name}: executing")
        manifest["notebooks"][spec.name] = {"key": key, "status": "running"}
        _write_json_atomic(manifest_path, manifest)
        start = time.perf_counter()
        try:
            pm.execute_notebook(
                str(spec.path), str(output), parameters=params, kernel_name=kernel_name,
                progress_bar=progress, cwd=str(spec.path.parent.resolve()), log_output=False,
            )
        except PapermillExecutionError as exc:
            wall = time.perf_counter() - start
            manifest["notebooks"][spec.name] = {"key": key, "status": "failed", "wall_s": wall}
            _write_json_atomic(manifest_path, manifest)
            raise NotebookFailed(
                spec.name, _source_cell_index(output, exc.cell_index), exc.exec_count,
                exc.source or "", exc.ename, _ANSI.sub("", str(exc.evalue)), output,
            ) from None
        wall = time.perf_counter() - start
        _hide_parameter_cells(output)
        manifest["notebooks"][spec.name] = {
            "key": key, "status": "ok", "wall_s": round(wall, 2), "parameters": params, "library": library,
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "hardware": hardware_summary(),
        }
        _write_json_atomic(manifest_path, manifest)
        runs.append(NotebookRun(spec.name, "executed", wall, key, output, params))
        log(f"[{profile.name}] {spec.name}: done in {wall:.1f} s")
    return runs


# --------------------------------------------------------------------------- book
_VERSION_PACKAGES = (
    "rmqm", "torch", "torchvision", "numpy", "scipy", "pandas", "scikit-learn", "seaborn",
    "matplotlib", "papermill", "jupyter-book", "sphinx", "myst-nb", "django-static-mathjax",
)


def _versions() -> list[tuple[str, str]]:
    from importlib.metadata import PackageNotFoundError, version

    rows = [("python", platform.python_version())]
    for name in _VERSION_PACKAGES:
        try:
            rows.append((name, version(name)))
        except PackageNotFoundError:
            rows.append((name, "not installed"))
    return rows


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def esc(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def run_info_markdown(manifest: Mapping[str, Any]) -> str:
    """The generated part of the reproducibility page: profile, parameters, wall times,
    package versions and hardware (read from a ``study.json`` manifest)."""
    nbs = manifest.get("notebooks", {})
    total = sum(float(e.get("wall_s", 0.0)) for e in nbs.values())
    shared = manifest.get("shared_parameters", {})
    hosts = sorted({e.get("hardware", "") for e in nbs.values() if e.get("hardware")})
    parts = [
        f"This build used the **{manifest.get('profile', '?')}** profile"
        + (f" ({manifest['description']})" if manifest.get("description") else "") + ".",
        "",
        "### Wall time per notebook",
        "",
        _md_table(
            ["notebook", "wall time (s)", "finished (UTC)", "cache key"],
            [[f"`{name}`", f"{float(e.get('wall_s', 0.0)):.1f}", e.get("finished", ""),
              f"`{str(e.get('key', ''))[:12]}`"] for name, e in nbs.items()]
            + [["**total**", f"**{total:.1f}**", "", ""]],
        ),
        "",
        "### Hardware",
        "",
        *[f"- {h}" for h in (hosts or [hardware_summary()])],
        "",
        *([f"Source fingerprint of `rmqm` (SHA-256 of `rmqm/*.py`, part of every cache key): "
           f"`{manifest['library_fingerprint'][:12]}`", ""] if manifest.get("library_fingerprint") else []),
        "### Profile parameters",
        "",
        _md_table(["parameter", "value"], [[f"`{k}`", f"`{json.dumps(v, default=repr)}`"]
                                           for k, v in sorted(shared.items())]),
        "",
        "### Package versions (at book build time)",
        "",
        _md_table(["package", "version"], _versions()),
        "",
    ]
    return "\n".join(parts)


def _mathjax_source() -> Path:
    """The ``es5`` folder of MathJax 3 shipped by the PyPI package django-static-mathjax."""
    try:
        import mathjax  # django-static-mathjax's import name
    except ImportError:
        raise FileNotFoundError(
            "local MathJax not found: install the book extras (pip install -e '.[book]'), "
            "which bring the PyPI package django-static-mathjax"
        ) from None
    src = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (src / "tex-mml-chtml.js").is_file():
        raise FileNotFoundError(f"django-static-mathjax is installed but {src}/tex-mml-chtml.js is missing")
    return src


def stage_book(root: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Copy the book sources of ``root`` next to the executed notebooks in ``out_dir``.

    ``out_dir`` becomes the book's root: ``_config.yml``, ``_toc.yml``, ``book/`` (fresh
    copies), ``notebooks/`` (executed), ``_mathjax/mathjax`` (the local MathJax that
    ``_config.yml`` names through Sphinx's ``mathjax_path``) and
    ``book/_generated/run_info.md`` (from the manifest).
    """
    root, out_dir = Path(root), Path(out_dir)
    for name in ("_config.yml", "_toc.yml"):
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name} is missing")
        shutil.copy2(root / name, out_dir / name)
    if (out_dir / "book").exists():
        shutil.rmtree(out_dir / "book")
    shutil.copytree(root / "book", out_dir / "book")
    mj = out_dir / "_mathjax" / "mathjax"
    src = _mathjax_source()
    if not (mj / "tex-mml-chtml.js").is_file():
        shutil.copytree(src, mj, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*svg*", "node-main.js", "*full*"))
    gen = out_dir / "book" / "_generated"
    gen.mkdir(parents=True, exist_ok=True)
    (gen / "run_info.md").write_text(run_info_markdown(_load_manifest(out_dir / MANIFEST)))
    return out_dir


def _jupyter_book_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if not found:
        raise FileNotFoundError("jupyter-book not found: install the book extras (pip install -e '.[book]')")
    return [found]


def build_book(book_root: str | os.PathLike, *, log: Callable[[str], None] = print) -> Path:
    """Run ``jupyter-book build <book_root> -W -n --keep-going``; return the HTML folder.

    Raises:
        BookBuildFailed: the build exited non-zero; the message quotes its warnings.
    """
    book_root = Path(book_root)
    cmd = _jupyter_book_cmd() + ["build", str(book_root), "-W", "-n", "--keep-going"]
    log("building the book: " + " ".join(cmd[1:]))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        text = proc.stdout + proc.stderr
        warnings = [ln for ln in text.splitlines() if "WARNING" in ln or "ERROR" in ln]
        raise BookBuildFailed(
            "jupyter-book build failed:\n" + "\n".join((warnings or text.splitlines())[-40:])
        )
    return book_root / "_build" / "html"


@dataclass(frozen=True)
class StudyResult:
    """The notebooks' runs and the book's HTML folder (None with ``build=False``)."""

    runs: list[NotebookRun]
    html: Path | None


def run_study(
    profile: str | Profile,
    overrides: Mapping[str, Any] | None = None,
    *,
    root: str | os.PathLike = ".",
    build_dir: str | os.PathLike | None = None,
    build: bool = True,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> StudyResult:
    """Execute a profile's notebooks and build the book (see the module docstring).

    Args:
        profile: a profile name (``profiles/<name>.yaml`` under ``root``) or a :class:`Profile`.
        overrides: ``{key: value}`` as from :func:`parse_overrides`.
        root: the repository root (holds ``notebooks/``, ``profiles/``, ``book/``, ...).
        build_dir: where the profile's folder goes; default ``root/build``.
        build: also build the book.
        force: execute every notebook even if cached.
    """
    root = Path(root)
    prof = profile if isinstance(profile, Profile) else load_profile(profile, root / "profiles")
    prof = apply_overrides(prof, overrides or {})
    out_dir = Path(build_dir if build_dir is not None else root / "build") / prof.name
    runs = run_notebooks(prof, root / "notebooks", out_dir, force=force, progress=progress, log=log)
    html = None
    if build:
        html = build_book(stage_book(root, out_dir), log=log)
        log(f"book built: {html / 'index.html'}")
    return StudyResult(runs, html)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rmqm.study", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the notebooks of a profile and build the book")
    run.add_argument("--profile", default="default", help="tiny, default, paper or a YAML path")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a parameter (YAML value); NOTEBOOK.KEY=VALUE for one notebook")
    run.add_argument("--force", action="store_true", help="re-execute cached notebooks")
    run.add_argument("--no-book", action="store_true", help="execute the notebooks only")
    run.add_argument("--build-dir", default=None, help="default: ./build")
    run.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        result = run_study(
            args.profile, parse_overrides(args.overrides), build_dir=args.build_dir,
            build=not args.no_book, force=args.force, progress=not args.no_progress,
        )
    except (NotebookFailed, BookBuildFailed, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total = sum(r.wall_s for r in result.runs if r.status == "executed")
    print(f"{len(result.runs)} notebooks ({sum(r.status == 'cached' for r in result.runs)} cached), "
          f"{total:.1f} s executing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
