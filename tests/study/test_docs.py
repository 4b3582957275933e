"""The code of the user documentation runs: book/own_encoder.md and README's "Evaluate your own encoder".

Every ```python block of a page is executed in page order in one namespace per page, in a temporary
working directory (the checkpoint example writes a file). A traceback points at the page's own line
numbers, so a broken example names the line to fix.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)

# page -> heading of the section whose code runs (None: the whole page)
PAGES: dict[str, str | None] = {
    "book/own_encoder.md": None,
    "README.md": "Evaluate your own encoder",
}


def section(text: str, heading: str | None) -> tuple[str, int]:
    """The text under the ``##`` heading named ``heading`` up to the next heading of level <= 2, and the
    number of lines before it in ``text``; the whole text and 0 for ``heading=None``.

    Raises:
        LookupError: no ``#`` or ``##`` heading reads ``heading``.
    """
    if heading is None:
        return text, 0
    match = re.search(rf"^#{{1,2}} {re.escape(heading)}[ \t]*$", text, re.MULTILINE)
    if match is None:
        raise LookupError(f"no heading {heading!r}")
    end = re.search(r"^#{1,2} ", text[match.end() :], re.MULTILINE)
    body = text[match.start() : match.end() + end.start()] if end else text[match.start() :]
    return body, text.count("\n", 0, match.start())


def python_blocks(path: Path, heading: str | None = None) -> list[tuple[int, str]]:
    """The ```python blocks of ``path`` (under ``heading``) as (first code line, 1-based; code)."""
    body, offset = section(path.read_text(encoding="utf-8"), heading)
    return [(offset + body.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in FENCE.finditer(body)]


def test_extracts_blocks_with_their_line_numbers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n```python\na = 1\n```\n\n## Part\n\ntext\n\n```python\nb = a + 1\n\n```\n"
        "```bash\nnot python\n```\n## Next\n```python\nc = 3\n```\n",
        encoding="utf-8",
    )
    assert python_blocks(page) == [(4, "a = 1\n"), (12, "b = a + 1\n\n"), (20, "c = 3\n")]
    assert python_blocks(page, "Part") == [(12, "b = a + 1\n\n")]
    with pytest.raises(LookupError, match="Missing"):
        python_blocks(page, "Missing")


@pytest.mark.slow
@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_code_runs(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = ROOT / page
    blocks = python_blocks(path, PAGES[page])
    assert blocks, f"{page}: no ```python block found under {PAGES[page]!r}"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs:{page}"}
    for first_line, code in blocks:
        # pad with blank lines so that a traceback shows the page's line numbers
        exec(compile("\n" * (first_line - 1) + code, str(path), "exec"), namespace)
    assert "encoder" in namespace, f"{page}: the examples should end with an encoder built"
