"""The on-disk format of the results store: one Parquet part-file per record (metric rows plus
a JSON metadata footer), the index table, and the table a record becomes when read back."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rmqm._utils.hashing import HASH_SCHEME, canonical_config, config_hash, flatten_config

__all__ = [
    'PROVENANCE_COLUMNS', 'KEY_COLUMNS', 'METADATA_KEY', 'PARTS', 'QUARANTINE', 'INDEX', 'StoreWarning',
    'StoreProblem', 'describe_config', 'rows_frame', 'record_meta', 'content_digest', 'encode_record',
    'read_record_meta',
    'read_record', 'stale_reason', 'index_entry', 'index_table', 'read_index', 'record_frame',
]


#: Columns :meth:`rmqm.experiments.store.ResultsStore.to_frame` adds with ``provenance=True``.
PROVENANCE_COLUMNS = ("wall_time_s", "created", "git_commit", "git_dirty", "versions", "host")

#: Columns every table from the store carries besides the config and metric columns.
KEY_COLUMNS = ("config_hash", "seed")

#: Key of the record's JSON metadata in the Parquet schema metadata of a part-file.
METADATA_KEY = b"rmqm.record"

#: Folder of the part-files, folder of the damaged ones, file of the index (inside the store root).
PARTS, QUARANTINE, INDEX = "parts", "quarantine", "index.parquet"


class StoreWarning(UserWarning):
    """A damaged or stale record was found (and moved aside, to be recomputed)."""


@dataclass(frozen=True)
class StoreProblem:
    """One damaged or stale record: its hash, the file, what was wrong, where it went."""

    config_hash: str
    path: str
    reason: str
    moved_to: str | None


def describe_config(config: Mapping[str, Any]) -> str:
    """The canonical JSON of ``config`` (sorted keys), for messages."""
    return json.dumps(canonical_config(config), sort_keys=True)


def rows_frame(rows: Any) -> pd.DataFrame:
    """The metric rows of a record as a DataFrame with a fresh index.

    Args:
        rows: a DataFrame, a dict (one row) or a list of dicts.

    Raises:
        TypeError: another type, or a column name that is not a string.
        ValueError: no rows, no columns, repeated columns, or a column named like the store's own.
    """
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


def record_meta(canonical: dict[str, Any], frame: pd.DataFrame, info: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata footer of a record: its canonical config, hash, seed, row count and provenance ``info``."""
    seed = canonical.get("seed")
    return {
        "config": canonical,
        "config_hash": config_hash(canonical),
        "hash_scheme": HASH_SCHEME,
        "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        "n_rows": len(frame),
        **{k: info.get(k) for k in PROVENANCE_COLUMNS},
    }


def content_digest(table: pa.Table, meta: Mapping[str, Any]) -> str:
    """SHA-256 of a record's content: its column names, every value (``table.to_pydict()``) and its
    metadata but the digest itself (``content_sha256``), as JSON. Parquet's page checksums miss
    the footer, where the metadata lives; this covers both."""
    body = {"columns": table.column_names, "rows": table.to_pydict(),
            "meta": {k: v for k, v in meta.items() if k != "content_sha256"}}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=repr).encode()).hexdigest()


def encode_record(frame: pd.DataFrame, meta: Mapping[str, Any]) -> pa.Table:
    """The Arrow table of a part-file: the rows of ``frame``, ``meta`` (with its
    :func:`content_digest` added as ``content_sha256``) as JSON in the schema metadata.

    Raises:
        TypeError: the rows cannot be stored as Parquet (mixed or unsupported column types).
    """
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
        raise TypeError(f"rows cannot be stored as Parquet (mixed or unsupported column types): {err}") from None
    stored: dict[str, Any] = json.loads(json.dumps(meta, allow_nan=False))  # as it will be read back
    stored["content_sha256"] = content_digest(table, stored)
    return table.replace_schema_metadata(
        {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(stored, allow_nan=False).encode("utf-8")}
    )


