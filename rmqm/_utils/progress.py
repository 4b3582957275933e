"""Progress bars that render in a papermill-executed notebook and on the runner's console.

Plain :class:`tqdm.tqdm` on ``stderr``, not ``tqdm.auto``: the notebook bar needs ipywidgets,
which the project does not install (``tqdm.auto`` warns on import in such a kernel). In a Jupyter
kernel the bar writes to the process's file descriptor 2, which ipykernel forwards both to the
notebook's output and to the console that runs papermill (its ``sys.stderr`` object reaches the
notebook only: the kernel is started ``quiet``); the book merges the ``\\r`` updates of a stream
into its last state (myst-nb's ``nb_merge_streams``).

The rule for showing a bar (:func:`progress_enabled`): the caller's ``enabled`` flag, then the
environment variable ``RMQM_PROGRESS`` (``0``/``false``/``off``/``no`` hides every bar, ``1``/
``true``/``on``/``yes`` shows them), else hidden where ``CI`` is set (continuous integration:
logs, not consoles) and shown otherwise. Where ``stderr`` is not a terminal (a notebook, a log
file) a bar redraws at most every :data:`NON_TTY_INTERVAL_S` seconds, so that an executed notebook
keeps a few hundred updates of an hour-long loop, not tens of thousands.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from tqdm import tqdm

__all__ = ['ENV_VAR', 'NON_TTY_INTERVAL_S', 'LABEL_KEYS', 'describe', 'progress_enabled', 'progress_bar', 'progress',
           'child_environ', 'child_progress']

ENV_VAR = "RMQM_PROGRESS"
NON_TTY_INTERVAL_S = 5.0
_ON, _OFF = {"1", "true", "on", "yes"}, {"0", "false", "off", "no"}
#: The entries of a job's config that name it on a bar: the encoder and the stage.
LABEL_KEYS = ("model", "method", "dim", "optimizer", "seed", "perturbation", "pgd_mode", "table")

T = TypeVar("T")


def progress_enabled(enabled: bool = True, environ: dict[str, str] | None = None) -> bool:
    """Whether a bar shows: ``enabled`` and the rule of the module docstring.

    Args:
        enabled: the caller's wish (e.g. ``progress=False`` of a library function).
        environ: the environment to read (default: ``os.environ``).

    Raises:
        ValueError: ``RMQM_PROGRESS`` holds a value that is neither on nor off.
    """
    if not enabled:
        return False
    env = os.environ if environ is None else environ
    value = env.get(ENV_VAR, "").strip().lower()
    if value in _OFF:
        return False
    if value in _ON:
        return True
    if value:
        raise ValueError(f"{ENV_VAR} must be one of {sorted(_ON | _OFF)} (or unset); got {env[ENV_VAR]!r}")
    return not env.get("CI")


@contextlib.contextmanager
def child_environ(name: str, value: str) -> Iterator[None]:
    """While the block runs, the environment variable ``name`` is ``value`` in this process and in
    the processes started from it (notebook kernels); its previous value (or absence) is restored
    afterwards."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@contextlib.contextmanager
def child_progress(enabled: bool) -> Iterator[None]:
    """While the block runs, processes started from it (notebook kernels) inherit
    ``RMQM_PROGRESS=0`` when ``enabled`` is False; with True the environment is left as it is.
    The previous value is restored afterwards."""
    if enabled:
        yield
        return
    with child_environ(ENV_VAR, "0"):
        yield


def describe(config: Mapping[str, Any], keys: Sequence[str] = LABEL_KEYS) -> str:
    """The values of ``config``'s :data:`LABEL_KEYS` entries (those it has), space-separated: the
    text that names a job on a bar, e.g. ``"lenet-nt-xent-d16-s0 0 pgd own-loss"``."""
    return " ".join(str(config[k]) for k in keys if k in config and not isinstance(config[k], (Mapping, list)))


def _stream() -> Any:
    """``sys.stderr``; in an ipykernel that captures file descriptor 2 (its default), the process's
    own ``sys.__stderr__``: the kernel forwards what reaches that descriptor both to the notebook
    and to the console that started it (its ``sys.stderr`` object reaches the notebook only)."""
    if getattr(sys.stderr, "_original_stdstream_copy", None) is not None and sys.__stderr__ is not None:
        return sys.__stderr__
    return sys.stderr


def progress_bar(iterable: Iterable[T] | None = None, *, desc: str, total: int | None = None, unit: str = "it",
                 enabled: bool = True, leave: bool = True, **kwargs: Any) -> tqdm:
    """A plain :class:`tqdm.tqdm` on ``sys.stderr`` named ``desc``, hidden by :func:`progress_enabled`.

    Args:
        iterable: what to iterate over (None: update the bar by hand).
        desc: the stage, e.g. ``"SynBench"``; the item it is on goes in ``set_postfix_str``.
        total: the number of items (default: ``len(iterable)`` where it has one).
        unit, leave, **kwargs: as :class:`tqdm.tqdm`.
    """
    stream = _stream()
    interactive = bool(getattr(stream, "isatty", lambda: False)())
    kwargs.setdefault("mininterval", 0.1 if interactive else NON_TTY_INTERVAL_S)
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, file=stream,
                disable=not progress_enabled(enabled), dynamic_ncols=interactive, **kwargs)


def progress(items: Iterable[T], desc: str, *, total: int | None = None, label: Callable[[T], object] | None = None,
             unit: str = "it", enabled: bool = True) -> Iterator[T]:
    """Iterate over ``items`` under a :func:`progress_bar` whose postfix names the current item.

    Args:
        items: the loop's items (e.g. ``zoo.itertuples()``).
        desc: the stage.
        total: the number of items where ``items`` has no ``len`` (e.g. ``len(zoo)``).
        label: the text of an item in the bar (e.g. ``lambda row: row.name``; default: none).
    """
    with progress_bar(items, desc=desc, total=total, unit=unit, enabled=enabled) as bar:
        for item in bar:
            if label is not None:
                bar.set_postfix_str(str(label(item)))  # drawn now: the item may take minutes
            yield item
