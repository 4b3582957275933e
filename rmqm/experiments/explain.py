"""Why a result is recomputed: which part of its key changed since the store last held one like it.

A key holds the parameters of a computation, the fingerprint of the code that computes it
(``"code"``, :func:`rmqm._utils.hashing.code_fingerprint`), the identity of what it read (data
content: ``data_content``, file hashes) and of the model it measured (``encoder``, ``head``:
weight digests). When the store lacks a key, :func:`explain_recompute` looks at the keys of the
same kind, model and table that the store held when this run began (:func:`run_started`: a
sibling computed in the same run is no reason), picks the closest one (fewest differing
parameters, then fewest differences, then the newest) and names each difference as one of
:data:`PARTS`; with none, the computation is ``"new"``. For a code change it names the modules, from the per-module
digests that :func:`save_code_manifest` keeps in the store (``<store>/.code/<fingerprint>.json``).

Every sweep logs its explanations to ``<store>/.recomputed.jsonl`` (:func:`log_recomputes`);
``rmqm study explain`` and the study runner's console summarise that log
(:func:`recompute_summary`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from rmqm._utils.hashing import code_manifest, flatten_config
from rmqm._utils.progress import child_environ

__all__ = ["PARTS", "Change", "RUN_STARTED_ENV", "run_started", "explain_recompute", "save_code_manifest",
           "log_recomputes", "read_recomputes", "recompute_summary", "RECOMPUTE_LOG", "CODE_FOLDER",
           "recompute_offsets", "recompute_reports", "new_recomputes", "marking_run_start"]

#: The parts of a key a change can be in.
PARTS: tuple[str, ...] = ("new", "parameters", "code", "data", "weights")

#: The log of every recomputation, in the store's folder (hidden: a log, not a result the study
#: runner tracks as a notebook's artefact).
RECOMPUTE_LOG = ".recomputed.jsonl"

#: The environment variable in which the study runner passes the start of its run (ISO 8601
#: UTC) to the notebooks' kernels: records created since are this run's own.
RUN_STARTED_ENV = "RMQM_RUN_STARTED"

#: When this process started (ISO 8601 UTC): the start of the run without a runner.
_PROCESS_STARTED = datetime.now(timezone.utc).isoformat(timespec="microseconds")


def run_started() -> str:
    """The start of the current run (ISO 8601 UTC): :data:`RUN_STARTED_ENV` when the study runner
    set it, else the start of this process."""
    return os.environ.get(RUN_STARTED_ENV) or _PROCESS_STARTED


#: The folder of the per-module code digests, in the store's folder (hidden, as the log).
CODE_FOLDER = ".code"

#: Key entries (first part of a flattened name) that identify the weights measured.
_WEIGHT_ENTRIES = ("encoder", "head", "augment")
#: Flattened-name parts that hold the content of data read (digests, not descriptions).
_DATA_PARTS = ("data_content", "files", "content", "sha256", "data_identity")
#: Entries that group keys: a key is compared only with stored keys equal in these.
_GROUP = ("kind", "model", "table", "name")


@dataclass(frozen=True)
class Change:
    """One reason a result is recomputed.

    Attributes:
        part: one of :data:`PARTS`.
        what: the entry (``"n_levels"``, ``"data.seed"``), the module (``"rmqm.metrics.rmqm.measure"``)
            or, for ``"new"``, what was never computed.
        before, after: the old and new value (short text; digests cut to 10 characters).
    """

    part: str
    what: str
    before: str = ""
    after: str = ""

    def __str__(self) -> str:
        if self.part == "new":
            return f"new: {self.what}"
        if self.part == "code":
            return f"code: {self.what} {self.before}".rstrip()
        return f"{self.part}: {self.what} {self.before} -> {self.after}"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text[:10] if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text[:60]


def _is_digest(value: Any) -> bool:
    """A SHA-256 hex digest, or a list of them (e.g. the fingerprints of the images read)."""
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_is_digest(v) for v in value)
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _part(name: str, value: Any = None) -> str:
    parts = name.split(".")
    if parts[0] in _WEIGHT_ENTRIES:
        return "weights"
    if parts[0] == "code":
        return "code"
    if any(p in _DATA_PARTS for p in parts) or (parts[0] == "data" and _is_digest(value)):
        return "data"
    return "parameters"


def _code_changes(store_root: Path, before: Any, after: Any) -> list[Change]:
    old = _read_manifest(store_root, str(before))
    new = _read_manifest(store_root, str(after)) or code_manifest(str(after))
    if old is None or new is None:
        return [Change("code", "(modules not recorded)", f"fingerprint {_short(before)} -> {_short(after)}")]
    changes = [Change("code", m, "changed") for m in sorted(set(old) & set(new)) if old[m] != new[m]]
    changes += [Change("code", m, "now imported") for m in sorted(set(new) - set(old))]
    changes += [Change("code", m, "no longer imported") for m in sorted(set(old) - set(new))]
    return changes or [Change("code", "(same modules, other fingerprint scheme)")]


def _read_manifest(store_root: Path, fingerprint: str) -> dict[str, str] | None:
    path = store_root / CODE_FOLDER / f"{fingerprint}.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def save_code_manifest(store_root: str | os.PathLike, fingerprint: str) -> bool:
    """Keep the per-module digests of ``fingerprint`` (when this process computed it) beside the
    store's records, so that a later change of it can name its modules. True if written."""
    manifest = code_manifest(fingerprint)
    path = Path(store_root) / CODE_FOLDER / f"{fingerprint}.json"
    if manifest is None or path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest, sort_keys=True, indent=0), encoding="utf-8")
    os.replace(tmp, path)
    return True


