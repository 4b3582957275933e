"""Execute a profile's notebooks with papermill, caching each by its key.

A notebook is skipped only when its key (cells, parameters, code, data, upstream runs) is
the recorded one, its executed output is intact and every file it wrote under
``results/`` is unchanged (see :mod:`rmqm.study.manifest`); otherwise the console says why
it reruns. Warnings printed inside a notebook are echoed to the console.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import importlib.util
import json
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from rmqm._utils.hashing import content_identity, file_digest
from rmqm._utils.io import atomic_write_json, contained
from rmqm._utils.progress import child_progress
from rmqm._utils.provenance import hardware_summary
from rmqm.data.registry import available_datasets, data_record
from rmqm.experiments.explain import marking_run_start, new_recomputes, recompute_offsets
from rmqm.study.allow_code import code_allowed, factory_refusals
from rmqm.study.encoders import EncoderSpecError, parse_encoder_specs
from rmqm.study.manifest import (
    MANIFEST,
    BuildFolderBusy,
    artefact_problems,
    build_lock,
    load_manifest,
    output_problem,
    read_data_used,
    record_artefacts,
    snapshot,
    stderr_warnings,
)
from rmqm.study.notebooks import (
    cache_key,
    changed_files,
    check_profile,
    discover_notebooks,
    execution_order,
    library_files,
    library_fingerprint,
    notebook_parameters,
    read_notebook,
    upstream_of,
)
from rmqm.study.profiles import Profile

__all__ = ['MANIFEST', 'BuildFolderBusy', 'KernelDied', 'NotebookFailed', 'NotebookRun', 'data_parameters',
           'encoder_sources', 'run_notebooks']


#: Tags the runner puts on papermill's parameter cells so that the book hides them:
#: the notebook's defaults are removed (they are overridden), and so are the injected values
#: (a second toggle above every chapter's first code cell; the reproducibility page lists them).
_HIDE_TAGS = {"parameters": "remove-cell", "injected-parameters": "remove-cell"}


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


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


class KernelDied(NotebookFailed):
    """A notebook's kernel died (killed, out of memory); one line naming the notebook."""

    def __init__(self, notebook: str, reason: str, output: Path) -> None:
        self.notebook, self.cell_index, self.execution_count, self.cell_source = notebook, None, None, ""
        self.ename, self.evalue, self.output = "DeadKernelError", reason, output
        RuntimeError.__init__(self, f"notebook {notebook}: its kernel died ({reason or 'no reason given'}; killed or "
                                    f"out of memory?); partial output in {output}; rerun to retry it")


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


def _hide_parameter_cells(output: Path) -> None:
    nb = read_notebook(output)
    for cell in nb.cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        for tag, hide in _HIDE_TAGS.items():
            if tag in tags and hide not in tags:
                tags.append(hide)
    _write_notebook(nb, output)


