"""run_study: execute a profile's notebooks and build the book, in one call.

Everything that can be checked without running is checked first: the merged profile
(after the overrides) against :mod:`rmqm.study.schema`, the user's own ``encoders`` (each
loaded and run on one small batch, :func:`rmqm.study.encoders.check_profile_encoders`), and
the build folder; a bad value, spec or path fails before any notebook starts, not in the
notebook that would have used it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmqm._utils.io import contained
from rmqm.study.book import build_book, stage_book
from rmqm.study.encoders import check_profile_encoders
from rmqm.study.manifest import build_lock
from rmqm.study.notebooks import check_profile, discover_notebooks, execution_order
from rmqm.study.profiles import Profile, apply_overrides, load_profile
from rmqm.study.runner import NotebookRun, run_notebooks
from rmqm.study.schema import check_output_folder, validate_profile

__all__ = ["StudyResult", "run_study"]


@dataclass(frozen=True)
class StudyResult:
    """The notebooks' runs and the book's HTML folder (None with ``build=False``)."""

    runs: list[NotebookRun]
    html: Path | None


def run_study(
    profile: str | Profile,
    overrides: Mapping[str, Any] | None = None,
    *,
    root: str | os.PathLike = ".",
    build_dir: str | os.PathLike | None = None,
    build: bool = True,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> StudyResult:
    """Execute a profile's notebooks and build the book (see the module docstring).

    Args:
        profile: a profile name (``profiles/<name>.yaml`` under ``root``) or a :class:`Profile`.
        overrides: ``{key: value}`` as from :func:`parse_overrides`.
        root: the repository root (holds ``notebooks/``, ``profiles/``, ``book/``, ...).
        build_dir: where the profile's folder goes; default ``root/build``.
        build: also build the book.
        force: execute every notebook even if cached.
        progress: show papermill's progress bars.
        log: where progress lines go.

    Raises:
        FileNotFoundError: no such profile (or base profile).
        ValueError: a bad profile file, a parameter value the schema refuses (one message
            naming every bad value), an ``encoders`` spec that does not load or run
            (:class:`rmqm.study.encoders.EncoderSpecError`, naming every bad spec; relative
            checkpoint paths are taken from ``root``; a factory spec without
            ``RMQM_ALLOW_CODE=1``), a per-notebook parameter its notebook does not declare, a
            profile folder that resolves outside the build folder, or a build folder that is
            empty, a file or cannot be created; all raised before anything is written.
        rmqm.study.runner.NotebookFailed: a notebook cell raised.
        rmqm.study.book.BookBuildFailed: jupyter-book failed.
    """
    root = Path(root)
    prof = profile if isinstance(profile, Profile) else load_profile(profile, root / "profiles")
    prof = validate_profile(apply_overrides(prof, overrides or {}))
    check_profile(prof, execution_order(discover_notebooks(root / "notebooks")))  # per-notebook keys too
    check_profile_encoders(prof, base_dir=root)  # loads and runs each of the user's encoders (CPU)
    if build_dir is not None and not str(build_dir).strip():
        raise ValueError("the build folder is an empty path; give a folder (default: ./build)")
    folder = check_output_folder(Path(build_dir) if build_dir is not None else root / "build", "build folder")
    out_dir = contained(check_output_folder(folder / prof.name, "build folder"), folder, "the profile's folder")
    with build_lock(out_dir):  # the book build too: a second run must not restage under it
        runs = run_notebooks(prof, root / "notebooks", out_dir, force=force, progress=progress, log=log, root=root)
        html = None
        if build:
            # the reader checks' screenshots (every page, desktop and phone width) go to artifacts/
            html = build_book(stage_book(root, out_dir, build_dir=folder), log=log,
                              screenshots=root / "artifacts" / "screenshots" / prof.name)
            log(f"book built: {html / 'index.html'}")
    return StudyResult(runs, html)
