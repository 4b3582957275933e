"""Atomic file writes: a reader sees the old file or the whole new one, never half of one."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ['TMP_PREFIX', 'fsync_dir', 'atomic_write_table', 'atomic_write_json', 'save_table', 'contained']


#: Name prefix of the temporary files of :func:`atomic_write_table` (a reader skips them).
TMP_PREFIX = ".tmp-"


def fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries to disk so a rename in it survives a crash (best effort:
    silently nothing where the platform cannot open or sync a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_table(table: pa.Table, path: Path) -> None:
    """Write ``table`` to Parquet file ``path`` (with page checksums) so that readers see the old
    file or the whole new one: a uniquely named temporary file, synced, then renamed.

    Raises:
        OSError, arrow errors: the write failed (the temporary file is removed, ``path`` untouched).
    """
    tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}")
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, write_page_checksum=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)


def atomic_write_json(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON (sorted keys; ``repr`` of what JSON cannot hold) to ``path``
    through a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=repr))
    os.replace(tmp, path)


def save_table(table: pd.DataFrame, path: Path) -> None:
    """Save ``table`` as Parquet (``.parquet``) or CSV (any other suffix) through a temporary file
    and a rename, creating the folder; print where it went."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".parquet":
        table.to_parquet(tmp, index=False)
    else:
        table.to_csv(tmp, index=False)
    tmp.replace(path)
    print(f"saved {path}")


def contained(path: str | os.PathLike, folder: str | os.PathLike, what: str = "") -> Path:
    """``path`` resolved (symlinks followed, ``..`` removed), after checking that it lies
    inside ``folder`` (resolved the same way) or is ``folder`` itself; nothing is created.

    Every place a run writes or deletes goes through this, so that a profile named ``..``,
    a symlink in the build folder or a crafted name cannot reach outside it.

    Raises:
        ValueError: ``path`` resolves outside ``folder``; the message names both.
    """
    base = Path(folder).resolve()
    target = Path(path).resolve()
    if target != base and base not in target.parents:
        name = f"{what} " if what else ""
        raise ValueError(f"refusing to write {name}{path}: it resolves to {target}, outside the build folder {base}")
    return target