def _groups(configs: Iterable[Mapping[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """Flattened configs grouped by their kind, model, table and name."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for config in configs:
        flat = flatten_config(config)
        groups.setdefault(tuple(flat.get(k) for k in _GROUP), []).append(flat)
    return groups


def explain_recompute(store: Any, key: Mapping[str, Any], *, before: str | None = None,
                      stored: Mapping[tuple, Sequence[Mapping[str, Any]]] | None = None) -> list[Change]:
    """Why ``key`` is computed: its differences from the closest key of the same kind, model and
    table that ``store`` held before ``before`` (fewest differing parameters, then fewest
    differences, then the newest), each a :class:`Change`.

    Args:
        store: a :class:`rmqm.experiments.store.ResultsStore`.
        key: the key about to be computed.
        before: ISO 8601 UTC time; records created since are left out (default :func:`run_started`:
            what this run computed itself is no reason to compute).
        stored: the store's configs grouped (internal: computed once per sweep).

    Returns:
        The changes; ``[Change("new", "never computed")]`` when no such key was stored, ``[]``
        when the store holds ``key`` itself.
    """
    if stored is None:
        stored = _groups(store.configs(before=run_started() if before is None else before))
    flat = flatten_config(key)
    candidates = stored.get(tuple(flat.get(k) for k in _GROUP), [])
    if not candidates:
        return [Change("new", "never computed")]
    names = set(flat)

    def differing(other: Mapping[str, Any]) -> list[str]:
        return sorted(n for n in names | set(other) if flat.get(n, "<absent>") != other.get(n, "<absent>"))

    def rank(other: Mapping[str, Any]) -> tuple[int, int]:
        diffs = differing(other)
        return sum(_part(n, flat.get(n)) == "parameters" for n in diffs), len(diffs)

    best = min(reversed(candidates), key=rank)  # reversed: the newest wins ties
    changes: list[Change] = []
    for name in differing(best):
        before, after = best.get(name, "<absent>"), flat.get(name, "<absent>")
        part = _part(name, after)
        if part == "code":
            changes += _code_changes(Path(store.root), before, after)
        elif _file_hashes(before) is not None and _file_hashes(after) is not None:
            old, new = _file_hashes(before) or {}, _file_hashes(after) or {}
            changes += [Change("data", f"{name}: {path}", _short(old.get(path, "<absent>")),
                               _short(new.get(path, "<absent>")))
                        for path in sorted(set(old) | set(new)) if old.get(path) != new.get(path)]
        else:
            changes.append(Change(part, name, _short(before), _short(after)))
    return changes


def _file_hashes(value: Any) -> dict[str, str] | None:
    """``{path: digest}`` of a data identity's ``files`` list (``[[path, sha256], ...]``), else None."""
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, str) for x in v) for v in value):
        return None
    return {str(path): str(digest) for path, digest in value}


