"""What a build folder remembers between runs, and how the runner trusts it.

* ``study.json`` (:data:`MANIFEST`): per notebook its cache key, status, wall time and the
  SHA-256 of its executed output; the artefacts (files under ``results/``) each notebook
  wrote, with their SHA-256; the data the notebooks used (``data_used.json`` files).
* ``.lock`` (:data:`LOCK`): held by the run that uses the folder (:func:`build_lock`).

A notebook counts as cached only if its recorded output is still a valid notebook with the
recorded SHA-256 and every artefact it wrote is still there, unchanged
(:func:`stale_reason`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock

from rmqm._utils.hashing import file_digest
from rmqm._utils.io import contained
from rmqm.study.notebooks import read_notebook

__all__ = ['MANIFEST', 'LOCK', 'DATA_USED', 'BuildFolderBusy', 'build_lock', 'new_manifest', 'load_manifest',
           'output_problem', 'snapshot', 'record_artefacts', 'artefact_problems', 'stderr_warnings',
           'read_data_used']


MANIFEST = "study.json"


LOCK = ".lock"


#: Name of the files in which the notebooks record the data they used
#: (:data:`rmqm.training.zoo.DATA_USED`), looked for in ``results/`` and its subfolders.
DATA_USED = "data_used.json"


class BuildFolderBusy(RuntimeError):
    """Another run holds the build folder's lock."""


@contextmanager
def build_lock(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of the build folder ``out_dir`` (created if missing) for the ``with`` block.

    Re-entrant within one thread of one process (``run_study`` may hold it around
    :func:`rmqm.study.runner.run_notebooks`, which takes it too); another process, or
    another thread, is refused at once.

    Raises:
        BuildFolderBusy: another run holds it; the message says what to do.
        ValueError: its lock file is a link that resolves outside ``out_dir``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = contained(out_dir / LOCK, out_dir, LOCK)
    lock = filelock.FileLock(str(path), timeout=0, is_singleton=True)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise BuildFolderBusy(
            f"build folder {out_dir} is in use by another run (lock {path}); wait for it to finish "
            "or use --build-dir for a separate build folder"
        ) from None
    try:
        yield out_dir
    finally:
        lock.release()


def new_manifest() -> dict[str, Any]:
    """An empty manifest."""
    return {"notebooks": {}, "artefacts": {}, "data_used": {}}


def _shape_problem(data: Any) -> str | None:
    """What is wrong with the structure of a manifest, or None."""
    if not isinstance(data, dict):
        return f"the top level is a {type(data).__name__}, not an object"
    for field in ("notebooks", "artefacts", "data_used"):
        value = data.get(field, {})
        if not isinstance(value, dict):
            return f"'{field}' is a {type(value).__name__}, not an object"
        bad = [k for k, v in value.items() if not isinstance(v, dict)]
        if bad:
            return f"'{field}' entries {bad[:5]} are not objects"
    for name, entry in data.get("notebooks", {}).items():
        for field, kind in (("key", str), ("status", str), ("output_sha256", str), ("wall_s", (int, float))):
            if field in entry and not isinstance(entry[field], kind):
                return f"notebooks.{name}.{field} is a {type(entry[field]).__name__}"
    for name, entry in data.get("artefacts", {}).items():
        if not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("notebook"), str):
            return f"artefacts.{name} lacks its 'sha256' or 'notebook'"
    return None


