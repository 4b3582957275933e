"""The executable study: profiles, notebooks, the runner and the book."""

from rmqm.study.book import BookBuildFailed, run_info_markdown, stage_book, build_book, StudyResult, run_study
from rmqm.study.notebooks import NotebookSpec, discover_notebooks, execution_order, notebook_parameters, library_fingerprint, cache_key
from rmqm.study.profiles import RESERVED_PARAMETERS, Profile, load_profile, parse_overrides, apply_overrides
from rmqm.study.runner import MANIFEST, NotebookFailed, NotebookRun, run_notebooks

__all__ = ['BookBuildFailed', 'run_info_markdown', 'stage_book', 'build_book', 'StudyResult', 'run_study', 'NotebookSpec', 'discover_notebooks', 'execution_order', 'notebook_parameters', 'library_fingerprint', 'cache_key', 'RESERVED_PARAMETERS', 'Profile', 'load_profile', 'parse_overrides', 'apply_overrides', 'MANIFEST', 'NotebookFailed', 'NotebookRun', 'run_notebooks']
