"""The ``.npz`` cache of converted data arrays (:mod:`rmqm.data.packages`): written atomically
with a SHA-256 of its content inside, checked on every read; a damaged file is renamed
``*.corrupt`` (loudly) and the arrays are converted again, never used and never a crash."""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
import warnings
from pathlib import Path

import numpy as np

from rmqm._utils.io import fsync_dir

__all__ = ["DataCacheWarning", "cache_path", "read_cache", "write_cache"]

_DIGEST_KEY = "__content_sha256__"


class DataCacheWarning(UserWarning):
    """A damaged ``.npz`` cache file was renamed ``*.corrupt``; the data is converted again."""


def cache_path(cache_dir: Path, stem: str, sha256: str) -> Path:
    """The cache file of ``stem`` under key ``sha256`` in ``cache_dir``."""
    return cache_dir / f"{stem}-{sha256[:16]}.npz"


def _arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of named arrays: each name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        digest.update(f"{k}\0{a.dtype.str}\0{a.shape}\0".encode() + a.tobytes())
    return digest.hexdigest()


def read_cache(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays of cache file ``path``, or None when it is missing; a file that is unreadable
    or whose content does not match the digest stored in it is renamed ``*.corrupt`` (with a
    :class:`DataCacheWarning`) and None returned, so that it is converted again."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays, stored = {k: npz[k] for k in keys}, str(npz[_DIGEST_KEY])
        problem = None if stored == _arrays_digest(arrays) else "its content does not match the digest stored in it"
    except Exception as err:  # noqa: BLE001 - zipfile, zlib and numpy raise many types on damage
        problem = f"{type(err).__name__}: {err}"
    if problem is None:
        return arrays
    with contextlib.suppress(OSError):
        os.replace(path, path.with_name(path.name + ".corrupt"))
    warnings.warn(f"damaged data cache {path} renamed {path.name}.corrupt ({problem}); converting it again",
                  DataCacheWarning, stacklevel=3)
    return None


def write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically (temporary file, fsync, rename); best effort:
    an unwritable cache folder only costs a rebuild next time."""
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays, **{_DIGEST_KEY: np.array(_arrays_digest(arrays))})  # type: ignore[arg-type]
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError:
        pass
    finally:
        if tmp.exists():
            tmp.unlink()
