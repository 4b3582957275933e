"""A results store: one Parquet part-file per finished measurement, plus an index.

The file format (part-files, metadata footer, index table) lives in
:mod:`rmqm.experiments.records`; this module keeps the folder consistent.
"""

from __future__ import annotations

import os
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from rmqm._utils.hashing import canonical_config, config_hash
from rmqm._utils.io import TMP_PREFIX, atomic_write_table, fsync_dir
from rmqm._utils.provenance import provenance
from rmqm.experiments.records import (
    INDEX,
    KEY_COLUMNS,
    PARTS,
    PROVENANCE_COLUMNS,
    QUARANTINE,
    StoreProblem,
    StoreWarning,
    describe_config,
    encode_record,
    index_entry,
    index_table,
    read_index,
    read_record,
    read_record_meta,
    record_frame,
    record_meta,
    rows_frame,
    stale_reason,
)

__all__ = ['PROVENANCE_COLUMNS', 'KEY_COLUMNS', 'StoreWarning', 'StoreProblem', 'ResultsStore']


#: Age after which a temporary file is a dead writer's leftover.
_STALE_TMP_AGE_S = 3600.0


class ResultsStore:
    """A folder of results, one atomic Parquet part-file per config.

    Args:
        root: the store folder (created if missing).
        create: create ``root`` when it does not exist (else raise FileNotFoundError).

    The store assumes one writing process at a time per folder (a sweep gathers the
    results of its workers and writes them itself); readers may run at any time.
    """

    def __init__(self, root: str | os.PathLike, create: bool = True) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path; got {type(root).__name__}")
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"store root {self.root} exists and is not a folder")
        if not self.root.exists():
            if not create:
                raise FileNotFoundError(f"no results store at {self.root}")
            self.root.mkdir(parents=True)
        self.parts_dir.mkdir(exist_ok=True)
        #: Damaged or stale records found by this object, in the order found.
        self.problems: list[StoreProblem] = []
        self._index: dict[str, dict[str, Any]] = {}
        self._remove_stale_temp_files()
        self._load_index()

    # -- paths ---------------------------------------------------------------------------

    @property
    def parts_dir(self) -> Path:
        return self.root / PARTS

    @property
    def index_path(self) -> Path:
        return self.root / INDEX

    def path_of(self, config: Mapping[str, Any]) -> Path:
        """The part-file that holds (or would hold) the record of ``config``."""
        return self.parts_dir / f"{config_hash(config)}.parquet"

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.root)!r}, records={len(self)})"

    def __len__(self) -> int:
        return len(self._index)

    def hashes(self) -> list[str]:
        """Hashes of the records in the index, oldest first."""
        return [h for h, _ in sorted(self._index.items(), key=lambda kv: (kv[1]["created"], kv[0]))]

    # -- public API ------------------------------------------------------------------------

    def has(self, config: Mapping[str, Any]) -> bool:
        """True when a valid record of ``config`` exists (a damaged or stale one is reported,
        quarantined, and counts as missing)."""
        return self._read(config_hash(config), expected=canonical_config(config)) is not None

    def get(self, config: Mapping[str, Any]) -> pd.DataFrame:
        """The metric rows stored for ``config``; ``DataFrame.attrs`` holds the record's
        ``config``, ``config_hash``, ``seed`` and provenance.

        Raises:
            KeyError: no valid record of ``config`` (a damaged or stale one is reported and
                moved aside first).
        """
        h = config_hash(config)
        record = self._read(h, expected=canonical_config(config))
        if record is None:
            raise KeyError(f"no result stored for config {describe_config(config)} (hash {h[:12]})")
        rows, meta = record
        rows.attrs = dict(meta)
        return rows

    def put(
        self,
        config: Mapping[str, Any],
        rows: Any,
        *,
        wall_time_s: float | None = None,
        provenance_info: Mapping[str, Any] | None = None,
    ) -> str:
        """Store the metric ``rows`` of ``config`` atomically (replacing any old record).

        Args:
            config: the job's full config (JSON-like, see :func:`canonical_config`);
                its ``"seed"`` entry, if any, is recorded as the record's seed.
            rows: a DataFrame of metric rows (string column names, at least one row), a
                dict (one row) or a list of dicts.
            wall_time_s: seconds the computation took.
            provenance_info: :func:`provenance` of the process that computed the rows
                (defaults to this process's).

        Returns:
            The config hash (the record's key).
        """
        canonical = canonical_config(config)
        frame = rows_frame(rows)
        info = dict(provenance(wall_time_s) if provenance_info is None else provenance_info)
        if wall_time_s is not None:
            info["wall_time_s"] = float(wall_time_s)
        meta = record_meta(canonical, frame, info)
        h = meta["config_hash"]
        table = encode_record(frame, meta)
        atomic_write_table(table, self.parts_dir / f"{h}.parquet")
        self._index[h] = index_entry(h, meta)
        self._write_index()
        return h

    def delete(self, config: Mapping[str, Any]) -> bool:
        """Remove the record of ``config``; True if there was one."""
        h = config_hash(config)
        path = self.parts_dir / f"{h}.parquet"
        existed = path.exists()
        if existed:
            path.unlink()
            fsync_dir(self.parts_dir)
        if self._index.pop(h, None) is not None or existed:
            self._write_index()
        return existed

    def configs(self, before: str | None = None) -> list[dict[str, Any]]:
        """The configs of all records, oldest first; with ``before`` (an ISO 8601 UTC time, as
        records store their creation time) only those created earlier."""
        return [dict(self._index[h]["config"]) for h in self.hashes()
                if before is None or str(self._index[h]["created"]) < before]

    def verify(self) -> list[StoreProblem]:
        """Read every record; report, quarantine and return the damaged or stale ones."""
        self.refresh()
        before = len(self.problems)
        for h in list(self._index):
            self._read(h, expected=None)
        return self.problems[before:]

    def refresh(self) -> None:
        """Re-read the folder (pick up records written by another process)."""
        self._load_index()

    def to_frame(
        self,
        configs: Iterable[Mapping[str, Any]] | None = None,
        *,
        provenance: bool = False,
        missing: str = "raise",
    ) -> pd.DataFrame:
        """One table of records: config columns, ``config_hash``, ``seed``, then metric rows.

        Args:
            configs: which records, in this order (default: all, oldest first).
            provenance: also add :data:`PROVENANCE_COLUMNS` (wall time, creation time,
                git commit, versions as JSON, host).
            missing: with ``configs`` given, ``"raise"`` (KeyError) or ``"skip"`` the
                configs without a valid record.

        Nested config keys are flattened to ``"outer.inner"``. A config key that is also
        a metric column is dropped when the values agree, and renamed ``"config.<key>"``
        when they differ.
        """
        if missing not in ("raise", "skip"):
            raise ValueError(f"missing must be 'raise' or 'skip'; got {missing!r}")
        wanted: list[tuple[str, dict[str, Any] | None]]
        if configs is None:
            self.refresh()
            wanted = [(h, None) for h in self.hashes()]
        else:
            if isinstance(configs, Mapping):
                raise TypeError("configs must be an iterable of config dicts, not one dict")
            wanted = [(config_hash(c), canonical_config(c)) for c in configs]
        frames = []
        for h, expected in wanted:
            record = self._read(h, expected=expected)
            if record is None:
                if expected is not None and missing == "raise":
                    raise KeyError(f"no result stored for config {describe_config(expected)} (hash {h[:12]})")
                continue
            frames.append(record_frame(*record, provenance=provenance))
        if not frames:
            columns = list(KEY_COLUMNS) + (list(PROVENANCE_COLUMNS) if provenance else [])
            return pd.DataFrame(columns=columns)
        return pd.concat(frames, ignore_index=True, sort=False)

    # -- internals ---------------------------------------------------------------------------

    def _remove_stale_temp_files(self) -> None:
        """Delete the leftovers of a writer killed mid-write (a live writer's file is seconds old)."""
        now = time.time()
        for folder in (self.root, self.parts_dir):
            for tmp in folder.glob(f"{TMP_PREFIX}*"):
                try:
                    if now - tmp.stat().st_mtime > _STALE_TMP_AGE_S:
                        tmp.unlink()
                except OSError:
                    pass

    def _load_index(self) -> None:
        """Index = index.parquet reconciled with the part-files actually present."""
        cached: dict[str, dict[str, Any]] = {}
        if self.index_path.exists():
            try:
                cached = read_index(self.index_path)
            except Exception as err:  # noqa: BLE001 - any damage means: rebuild from parts/
                self._report("index", self.index_path, f"unreadable index ({err}); rebuilt from part-files", move=False)
                cached = {}
        present = {p.stem for p in self.parts_dir.glob("*.parquet") if not p.name.startswith(TMP_PREFIX)}
        index = {h: entry for h, entry in cached.items() if h in present}
        changed = len(index) != len(cached)
        for h in sorted(present - set(index)):
            meta = self._read_meta(h)
            if meta is not None:
                index[h] = index_entry(h, meta)
            changed = True
        self._index = index
        if changed:
            self._write_index()

    def _write_index(self) -> None:
        """Write the in-memory index to ``index.parquet`` atomically (sorted by hash)."""
        atomic_write_table(index_table([self._index[h] for h in sorted(self._index)]), self.index_path)

    def _read_meta(self, h: str) -> dict[str, Any] | None:
        """The record metadata of part-file ``h`` (only the footer is read), or None if damaged."""
        path = self.parts_dir / f"{h}.parquet"
        try:
            meta = read_record_meta(path)
        except FileNotFoundError:
            return None
        except Exception as err:  # noqa: BLE001 - arrow raises many types for damaged files
            self._report(h, path, f"damaged part-file: {err}")
            return None
        reason = stale_reason(h, meta)
        if reason is not None:
            self._report(h, path, reason)
            return None
        return meta

    def _read(self, h: str, expected: dict[str, Any] | None) -> tuple[pd.DataFrame, dict[str, Any]] | None:
        """Read and validate record ``h``; on damage or staleness report, quarantine, return None."""
        path = self.parts_dir / f"{h}.parquet"
        if not path.exists():
            if self._index.pop(h, None) is not None:
                self._write_index()
            return None
        try:
            rows, meta, damage = read_record(path)
        except Exception as err:  # noqa: BLE001 - arrow raises many types for damaged files
            self._report(h, path, f"damaged part-file: {err}")
            return None
        reason = stale_reason(h, meta)
        if reason is None and damage is not None:
            reason = f"damaged part-file: {damage}"
        if reason is None and meta.get("n_rows") != len(rows):
            reason = f"damaged part-file: metadata says {meta.get('n_rows')} rows, file holds {len(rows)}"
        if reason is None and expected is not None and meta["config"] != expected:
            reason = "stale: stored config differs from the requested config with the same hash"
        if reason is not None:
            self._report(h, path, reason)
            return None
        if h not in self._index:
            self._index[h] = index_entry(h, meta)
            self._write_index()
        return rows, meta

    def _report(self, h: str, path: Path, reason: str, move: bool = True) -> None:
        """Record a problem, warn, move the file to ``quarantine/`` (with ``move``), drop it from the index."""
        moved_to = None
        if move and path.exists():
            quarantine = self.root / QUARANTINE
            quarantine.mkdir(exist_ok=True)
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
            target = quarantine / f"{path.stem}.{stamp}.{uuid.uuid4().hex[:6]}{path.suffix}"
            try:
                os.replace(path, target)
                moved_to = str(target)
            except OSError:
                moved_to = None
        problem = StoreProblem(h, str(path), reason, moved_to)
        self.problems.append(problem)
        message = f"results store {self.root}: {reason} ({path.name}); " + (
            f"moved to {moved_to}, it will be recomputed" if moved_to else "it will be recomputed"
        )
        warnings.warn(message, StoreWarning, stacklevel=3)
        if self._index.pop(h, None) is not None:
            self._write_index()

