"""``rmqm study run`` (``python -m rmqm study run``): run the study and build the book;
``rmqm study explain``: why its results were recomputed.

Everything is checked before the first notebook runs: the options when parsed (a
``--build-dir`` that is a file, or inside one, is an argparse error, exit status 2), then
the merged profile against :mod:`rmqm.study.schema` (every bad ``--set`` value named in
one message). Exit status: 0 done; 1 the study could not start or failed (an
``error: ...`` line, never a traceback); 2 a bad command line; 130 interrupted (Ctrl-C;
finished notebooks are kept). A profile with factory encoder specs runs code: it needs
``--allow-code`` (or ``RMQM_ALLOW_CODE=1``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rmqm._utils.io import save_table
from rmqm.cli.common import INTERRUPTED, output_file_arg, output_folder_arg
from rmqm.experiments.explain import recompute_reports, recompute_summary
from rmqm.study.allow_code import ALLOW_CODE_ENV
from rmqm.study.book import BookBuildFailed
from rmqm.study.manifest import BuildFolderBusy
from rmqm.study.profiles import parse_overrides
from rmqm.study.run import run_study
from rmqm.study.runner import NotebookFailed

__all__ = ['add_study_arguments', 'study_command', 'explain_command', 'study_subcommand', 'main']


def add_study_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``run`` action and its options to ``parser`` (``rmqm study``, ``python -m rmqm study``)."""
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = sub.add_parser("run", help="execute the notebooks of a profile and build the book")
    run.add_argument("--profile", default="default", help="tiny, default, paper or a YAML path")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a parameter (YAML value); NOTEBOOK.KEY=VALUE for one notebook")
    run.add_argument("--force", action="store_true", help="re-execute cached notebooks")
    run.add_argument("--no-book", action="store_true", help="execute the notebooks only")
    run.add_argument("--build-dir", default=None, type=output_folder_arg, help="default: ./build")
    run.add_argument("--no-progress", action="store_true", help="hide papermill's progress bars")
    run.add_argument("--allow-code", action="store_true",
                     help="let the profile's factory encoder specs (factory: 'module:function') import and run "
                          f"code; the same as {ALLOW_CODE_ENV}=1. Only for code you trust")
    explain = sub.add_parser("explain", help="say why results were recomputed: which part of each key changed")
    explain.add_argument("--profile", default="default", help="the profile whose build folder to read")
    explain.add_argument("--build-dir", default=None, help="default: ./build")
    explain.add_argument("--out", type=output_file_arg(), default=None,
                         help="also write every change, one row per record and reason (.csv or .parquet)")
    parser.set_defaults(func=study_subcommand)
    return parser


def explain_command(args: argparse.Namespace) -> int:
    """``rmqm study explain``: the recompute logs of a build's results stores
    (:mod:`rmqm.experiments.explain`), one line per reason with its count; returns the exit status."""
    build = Path(args.build_dir) if args.build_dir else Path("build")
    results = build / Path(args.profile).stem / "results"
    if not results.is_dir():
        print(f"error: no results folder {results} (run `rmqm study run --profile {args.profile}` first)",
              file=sys.stderr)
        return 1
    tables = []
    for store, changes in recompute_reports(results):
        print(f"{store}: {changes['entry'].nunique()} computations logged")
        for line in recompute_summary(changes):
            print(f"  {line}")
        tables.append(changes.assign(store=str(store)))
    if not tables:
        print(f"nothing was computed in {results} since recompute logging began")
    if args.out and tables:
        save_table(pd.concat(tables, ignore_index=True), Path(args.out))
    return 0


def study_command(args: argparse.Namespace) -> int:
    """Run the study the parsed ``args`` describe (``run``; ``explain``: :func:`explain_command`);
    returns the exit status (0, 1 or 130 after Ctrl-C).

    A missing profile, a bad parameter value or path, a file-system error, a failed
    notebook or book build is printed as one ``error: ...`` line on stderr (status 1).
    """
    if args.action == "explain":
        return explain_command(args)
    if getattr(args, "allow_code", False):
        os.environ[ALLOW_CODE_ENV] = "1"  # this process and the notebooks' kernels
    try:
        result = run_study(
            args.profile, parse_overrides(args.overrides), build_dir=args.build_dir,
            build=not args.no_book, force=args.force, progress=not args.no_progress,
        )
    except (NotebookFailed, BookBuildFailed, BuildFolderBusy, ValueError, TypeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RecursionError:
        print("error: the profile or an override is nested too deeply to read", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C); finished notebooks are kept in the build folder, rerun to go on",
              file=sys.stderr)
        return INTERRUPTED
    total = sum(r.wall_s for r in result.runs if r.status == "executed")
    print(f"{len(result.runs)} notebooks ({sum(r.status == 'cached' for r in result.runs)} cached), "
          f"{total:.1f} s executing")
    return 0


def study_subcommand(args: argparse.Namespace) -> None:
    """:func:`study_command` for ``rmqm study``: returns None when done, else exits with its status."""
    code = study_command(args)
    if code:
        raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """``rmqm study run [options]``; returns the exit status (argparse errors exit 2)."""
    parser = argparse.ArgumentParser(prog="rmqm study", description=__doc__.split("\n\n")[0])
    args = add_study_arguments(parser).parse_args(argv)
    return study_command(args)
