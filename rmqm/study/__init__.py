"""The executable study: profiles, notebooks, the runner and the book."""

from rmqm.study.book import BookBuildFailed, build_book, run_info_markdown, stage_book
from rmqm.study.notebooks import (
    NotebookSpec,
    cache_key,
    discover_notebooks,
    execution_order,
    library_fingerprint,
    notebook_parameters,
)
from rmqm.study.profiles import (
    RESERVED_PARAMETERS,
    Profile,
    apply_overrides,
    load_profile,
    parse_overrides,
)
from rmqm.study.run import StudyResult, run_study
from rmqm.study.runner import MANIFEST, NotebookFailed, NotebookRun, run_notebooks

__all__ = [
    "BookBuildFailed", "run_info_markdown", "stage_book", "build_book", "NotebookSpec", "discover_notebooks",
    "execution_order", "notebook_parameters", "library_fingerprint", "cache_key", "RESERVED_PARAMETERS", "Profile",
    "load_profile", "parse_overrides", "apply_overrides", "StudyResult", "run_study", "MANIFEST", "NotebookFailed",
    "NotebookRun", "run_notebooks",
]
