"""run_study: execute a profile's notebooks and build the book, in one call."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from rmqm.study.book import build_book, stage_book
from rmqm.study.profiles import Profile, apply_overrides, load_profile
from rmqm.study.runner import NotebookRun, run_notebooks

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
    """
    root = Path(root)
    prof = profile if isinstance(profile, Profile) else load_profile(profile, root / "profiles")
    prof = apply_overrides(prof, overrides or {})
    out_dir = Path(build_dir if build_dir is not None else root / "build") / prof.name
    runs = run_notebooks(prof, root / "notebooks", out_dir, force=force, progress=progress, log=log)
    html = None
    if build:
        html = build_book(stage_book(root, out_dir), log=log)
        log(f"book built: {html / 'index.html'}")
    return StudyResult(runs, html)
