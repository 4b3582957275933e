"""Canonical configs and their hashes, and fingerprints of code, files and tensors: the keys
of every cached result."""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

__all__ = ['HASH_SCHEME', 'canonical_config', 'config_hash', 'flatten_config', 'PACKAGE_DIR',
           'code_modules', 'code_fingerprint', 'code_digests', 'code_manifest', 'file_digest', 'tensors_digest',
           'module_digest', 'PLACE_KEYS', 'content_identity']


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


# -- fingerprints of code, files and tensors ------------------------------------------------

#: The folder of the ``rmqm`` package whose modules :func:`code_fingerprint` reads (the
#: package this module belongs to, wherever it is imported from).
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _module_file(name: str, root: Path) -> Path | None:
    """The source file of module ``name`` (``rmqm.x.y``) under the package folder ``root``."""
    parts = name.split(".")
    if parts[0] != root.name:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


class _Normalised(ast.NodeTransformer):
    """Drops what cannot change a computed value: docstrings and the messages of ``raise``."""

    def _strip_docstring(self, node: ast.AST) -> ast.AST:
        body = getattr(node, "body", None)
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
        return self.generic_visit(node)

    visit_Module = visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _strip_docstring

    def visit_Raise(self, node: ast.Raise) -> ast.AST:
        for sub in ast.walk(node):
            if isinstance(sub, ast.JoinedStr):
                sub.values = []
            elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                sub.value = ""
        return node


def _imports(tree: ast.AST, module: str, is_package: bool, root: Path) -> set[str]:
    """``rmqm`` modules that ``tree`` (the source of ``module``) imports, anywhere in it."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # submodules imported by name
    return {name for name in found if _module_file(name, root) is not None}


def _parents(module: str) -> list[str]:
    """The packages on the way to ``module``: ``rmqm.a.b`` -> ``["rmqm", "rmqm.a"]``."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@functools.lru_cache(maxsize=256)
def _closure(modules: tuple[str, ...], root: Path) -> dict[str, str]:
    """``{module: normalised syntax tree dump}`` of ``modules`` and what they import (see
    :func:`code_fingerprint`)."""
    dumps: dict[str, str] = {}
    trees: dict[str, tuple[ast.AST, bool]] = {}
    followed: set[str] = set()
    todo = [(name, True) for name in modules]
    while todo:
        name, follow = todo.pop()
        if name not in dumps:
            path = _module_file(name, root)
            if path is None:
                raise ModuleNotFoundError(f"no module {name!r} in the package folder {root}")
            text = path.read_text(encoding="utf-8")
            trees[name] = (ast.parse(text, filename=str(path)), path.name == "__init__.py")
            dumps[name] = ast.dump(_Normalised().visit(ast.parse(text)), include_attributes=False)
            todo.extend((parent, False) for parent in _parents(name))  # a package's __init__ runs first
        if follow and name not in followed:  # an __init__ met only on the way is hashed, not followed
            followed.add(name)
            tree, is_package = trees[name]
            todo.extend((dep, True) for dep in _imports(tree, name, is_package, root))
    return dumps


def _names(modules: tuple[str | ModuleType, ...]) -> tuple[str, ...]:
    if not modules:
        raise ValueError("give at least one module")
    return tuple(sorted({m.__name__ if isinstance(m, ModuleType) else str(m) for m in modules}))


def code_modules(*modules: str | ModuleType, package_dir: str | os.PathLike | None = None) -> list[str]:
    """The modules whose code :func:`code_fingerprint` of ``modules`` covers, sorted."""
    root = PACKAGE_DIR if package_dir is None else Path(package_dir).resolve()
    return sorted(_closure(_names(modules), root))