def _write_notebook(nb: nbformat.NotebookNode, output: Path) -> None:
    """Write notebook ``nb`` to ``output`` atomically (validated by nbformat)."""
    tmp = output.with_name(f".{output.name}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, output)


def _source_cell_index(output: Path, fallback: int | None) -> int | None:
    """Index of the failing cell in the *source* notebook: papermill inserts its
    injected-parameters cell and, on failure, error-marker cells into the output."""
    if not output.is_file():
        return fallback
    from papermill.execute import ERROR_MARKER_TAG

    added = {"injected-parameters", ERROR_MARKER_TAG}
    index = 0
    for cell in read_notebook(output).cells:
        if added & set(cell.get("metadata", {}).get("tags", [])):
            continue
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return index
        index += 1
    return fallback


def data_parameters(parameters: Mapping[str, Any], log: Callable[[str], None] = print,
                    cache: dict[str, Any] | None = None) -> dict[str, Any]:
    """The :func:`rmqm.data.registry.data_record` of every parameter whose value names a data
    set (or is a list of such names): what the notebook will actually read, file hashes
    included. A fallback warning is passed to ``log``.

    Returns:
        ``{parameter: record}`` (empty when no parameter names a data set).
    """
    names = set(available_datasets())
    cache = {} if cache is None else cache
    out: dict[str, Any] = {}
    for key, value in sorted(parameters.items()):
        values = value if isinstance(value, (list, tuple)) else [value]
        if not values or not all(isinstance(v, str) and v in names for v in values):
            continue
        for v in values:
            if v not in cache:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    cache[v] = data_record(v)
                for w in caught:
                    log(f"{w.category.__name__}: {w.message}")
        out[key] = [cache[v] for v in values] if isinstance(value, (list, tuple)) else cache[value]
    return out


def _module_file(module: str, root: Path) -> Path | None:
    """The source file of an importable ``module``, or of ``root/<module path>.py`` (None: not found)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin and Path(spec.origin).is_file():
        return Path(spec.origin)
    base = root.joinpath(*module.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def encoder_sources(value: Any, root: str | os.PathLike) -> dict[str, str | None]:
    """What a notebook reads for each spec of an ``encoders`` parameter value
    (:mod:`rmqm.study.encoders`; relative paths from ``root``), so that the cache key follows
    it: ``{name: SHA-256}`` of a checkpoint file or of a factory's module source (None when
    missing or not found: the module's package may change unseen), the name of a built-in
    (its weights are pinned). No model is loaded (finding a dotted module imports its package).

    Raises:
        rmqm.study.encoders.EncoderSpecError: a malformed ``value``.
    """
    out: dict[str, str | None] = {}
    for spec in parse_encoder_specs(value, base_dir=Path(root)):
        if spec.kind == "checkpoint":
            path = Path(spec.options["checkpoint"])
            out[spec.name] = file_digest(path) if path.is_file() else None
        elif spec.kind == "factory":
            if not code_allowed():  # finding a dotted module imports its package: that runs code
                raise EncoderSpecError(factory_refusals(value))
            source = _module_file(str(spec.options["factory"]).partition(":")[0], Path(root))
            out[spec.name] = None if source is None else file_digest(source)
        else:
            out[spec.name] = str(spec.options["builtin"])
    return out


def _token(key: str, output_sha: str) -> str:
    """What a dependent notebook's key records of an upstream run: its key and its output."""
    return hashlib.sha256(f"{key}\0{output_sha}".encode()).hexdigest()


def _stale_reason(entry: Mapping[str, Any], key: str, inputs: Mapping[str, Any], output: Path,
                  manifest: Mapping[str, Any], name: str, results_dir: Path) -> str | None:
    """Why notebook ``name`` must run again (None when its cached run can be reused)."""
    status = entry.get("status")
    if status != "ok":
        return {None: "never ran here", "failed": "its last run failed",
                "running": "its last run was interrupted"}.get(status, f"its status is {status!r}")
    if entry.get("key") != key:
        old = entry.get("inputs") or {}
        changed = [k for k in ("parameters", "library", "data", "upstream") if old.get(k) != inputs.get(k)]
        files = changed_files(old.get("library_files", {}), inputs.get("library_files", {}))
        if "library" in changed and old.get("library_files") and files:  # name the edited modules
            changed[changed.index("library")] = f"library ({', '.join(files[:4])}{', ...' if len(files) > 4 else ''})"
        return "its " + (", ".join(changed) if changed else "cells") + " changed"
    problem = output_problem(output, entry.get("output_sha256"))
    if problem:
        return problem
    broken = artefact_problems(manifest, name, results_dir)
    if broken:
        return "files it wrote are damaged: " + "; ".join(broken[:5]) + (" ..." if len(broken) > 5 else "")
    return None


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()


def run_notebooks(
    profile: Profile,
    notebooks_dir: str | os.PathLike = "notebooks",
    out_dir: str | os.PathLike = "build/default",
    *,
    force: bool = False,
    progress: bool = True,
    kernel_name: str | None = None,
    log: Callable[[str], None] = print,
    root: str | os.PathLike | None = None,
    only_upstream_of: str | None = None,
) -> list[NotebookRun]:
    """Execute the notebooks of ``notebooks_dir`` for ``profile`` into ``out_dir/notebooks``.

    The build folder is locked for the whole run (:func:`rmqm.study.manifest.build_lock`).
    A notebook is skipped (unless ``force``) when its cache key is the one recorded in
    ``out_dir/study.json``, its executed output is a valid notebook with the recorded
    SHA-256 and the files it wrote under ``out_dir/results`` are unchanged. The key covers
    the notebook's cells and parameters, the :func:`library_fingerprint` of the installed
    ``rmqm`` (hashed once per call), the content identity of the data its parameters name
    (:func:`data_parameters` without folders: a moved data or build folder is reused) and the
    key and output of each notebook it depends on, so a
    rerun upstream reruns it too; an ``encoders`` parameter adds its :func:`encoder_sources`
    (checkpoint and factory files, relative paths from ``root``, default the parent of
    ``notebooks_dir``) to the data. The manifest is updated after each finished notebook;
    warnings printed inside a notebook are echoed to ``log``. With ``only_upstream_of`` only
    the notebooks that notebook reads are executed (:func:`rmqm.study.notebooks.upstream_of`:
    a chapter opened on its own, :mod:`rmqm.study.launch`).

    Returns:
        One :class:`NotebookRun` per notebook, in execution order.

    Raises:
        NotebookFailed: a cell raised (finished notebooks stay recorded); :class:`KernelDied`
            when its kernel died.
        BuildFolderBusy: another run holds ``out_dir``.
        ValueError: bad profile (unknown notebook or parameter), dependencies, or a manifest
            of the wrong structure.
    """
    out_dir = Path(out_dir)
    with build_lock(out_dir), marking_run_start():
        return _run_locked(profile, notebooks_dir, out_dir, force=force, progress=progress,
                           kernel_name=kernel_name, log=log, only_upstream_of=only_upstream_of,
                           root=Path(root) if root is not None else Path(notebooks_dir).resolve().parent)


def _run_locked(profile: Profile, notebooks_dir: str | os.PathLike, out_dir: Path, *, force: bool,
                progress: bool, kernel_name: str | None, log: Callable[[str], None], root: Path,
                only_upstream_of: str | None = None) -> list[NotebookRun]:
    import papermill as pm
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError
    from tqdm.auto import tqdm

    specs = execution_order(discover_notebooks(notebooks_dir))
    check_profile(profile, specs)
    if only_upstream_of is not None:
        specs = upstream_of(specs, only_upstream_of)
    nb_out = contained(out_dir / "notebooks", out_dir, "notebooks/")
    results_dir = contained(out_dir / "results", out_dir, "results/")
    manifest_path = contained(out_dir / MANIFEST, out_dir, MANIFEST)
    outputs = {spec.name: contained(nb_out / spec.path.name, out_dir, "executed notebook") for spec in specs}
    nb_out.mkdir(parents=True, exist_ok=True)
    results_dir.mkdir(parents=True, exist_ok=True)

    tag = f"[{profile.name}]"
    manifest = load_manifest(manifest_path, repair=True, log=log)
    library, files = library_fingerprint(), library_files()
    manifest.update(profile=profile.name, description=profile.description,
                    shared_parameters=profile.parameters, library_fingerprint=library)
    tokens: dict[str, str] = {}
    data_cache: dict[str, Any] = {}
    runs: list[NotebookRun] = []
    bar = tqdm(specs, desc=f"study {tag}", unit="notebook", disable=not progress)
    for spec in bar:
        params = notebook_parameters(spec, profile)
        reserved = {"results_dir": str(results_dir), "profile": profile.name}
        params.update({k: v for k, v in reserved.items() if k in spec.declared})
        data = content_identity(  # what the data holds, not where it lives: a moved folder keeps its keys
            data_parameters(params, log=functools.partial(_log_for, log, f"{tag} {spec.name}"), cache=data_cache))
        if params.get("encoders"):
            data["encoders"] = encoder_sources(params["encoders"], root)
        upstream = {d: tokens[d] for d in spec.depends_on}
        key = cache_key(spec, params, upstream, library=library, data=data or None)
        inputs = {"parameters": _digest({k: v for k, v in params.items() if k not in reserved}),
                  "library": library, "data": _digest(data), "upstream": upstream, "library_files": files}
        output = outputs[spec.name]
        entry = manifest["notebooks"].get(spec.name, {})
        reason = "forced" if force else _stale_reason(entry, key, inputs, output, manifest, spec.name, results_dir)
        if reason is None:
            tokens[spec.name] = _token(key, entry["output_sha256"])
            runs.append(NotebookRun(spec.name, "cached", float(entry.get("wall_s", 0.0)), key, output, params))
            log(f"{tag} {spec.name}: cached (key {key[:10]}, ran in {entry.get('wall_s', 0):.1f} s)")
            _echo_warnings(output, f"{tag} {spec.name} (cached run)", log)
            continue
        bar.set_postfix_str(spec.name)
        log(f"{tag} {spec.name}: executing ({reason})")
        manifest["notebooks"][spec.name] = {"key": key, "status": "running", "inputs": inputs}
        atomic_write_json(manifest_path, manifest)
        before = snapshot(results_dir)
        logged = recompute_offsets(results_dir)
        start = time.perf_counter()
        try:
            with child_progress(progress):  # the kernel's own bars follow the runner's wish
                pm.execute_notebook(
                    str(spec.path), str(output), parameters=params, kernel_name=kernel_name,
                    progress_bar=progress, cwd=str(spec.path.parent.resolve()), log_output=False,
                )
        except DeadKernelError as exc:
            manifest["notebooks"][spec.name] = {"key": key, "status": "failed", "inputs": inputs,
                                                "wall_s": time.perf_counter() - start}
            atomic_write_json(manifest_path, manifest)
            raise KernelDied(spec.name, str(exc).strip().splitlines()[0] if str(exc).strip() else "", output) from None
        except PapermillExecutionError as exc:
            wall = time.perf_counter() - start
            _echo_warnings(output, f"{tag} {spec.name}", log)
            manifest["notebooks"][spec.name] = {"key": key, "status": "failed", "wall_s": wall, "inputs": inputs}
            atomic_write_json(manifest_path, manifest)
            raise NotebookFailed(
                spec.name, _source_cell_index(output, exc.cell_index), exc.exec_count,
                exc.source or "", exc.ename, _ANSI.sub("", str(exc.evalue)), output,
            ) from None
        wall = time.perf_counter() - start
        _hide_parameter_cells(output)
        sha = file_digest(output)
        record_artefacts(manifest, spec.name, results_dir, before)
        manifest["data_used"] = read_data_used(results_dir)
        manifest["notebooks"][spec.name] = {
            "key": key, "status": "ok", "wall_s": round(wall, 2), "parameters": params, "library": library,
            "inputs": inputs, "output_sha256": sha,
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "hardware": hardware_summary(),
        }
        atomic_write_json(manifest_path, manifest)
        tokens[spec.name] = _token(key, sha)
        runs.append(NotebookRun(spec.name, "executed", wall, key, output, params))
        log(f"{tag} {spec.name}: done in {wall:.1f} s")
        for line in new_recomputes(results_dir, logged):  # which part of each recomputed key changed
            log(f"{tag} {spec.name}: computed {line}")
        _echo_warnings(output, f"{tag} {spec.name}", log)
    return runs


def _echo_warnings(output: Path, prefix: str, log: Callable[[str], None]) -> None:
    for line in stderr_warnings(output):
        log(f"{prefix}: {line}")


def _log_for(log: Callable[[str], None], prefix: str, message: str) -> None:
    """``log`` a message under a notebook's prefix."""
    log(f"{prefix}: {message}")