def log_recomputes(store: Any, keys: Sequence[Mapping[str, Any]]) -> list[list[Change]]:
    """Explain each of ``keys`` (about to be computed) and append one line per key to
    ``<store>/.recomputed.jsonl``; also keep the code manifests of their fingerprints."""
    if not keys:
        return []
    groups = _groups(store.configs(before=run_started()))
    explained = [explain_recompute(store, k, stored=groups) for k in keys]
    for fingerprint in {str(k["code"]) for k in keys if isinstance(k.get("code"), str)}:
        save_code_manifest(store.root, fingerprint)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    lines = [json.dumps({"time": stamp, "kind": k.get("kind"), "model": k.get("model"), "table": k.get("table"),
                         "changes": [asdict(c) for c in changes]}, default=str)
             for k, changes in zip(keys, explained, strict=True)]
    with open(Path(store.root) / RECOMPUTE_LOG, "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return explained


def read_recomputes(store_root: str | os.PathLike, since: int = 0) -> tuple[pd.DataFrame, int]:
    """The recompute log as a long table (one row per change: ``entry`` (the computation's number
    in what was read), ``time, kind, model, table, part, what, before, after``), from byte offset
    ``since``; and the offset after it."""
    path = Path(store_root) / RECOMPUTE_LOG
    if not path.exists():
        return pd.DataFrame(columns=_LOG_COLUMNS), since
    with open(path, "rb") as fh:
        fh.seek(since)
        data = fh.read()
    rows = []
    lines = [line for line in data.decode("utf-8").splitlines() if line.strip()]
    for number, line in enumerate(lines):
        entry = json.loads(line)
        for change in entry["changes"] or [{"part": "none", "what": "", "before": "", "after": ""}]:
            rows.append({"entry": number, **{k: entry.get(k) for k in ("time", "kind", "model", "table")}, **change})
    return pd.DataFrame(rows, columns=_LOG_COLUMNS), since + len(data)


_LOG_COLUMNS = ["entry", "time", "kind", "model", "table", "part", "what", "before", "after"]


def recompute_summary(changes: pd.DataFrame) -> list[str]:
    """One line per distinct reason, most frequent first: ``"code: rmqm.metrics.rmqm.measure changed
    (210 records)"``."""
    if changes.empty:
        return []
    counts = Counter(str(Change(r.part, r.what, r.before, r.after)) if r.part in PARTS else r.part
                     for r in changes.itertuples())
    return [f"{reason} ({n} record{'s' if n != 1 else ''})" for reason, n in counts.most_common()]


def recompute_offsets(results_dir: Path) -> dict[Path, int]:
    """The size of every results store's recompute log under ``results_dir``: where the entries
    of what runs next start (:func:`new_recomputes`)."""
    return {p.parent: p.stat().st_size for p in Path(results_dir).rglob(RECOMPUTE_LOG)}


def recompute_reports(results_dir: Path, offsets: Mapping[Path, int] | None = None) -> list[tuple[str, pd.DataFrame]]:
    """``(store folder relative to results_dir, its logged changes)`` for every results store
    under ``results_dir`` (:func:`read_recomputes`, from ``offsets`` where given)."""
    reports = []
    for log_path in sorted(Path(results_dir).rglob(RECOMPUTE_LOG)):
        changes, _ = read_recomputes(log_path.parent, (offsets or {}).get(log_path.parent, 0))
        reports.append((log_path.parent.relative_to(results_dir).as_posix(), changes))
    return reports


def new_recomputes(results_dir: Path, offsets: Mapping[Path, int]) -> list[str]:
    """Summary lines (:func:`recompute_summary`) of the recompute log entries written after
    ``offsets``, per store under ``results_dir``."""
    return [f"in {store}: {line}" for store, changes in recompute_reports(results_dir, offsets)
            for line in recompute_summary(changes)]


@contextlib.contextmanager
def marking_run_start() -> Iterator[None]:
    """Within it, :func:`run_started` is now, in this process and in the processes it starts (the
    study runner's notebook kernels, through :data:`RUN_STARTED_ENV`): what they compute is
    explained against what the store held before."""
    with child_environ(RUN_STARTED_ENV, datetime.now(timezone.utc).isoformat(timespec="microseconds")):
        yield
