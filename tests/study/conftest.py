"""Fixtures of the study tests: tiny synthetic notebooks for the runner."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def _write_nb(folder: Path, name: str, params: str, body: list[str], depends_on: Sequence[str] = ()) -> Path:
    cells = [new_markdown_cell(f"# {name}")]
    if params:
        cells.append(new_code_cell(params, metadata={"tags": ["parameters"]}))
    cells += [new_code_cell(src) for src in body]
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "rmqm": {"depends_on": list(depends_on)},
    })
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def write_nb() -> Callable[..., Path]:
    """``write_nb(folder, name, params, body, depends_on=())``: a study notebook with a parameters
    cell (``params``, tagged ``parameters``), one code cell per ``body`` item and its dependencies."""
    return _write_nb
