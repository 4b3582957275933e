"""A results store: one Parquet part-file per finished measurement, plus an index."""

from __future__ import annotations

import json
import os
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rmqm._utils.hashing import (
    HASH_SCHEME,
    _config_json,
    canonical_config,
    config_hash,
    flatten_config,
)
from rmqm._utils.io import TMP_PREFIX, atomic_write_table, fsync_dir
from rmqm._utils.provenance import provenance

__all__ = ['PROVENANCE_COLUMNS', 'KEY_COLUMNS', 'StoreWarning', 'StoreProblem', 'ResultsStore']


#: Columns :meth:`ResultsStore.to_frame` adds with ``provenance=True``.
PROVENANCE_COLUMNS = ("wall_time_s", "created", "git_commit", "git_dirty", "versions", "host")


#: Columns every table from the store carries besides the config and metric columns.
KEY_COLUMNS = ("config_hash", "seed")


_METADATA_KEY = b"rmqm.record"


_PARTS = "parts"


_QUARANTINE = "quarantine"


_INDEX = "index.parquet"


_STALE_TMP_AGE_S = 3600.0


class StoreWarning(UserWarning):
    """A damaged or stale record was found (and moved aside, to be recomputed)."""


@dataclass(frozen=True)
class StoreProblem:
    """One damaged or stale record: its hash, the file, what was wrong, where it went."""

    config_hash: str
    path: str
    reason: str
    moved_to: str | None


def _rows_frame(rows: Any) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        frame = rows.copy()
    elif isinstance(rows, Mapping):
        frame = pd.DataFrame([dict(rows)])
    elif isinstance(rows, (list, tuple)) and all(isinstance(r, Mapping) for r in rows):
        frame = pd.DataFrame([dict(r) for r in rows])
    else:
        raise TypeError(
            "rows must be a pandas DataFrame, a dict (one row) or a list of dicts; "
            f"got {type(rows).__name__}"
        )
    if len(frame) == 0:
        raise ValueError("rows is empty: a record needs at least one metric row")
    if len(frame.columns) == 0:
        raise ValueError("rows has no columns: a record needs at least one metric")
    bad = [c for c in frame.columns if not isinstance(c, str)]
    if bad:
        raise TypeError(f"metric column names must be strings; got {bad!r}")
    if frame.columns.duplicated().any():
        raise ValueError(f"duplicate metric columns: {sorted(set(frame.columns[frame.columns.duplicated()]))}")
    reserved = sorted(set(frame.columns) & set(KEY_COLUMNS + PROVENANCE_COLUMNS) - {"seed"})
    if reserved:
        raise ValueError(f"metric columns {reserved} are reserved for the store's own columns; rename them")
    return frame.reset_index(drop=True)


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
        return self.root / _PARTS

    @property
    def index_path(self) -> Path:
        return self.root / _INDEX

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
            raise KeyError(f"no result stored for config {_config_json(config)} (hash {h[:12]})")
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
        frame = _rows_frame(rows)
        h = config_hash(canonical)
        info = dict(provenance(wall_time_s) if provenance_info is None else provenance_info)
        if wall_time_s is not None:
            info["wall_time_s"] = float(wall_time_s)
        seed = canonical.get("seed")
        meta = {
            "config": canonical,
            "config_hash": h,
            "hash_scheme": HASH_SCHEME,
            "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            "n_rows": len(frame),
            **{k: info.get(k) for k in ("wall_time_s", "created", "git_commit", "git_dirty", "versions", "host")},
        }
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
            raise TypeError(f"rows cannot be stored as Parquet (mixed or unsupported column types): {err}") from None
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), _METADATA_KEY: json.dumps(meta, allow_nan=False).encode("utf-8")}
        )
        path = self.parts_dir / f"{h}.parquet"
        atomic_write_table(table, path)
        self._index[h] = self._index_entry(h, meta)
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

    def configs(self) -> list[dict[str, Any]]:
        """The configs of all records, oldest first."""
        return [dict(self._index[h]["config"]) for h in self.hashes()]

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
                if configs is not None and missing == "raise":
                    raise KeyError(f"no result stored for config {json.dumps(expected)} (hash {h[:12]})")
                continue
            frames.append(_record_frame(*record, provenance=provenance))
        if not frames:
            columns = list(KEY_COLUMNS) + (list(PROVENANCE_COLUMNS) if provenance else [])
            return pd.DataFrame(columns=columns)
        return pd.concat(frames, ignore_index=True, sort=False)

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _index_entry(h: str, meta: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "config_hash": h,
            "config": meta["config"],
            "seed": meta.get("seed"),
            "created": meta.get("created") or "",
            "n_rows": int(meta.get("n_rows") or 0),
            "wall_time_s": meta.get("wall_time_s"),
        }

    def _remove_stale_temp_files(self) -> None:
        # Leftovers of a writer killed mid-write; a live writer's file is seconds old.
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
                table = pq.read_table(self.index_path).to_pandas()
                for row in table.itertuples(index=False):
                    cached[row.config_hash] = {
                        "config_hash": row.config_hash,
                        "config": json.loads(row.config_json),
                        "seed": None if pd.isna(row.seed) else int(row.seed),
                        "created": row.created,
                        "n_rows": int(row.n_rows),
                        "wall_time_s": None if pd.isna(row.wall_time_s) else float(row.wall_time_s),
                    }
            except Exception as err:  # noqa: BLE001 - any damage means: rebuild from parts/
                self._report("index", self.index_path, f"unreadable index ({err}); rebuilt from part-files", move=False)
                cached = {}
        present = {p.stem for p in self.parts_dir.glob("*.parquet") if not p.name.startswith(TMP_PREFIX)}
        index = {h: entry for h, entry in cached.items() if h in present}
        changed = len(index) != len(cached)
        for h in sorted(present - set(index)):
            meta = self._read_meta(h)
            if meta is not None:
                index[h] = self._index_entry(h, meta)
            changed = True
        self._index = index
        if changed:
            self._write_index()

    def _write_index(self) -> None:
        entries = [self._index[h] for h in sorted(self._index)]
        frame = pd.DataFrame(
            {
                "config_hash": pd.Series([e["config_hash"] for e in entries], dtype="string"),
                "config_json": pd.Series(
                    [json.dumps(e["config"], sort_keys=True) for e in entries], dtype="string"
                ),
                "seed": pd.Series([e["seed"] for e in entries], dtype="Int64"),
                "created": pd.Series([e["created"] for e in entries], dtype="string"),
                "n_rows": pd.Series([e["n_rows"] for e in entries], dtype="int64"),
                "wall_time_s": pd.Series([e["wall_time_s"] for e in entries], dtype="Float64"),
            }
        )
        atomic_write_table(pa.Table.from_pandas(frame, preserve_index=False), self.index_path)

    def _read_meta(self, h: str) -> dict[str, Any] | None:
        """The record metadata of part-file ``h`` (only the footer is read), or None if damaged."""
        path = self.parts_dir / f"{h}.parquet"
        try:
            raw = (pq.read_schema(path).metadata or {}).get(_METADATA_KEY)
            if raw is None:
                raise ValueError("no rmqm record metadata")
            meta = json.loads(raw)
        except FileNotFoundError:
            return None
        except Exception as err:  # noqa: BLE001 - arrow raises many types for damaged files
            self._report(h, path, f"damaged part-file: {err}")
            return None
        reason = _stale_reason(h, meta)
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
            table = pq.read_table(path, page_checksum_verification=True)
            raw = (table.schema.metadata or {}).get(_METADATA_KEY)
            if raw is None:
                raise ValueError("no rmqm record metadata")
            meta = json.loads(raw)
            rows = table.replace_schema_metadata(
                {k: v for k, v in (table.schema.metadata or {}).items() if k != _METADATA_KEY}
            ).to_pandas()
        except Exception as err:  # noqa: BLE001 - arrow raises many types for damaged files
            self._report(h, path, f"damaged part-file: {err}")
            return None
        reason = _stale_reason(h, meta)
        if reason is None and meta.get("n_rows") != len(rows):
            reason = f"damaged part-file: metadata says {meta.get('n_rows')} rows, file holds {len(rows)}"
        if reason is None and expected is not None and meta["config"] != expected:
            reason = "stale: stored config differs from the requested config with the same hash"
        if reason is not None:
            self._report(h, path, reason)
            return None
        if h not in self._index:
            self._index[h] = self._index_entry(h, meta)
            self._write_index()
        return rows, meta

    def _report(self, h: str, path: Path, reason: str, move: bool = True) -> None:
        moved_to = None
        if move and path.exists():
            quarantine = self.root / _QUARANTINE
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