def read_record_meta(path: Path) -> dict[str, Any]:
    """The metadata of part-file ``path``, reading only its footer.

    Raises:
        FileNotFoundError: no such file.
        ValueError, OSError, arrow errors: a damaged file or one without record metadata.
    """
    raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError("no rmqm record metadata")
    return json.loads(raw)


def read_record(path: Path) -> tuple[pd.DataFrame, dict[str, Any], str | None]:
    """The metric rows and metadata of part-file ``path`` (page checksums verified), and why its
    content is not what was written (its :func:`content_digest` differs; None when it is).

    Raises:
        ValueError, OSError, arrow errors: a damaged file or one without record metadata.
    """
    table = pq.read_table(path, page_checksum_verification=True)
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError("no rmqm record metadata")
    meta = json.loads(raw)
    table = table.replace_schema_metadata({k: v for k, v in (table.schema.metadata or {}).items() if k != METADATA_KEY})
    damage = None
    if not isinstance(meta, dict) or meta.get("content_sha256") != content_digest(table, meta):
        damage = "its content does not match the SHA-256 recorded when it was written"
    return table.to_pandas(), meta, damage


def stale_reason(h: str, meta: Any) -> str | None:
    """Why the metadata ``meta`` of part-file ``h`` does not match its key, or None when it does."""
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


def index_entry(h: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The index row of record ``h``: hash, config, seed, creation time, row count, wall time."""
    return {
        "config_hash": h,
        "config": meta["config"],
        "seed": meta.get("seed"),
        "created": meta.get("created") or "",
        "n_rows": int(meta.get("n_rows") or 0),
        "wall_time_s": meta.get("wall_time_s"),
    }


def index_table(entries: list[dict[str, Any]]) -> pa.Table:
    """The Arrow table of ``index.parquet`` (configs as sorted JSON, nullable seed and wall time)."""
    frame = pd.DataFrame(
        {
            "config_hash": pd.Series([e["config_hash"] for e in entries], dtype="string"),
            "config_json": pd.Series([json.dumps(e["config"], sort_keys=True) for e in entries], dtype="string"),
            "seed": pd.Series([e["seed"] for e in entries], dtype="Int64"),
            "created": pd.Series([e["created"] for e in entries], dtype="string"),
            "n_rows": pd.Series([e["n_rows"] for e in entries], dtype="int64"),
            "wall_time_s": pd.Series([e["wall_time_s"] for e in entries], dtype="Float64"),
        }
    )
    return pa.Table.from_pandas(frame, preserve_index=False)


def read_index(path: Path) -> dict[str, dict[str, Any]]:
    """The entries of ``index.parquet`` by hash (see :func:`index_entry`).

    Raises:
        Exception: any error of a damaged or unreadable index (the caller rebuilds it).
    """
    entries = {}
    for row in pq.read_table(path).to_pandas().itertuples(index=False):
        entries[row.config_hash] = {
            "config_hash": row.config_hash,
            "config": json.loads(row.config_json),
            "seed": None if pd.isna(row.seed) else int(row.seed),
            "created": row.created,
            "n_rows": int(row.n_rows),
            "wall_time_s": None if pd.isna(row.wall_time_s) else float(row.wall_time_s),
        }
    return entries


def record_frame(rows: pd.DataFrame, meta: Mapping[str, Any], provenance: bool) -> pd.DataFrame:
    """Config columns + key columns (+ provenance) + metric rows of one record.

    Nested config keys are flattened to ``"outer.inner"``. A config key that is also a
    metric column is dropped when the values agree, and renamed ``"config.<key>"`` when
    they differ.
    """
    n = len(rows)
    config_cols: dict[str, Any] = {}
    flat = flatten_config(meta["config"])
    if "seed" not in rows.columns and meta.get("seed") is not None:
        flat.pop("seed", None)  # becomes the key column below
    for key, value in flat.items():
        if key in rows.columns:
            if rows[key].map(lambda v, value=value: _same(v, value)).all():
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
    """``a == b`` as a bool; False when the comparison fails or is not a single truth value."""
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays etc.
        return False
