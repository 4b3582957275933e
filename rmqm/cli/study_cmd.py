"""``rmqm study`` / ``python -m rmqm.study``: run the study and build the book."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from rmqm.study.book import BookBuildFailed
from rmqm.study.profiles import parse_overrides
from rmqm.study.run import run_study
from rmqm.study.runner import NotebookFailed

__all__ = ['main']


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rmqm.study", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the notebooks of a profile and build the book")
    run.add_argument("--profile", default="default", help="tiny, default, paper or a YAML path")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a parameter (YAML value); NOTEBOOK.KEY=VALUE for one notebook")
    run.add_argument("--force", action="store_true", help="re-execute cached notebooks")
    run.add_argument("--no-book", action="store_true", help="execute the notebooks only")
    run.add_argument("--build-dir", default=None, help="default: ./build")
    run.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        result = run_study(
            args.profile, parse_overrides(args.overrides), build_dir=args.build_dir,
            build=not args.no_book, force=args.force, progress=not args.no_progress,
        )
    except (NotebookFailed, BookBuildFailed, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total = sum(r.wall_s for r in result.runs if r.status == "executed")
    print(f"{len(result.runs)} notebooks ({sum(r.status == 'cached' for r in result.runs)} cached), "
          f"{total:.1f} s executing")
    return 0
