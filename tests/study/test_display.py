"""What a chapter shows a reader (rmqm.study.display): prose headlines, compact tables, downloads."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest
from markdown_it import MarkdownIt

from rmqm.study import display


def rendered_text(markdown: str) -> str:
    """The text a reader sees once the Markdown is rendered (tags stripped)."""
    return re.sub(r"<[^>]+>", "", MarkdownIt().render(markdown)).strip()


def test_finding_is_prose_that_reads_as_written():
    line = "faces_knn: best nt-xent at d=16, 0.913 [0.862, 0.965]; *not* $x$ | 2 < 3"
    out = display.finding(line)
    assert out._repr_markdown_() == str(out) and not str(out).startswith("- ")
    assert rendered_text(out) == line.replace("<", "&lt;")  # no emphasis, link, math or table made of it
    many = display.finding(["first  line", "", "second"], bold_first=True)
    assert str(many) == "- **first line**\n- second"
    with pytest.raises(ValueError, match="at least one"):
        display.finding(["", " "])


def test_table_is_compact_without_index_and_rounded():
    df = pd.DataFrame({"method": ["a|b", "<c>"], "r": [0.12345, np.nan], "n": [3, 4], "x": [np.inf, 1.0]},
                      index=[10, 11])
    out = display.table(df, {"method": "encoder", "r": "rank r", "x": "x"}, round={"r": 2})
    assert out._repr_html_() == str(out)
    cells = re.findall(r"<t[dh](?: [^>]*)?>(.*?)</t[dh]>", out)
    assert cells == ["encoder", "rank r", "x", "a|b", "0.12", "+inf", "&lt;c&gt;", "none", "1"]
    assert "10" not in cells and "table-layout:fixed;width:100%" in out  # no index; wraps in the column
    assert "<caption" in display.table(df, caption="c")


def test_table_refuses_a_dump():
    wide = pd.DataFrame(np.zeros((2, display.MAX_COLUMNS + 1)))
    with pytest.raises(ValueError, match="download"):
        display.table(wide)
    with pytest.raises(ValueError, match="download"):
        display.table(pd.DataFrame({"a": range(display.MAX_ROWS + 1)}))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['zz'\]"):
        display.table(pd.DataFrame({"a": [1]}), ["zz"])


def test_download_writes_the_csv_and_links_the_same_bytes(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    out = display.download(df, "full_table", tmp_path / "results")
    written = (tmp_path / "results" / "full_table.csv").read_text()
    assert pd.read_csv(tmp_path / "results" / "full_table.csv").equals(df)
    data = re.search(r'href="data:text/csv;base64,([^"]+)"', out).group(1)
    assert base64.b64decode(data).decode() == written and 'download="full_table.csv"' in out
    assert "(CSV, 2 rows, 2 columns)" in out
    named = display.download(df.rename_axis("idx"), "t")  # a named index is kept
    assert "3 columns" in named and base64.b64decode(re.search(r"base64,([^\"]+)", named).group(1)).startswith(b"idx,")
    with pytest.raises(ValueError, match="file stem"):
        display.download(df, "../escape")