def code_fingerprint(*modules: str | ModuleType, package_dir: str | os.PathLike | None = None) -> str:
    """SHA-256 (hex) of the code of ``modules`` and of every ``rmqm`` module they import.

    The closure follows the ``import rmqm.x`` and ``from rmqm.x import y`` statements of
    each module (``y`` too when it is a module) and adds the ``__init__`` of every package
    on the way. Each module contributes its name and its syntax tree without docstrings
    and without the messages of ``raise`` statements, so comments, docstrings, error
    texts and layout do not count and code does. Cached per process (the source files
    are read once).

    Args:
        modules: module names (``"rmqm.metrics.rmqm.manifold"``) or module objects of
            the ``rmqm`` package.
        package_dir: the package's folder (its name is the package's name); default
            :data:`PACKAGE_DIR`, the package this module belongs to.

    Raises:
        ValueError: no module given.
        ModuleNotFoundError: a name is no module of the package.
    """
    root = PACKAGE_DIR if package_dir is None else Path(package_dir).resolve()
    dumps = _closure(_names(modules), root)
    digest = hashlib.sha256(f"{HASH_SCHEME}\ncode\n".encode())
    for name in sorted(dumps):
        digest.update(f"{name}\0{dumps[name]}\0".encode())
    fingerprint = digest.hexdigest()
    if fingerprint not in _MODULE_DIGESTS:  # cheap after the first call: the closure is cached too
        _MODULE_DIGESTS[fingerprint] = {name: _module_sha(dumps[name]) for name in sorted(dumps)}
    return fingerprint


#: Per-module digests of every fingerprint this process computed (a memo: what
#: :func:`code_manifest` answers). Fingerprints are content hashes, so an entry never goes stale.
_MODULE_DIGESTS: dict[str, dict[str, str]] = {}


def _module_sha(dump: str) -> str:
    return hashlib.sha256(dump.encode()).hexdigest()


def code_digests(*modules: str | ModuleType, package_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """``{module: SHA-256 of its normalised code}`` over the closure that :func:`code_fingerprint`
    of ``modules`` hashes: which module a changed fingerprint comes from.

    Raises:
        ValueError: no module given.
        ModuleNotFoundError: a name is no module of the package.
    """
    return dict(code_manifest(code_fingerprint(*modules, package_dir=package_dir)) or {})


def code_manifest(fingerprint: str) -> dict[str, str] | None:
    """The per-module digests behind a :func:`code_fingerprint` that this process computed, or
    None for a fingerprint it has not seen (e.g. one read from an old record)."""
    found = _MODULE_DIGESTS.get(fingerprint)
    return dict(found) if found is not None else None


@functools.lru_cache(maxsize=4096)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_digest(path: str | os.PathLike, *, cached: bool = True) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks (with ``cached``, remembered per
    process by path, size and modification time; ``cached=False`` always reads the bytes, so
    a changed byte that kept size and time is seen).

    Raises:
        FileNotFoundError: ``path`` is not a file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cannot hash {path}: not a file")
    stat = path.stat()
    read = _file_sha256 if cached else _file_sha256.__wrapped__
    return read(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


#: Keys of a data identity that name where something lives on this machine, not what it holds.
PLACE_KEYS: tuple[str, ...] = ("folder",)


def content_identity(value: Any) -> Any:
    """``value`` (nested dicts and lists, e.g. a :func:`rmqm.data.registry.data_identity`)
    without the :data:`PLACE_KEYS` at any depth: what a cache key may hold. A data or build
    folder moved to another place or machine then keeps its keys (the file hashes stay)."""
    if isinstance(value, Mapping):
        return {k: content_identity(v) for k, v in value.items() if k not in PLACE_KEYS}
    if isinstance(value, (list, tuple)):
        return [content_identity(v) for v in value]
    return value


def tensors_digest(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 (hex) of named tensors: each name, dtype, shape and the raw bytes (CPU copy).

    Equal digests mean bit-identical tensors; the order of ``named`` counts.
    """
    digest = hashlib.sha256(f"{HASH_SCHEME}\ntensors\n".encode())
    for name, tensor in named:
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(tensor).__name__}")
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}\0{t.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def module_digest(module: torch.nn.Module) -> str:
    """SHA-256 (hex) of a torch module's identity: its structure (``repr``: layers and their
    settings), its parameters and buffers (bit for bit) and the code fingerprint of the
    ``rmqm`` classes it is built from (their ``forward`` runs when it is applied)."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module; got {type(module).__name__}")
    own = sorted({type(m).__module__ for m in module.modules() if type(m).__module__.split(".")[0] == PACKAGE_DIR.name})
    head = json.dumps({"repr": repr(module), "code": code_fingerprint(*own) if own else None})
    return hashlib.sha256((head + tensors_digest(module.state_dict().items())).encode()).hexdigest()
