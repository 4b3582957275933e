"""Canonical configs and their hashes: the keys of every cached result."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Mapping

import numpy as np

__all__ = ['HASH_SCHEME', 'canonical_config', 'config_hash', 'flatten_config']


#: Salt of :func:`config_hash`. Changing how configs are canonicalised must change it,
#: so that records hashed the old way are detected as stale instead of reused.
HASH_SCHEME = "rmqm-store-v1"


def _canonical(value: Any, where: str) -> Any:
    """A JSON-ready copy of ``value`` with a unique form (tuples -> lists, numpy -> python)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            raise ValueError(f"config value at {where} is {f}; configs must hold finite numbers")
        # 1.0 and 1 are different configs on purpose: the job sees different types.
        return f
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"config keys must be strings; got {type(key).__name__} key {key!r} at {where}"
                )
            if key == "" or "." in key:
                raise ValueError(f"config key {key!r} at {where} must be non-empty and contain no '.'")
            out[key] = _canonical(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(
        f"config value at {where} has type {type(value).__name__}; configs may only hold "
        "str, int, float, bool, None, lists and dicts of them (so that they hash and store exactly)"
    )


def canonical_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical, JSON-ready form of a config (validated).

    Raises:
        TypeError: ``config`` is not a mapping, has a non-string key or holds an
            object that JSON cannot represent exactly.
        ValueError: a key is empty or contains ``"."``, or a float is NaN/inf.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict; got {type(config).__name__}")
    return _canonical(config, "config")


def _config_json(config: Mapping[str, Any]) -> str:
    return json.dumps(canonical_config(config), sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 (hex, 64 characters) of the canonical JSON of ``config``, salted with :data:`HASH_SCHEME`.

    Key order does not matter; ``1`` and ``1.0`` differ; tuples and lists are the same.
    """
    payload = (HASH_SCHEME + "\n" + _config_json(config)).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts flattened to ``"outer.inner"`` keys; lists become tuples (hashable cells)."""
    out: dict[str, Any] = {}
    for key, value in canonical_config(config).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten_config(value, prefix=f"{name}."))
        elif isinstance(value, list):
            out[name] = _tuplify(value)
        else:
            out[name] = value
    return out


def _tuplify(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value