def _stale_reason(h: str, meta: Mapping[str, Any]) -> str | None:
    """Why a record's metadata does not match its key, or None when it does."""
    if not isinstance(meta, Mapping) or "config" not in meta or "config_hash" not in meta:
        return "damaged part-file: incomplete rmqm record metadata"
    try:
        recomputed = config_hash(meta["config"])
    except (TypeError, ValueError) as err:
        return f"stale: stored config cannot be hashed ({err})"
    if meta["config_hash"] != recomputed:
        return (
            f"stale: stored hash {str(meta['config_hash'])[:12]} != recomputed hash {recomputed[:12]} "
            f"of its config (hash scheme {meta.get('hash_scheme')!r}, now {HASH_SCHEME!r})"
        )
    if h != recomputed:
        return f"stale: file name {h[:12]} does not match its config's hash {recomputed[:12]}"
    return None


def _record_frame(rows: pd.DataFrame, meta: Mapping[str, Any], provenance: bool) -> pd.DataFrame:
    """Config columns + key columns (+ provenance) + metric rows of one record."""
    n = len(rows)
    config_cols: dict[str, Any] = {}
    flat = flatten_config(meta["config"])
    if "seed" not in rows.columns and meta.get("seed") is not None:
        flat.pop("seed", None)  # becomes the key column below
    for key, value in flat.items():
        if key in rows.columns:
            same = rows[key].map(lambda v, value=value: _same(v, value)).all()
            if same:
                continue
            key = f"config.{key}"
        config_cols[key] = value
    front = pd.DataFrame({k: [v] * n for k, v in config_cols.items()}, index=range(n))
    front["config_hash"] = meta["config_hash"]
    if "seed" not in rows.columns:
        front["seed"] = pd.array([meta.get("seed")] * n, dtype="Int64")
    if provenance:
        front["wall_time_s"] = meta.get("wall_time_s")
        front["created"] = meta.get("created")
        front["git_commit"] = meta.get("git_commit")
        front["git_dirty"] = meta.get("git_dirty")
        front["versions"] = json.dumps(meta.get("versions"), sort_keys=True)
        front["host"] = meta.get("host")
    return pd.concat([front, rows.reset_index(drop=True)], axis=1)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays etc.
        return False
