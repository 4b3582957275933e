"""Integrity of zoo checkpoints: the content digest recorded in each file and checked on every
read, and the quarantine folder a damaged file is moved to (loudly) before it is retrained."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rmqm._utils.hashing import tensors_digest

__all__ = ['CheckpointWarning', 'payload_digest', 'quarantine_checkpoint']


class CheckpointWarning(UserWarning):
    """A zoo checkpoint was damaged and moved to the zoo's ``quarantine/`` folder."""


def payload_digest(payload: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint payload's content: every entry but ``content_sha256`` as
    JSON, and the encoder's and head's tensors bit for bit
    (:func:`rmqm._utils.hashing.tensors_digest`)."""
    meta = {k: v for k, v in payload.items() if k not in ("content_sha256", "encoder_state", "head_state")}
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True, default=repr).encode())
    for key in ("encoder_state", "head_state"):
        state = payload.get(key)
        digest.update(f"\0{key}\0".encode())
        if state is not None:
            digest.update(tensors_digest(sorted(state.items())).encode())
    return digest.hexdigest()


def quarantine_checkpoint(path: str | os.PathLike, reason: str) -> Path:
    """Move the damaged checkpoint ``path`` to ``<its folder>/quarantine/`` (name stamped with
    the UTC time) and warn loudly (:class:`CheckpointWarning`) naming both places.

    Returns:
        The new path of the file.
    """
    path = Path(path)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    dest = path.parent / "quarantine" / f"{path.name}.{stamp}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dest)
    warnings.warn(f"damaged zoo checkpoint {path} moved to {dest}: {reason}", CheckpointWarning, stacklevel=2)
    return dest
