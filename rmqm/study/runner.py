"""Execute a profile's notebooks with papermill, caching each by its key."""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rmqm._utils.io import atomic_write_json
from rmqm._utils.provenance import hardware_summary
from rmqm.study.notebooks import (
    _check_profile,
    _read_nb,
    cache_key,
    discover_notebooks,
    execution_order,
    library_fingerprint,
    notebook_parameters,
)
from rmqm.study.profiles import Profile

__all__ = ['MANIFEST', 'NotebookFailed', 'NotebookRun', 'run_notebooks']


#: Tags the runner puts on papermill's parameter cells so that the book hides them:
#: the notebook's defaults are removed (they are overridden), the injected values are
#: folded behind a toggle.
_HIDE_TAGS = {"parameters": "remove-cell", "injected-parameters": "hide-cell"}


MANIFEST = "study.json"


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


def load_manifest(path: Path) -> dict:
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("notebooks"), dict):
                return data
        except json.JSONDecodeError:
            pass
    return {"notebooks": {}}


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
    manifest = load_manifest(manifest_path)
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
        atomic_write_json(manifest_path, manifest)
        start = time.perf_counter()
        try:
            pm.execute_notebook(
                str(spec.path), str(output), parameters=params, kernel_name=kernel_name,
                progress_bar=progress, cwd=str(spec.path.parent.resolve()), log_output=False,
            )
        except PapermillExecutionError as exc:
            wall = time.perf_counter() - start
            manifest["notebooks"][spec.name] = {"key": key, "status": "failed", "wall_s": wall}
            atomic_write_json(manifest_path, manifest)
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
        atomic_write_json(manifest_path, manifest)
        runs.append(NotebookRun(spec.name, "executed", wall, key, output, params))
        log(f"[{profile.name}] {spec.name}: done in {wall:.1f} s")
    return runs