def load_manifest(path: str | os.PathLike, *, repair: bool = False,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """The manifest at ``path`` (an empty one when the file does not exist).

    Args:
        repair: a file that is not JSON at all (a run cut mid-write) is moved aside to
            ``study.json.corrupt-<UTC stamp>`` with a message to ``log``, and an empty
            manifest is returned, so that everything reruns. Without ``repair`` it raises.

    Raises:
        ValueError: the file is valid JSON of the wrong structure (the message names the
            file and what is wrong), or, without ``repair``, not JSON.
    """
    path = Path(path)
    if not path.exists():
        return new_manifest()
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        if not repair:
            raise ValueError(f"manifest {path} is not valid JSON ({err}); rerun the study to rebuild it") from None
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        os.replace(path, aside)
        log(f"WARNING: manifest {path} is not valid JSON ({err}); moved it to {aside}, every notebook reruns")
        return new_manifest()
    problem = _shape_problem(data)
    if problem:
        raise ValueError(
            f"manifest {path} is not an rmqm study manifest: {problem}. Delete it (every notebook then "
            "reruns) or restore it"
        )
    return {**new_manifest(), **data}


def output_problem(output: Path, sha256: str | None) -> str | None:
    """Why the executed notebook ``output`` cannot be reused (None when it can): missing,
    changed since it was recorded with ``sha256``, or not a valid notebook."""
    if not output.is_file():
        return f"its output {output} is missing"
    if sha256 is None:
        return "no checksum of its output is recorded"
    if file_digest(output, cached=False) != sha256:
        return f"its output {output} changed since it ran (damaged or edited)"
    try:
        read_notebook(output, validate=True)
    except ValueError as err:
        return str(err)
    return None


def _tracked(rel: Path) -> bool:
    """Files the runner tracks: not hidden (temporary) files, nothing in a quarantine folder."""
    return not any(part.startswith(".") or part == "quarantine" for part in rel.parts)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """``{relative POSIX path: (size, mtime_ns)}`` of the tracked files under ``folder``."""
    out: dict[str, tuple[int, int]] = {}
    if folder.is_dir():
        for path in folder.rglob("*"):
            rel = path.relative_to(folder)
            if _tracked(rel) and path.is_file():
                st = path.stat()
                out[rel.as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def record_artefacts(manifest: dict[str, Any], notebook: str, folder: Path,
                     before: Mapping[str, tuple[int, int]]) -> list[str]:
    """Record the files under ``folder`` that ``notebook`` created or changed (compared with
    the :func:`snapshot` ``before`` it ran) as its artefacts, with their SHA-256; forget
    those it deleted. A file written by several notebooks belongs to the last one.

    Returns:
        The relative paths recorded.
    """
    after = snapshot(folder)
    arts = manifest.setdefault("artefacts", {})
    for rel in set(before) - set(after):
        arts.pop(rel, None)
    changed = sorted(rel for rel, stat in after.items() if before.get(rel) != stat)
    for rel in changed:
        size, mtime = after[rel]
        arts[rel] = {"notebook": notebook, "sha256": file_digest(folder / rel), "size": size, "mtime_ns": mtime}
    return changed


def artefact_problems(manifest: Mapping[str, Any], notebook: str, folder: Path) -> list[str]:
    """The artefacts of ``notebook`` that are missing or changed: each file's bytes are hashed
    again (a flipped bit that kept its size and modification time is seen too)."""
    problems = []
    for rel, art in sorted(manifest.get("artefacts", {}).items()):
        if art.get("notebook") != notebook:
            continue
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel} is missing")
            continue
        if file_digest(path, cached=False) != art["sha256"]:
            problems.append(f"{rel} changed")
    return problems


def stderr_warnings(output: Path) -> list[str]:
    """The distinct lines of the stderr stream outputs of an executed notebook that contain
    ``Warning`` (e.g. ``StoreWarning``, ``DataFallbackWarning``), in order."""
    try:
        nb = read_notebook(output)
    except (ValueError, FileNotFoundError):
        return []
    lines: list[str] = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                lines += [ln.strip() for ln in str(out.get("text", "")).splitlines() if "Warning" in ln]
    return list(dict.fromkeys(lines))


def read_data_used(results_dir: Path) -> dict[str, Any]:
    """``{relative path: record}`` of the :data:`DATA_USED` files in ``results_dir`` and its
    direct subfolders (unreadable ones are reported as ``{"error": ...}``)."""
    found = {}
    for path in sorted([results_dir / DATA_USED, *results_dir.glob(f"*/{DATA_USED}")]):
        if path.is_file():
            try:
                found[path.relative_to(results_dir).as_posix()] = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                found[path.relative_to(results_dir).as_posix()] = {"error": f"unreadable: {err}"}
    return found
