"""rmqm.study.html_check on small hand-written pages (each rule planted once), and on the built
tiny book (slow): the real book has no problem, and a control character and a MathJax error
planted into copies of its pages are both caught (the latter by the browser check)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rmqm.study.html_check import Problem, check_html_book, check_html_page, html_pages

CLEAN = """<!DOCTYPE html>
<html><head><title>ok</title><script>var s = "$$\\\\frac{a}{b}$$";</script></head>
<body><nav><img src="logo.png"></nav>
<article><section id="s"><h1>Results</h1>
<p>Inline math <span class="math notranslate nohighlight">\\(\\frac{a}{b}\\)</span> and</p>
<div class="math notranslate nohighlight">\\[\\sum_i x_i\\]</div>
<pre>echo $$ \\frac</pre><p>Prices in $ and 5 $ are fine; so is C:\\ and a lone \\ .</p>
<table><thead><tr><th>model</th><th>acc</th></tr></thead><tbody><tr><td>a</td><td>0.91</td></tr>
<tr><td>nanogpt</td><td>0.5</td></tr></tbody></table>
<figure><img src="f.png" alt="accuracy against epsilon"><figcaption><p>Figure 1: accuracy.</p></figcaption></figure>
<a href="https://example.org"><img src="badge.svg" alt="a badge"></a>
</section></article></body></html>
"""


def page(tmp_path: Path, body: str, name: str = "p.html") -> Path:
    path = tmp_path / name
    path.write_text(f"<html><head><title>t</title></head><body><article><section>{body}</section></article></body></html>")
    return path


def kinds(problems: list[Problem]) -> list[str]:
    return [p.kind for p in problems]


def test_clean_page_has_no_problem(tmp_path):
    path = tmp_path / "clean.html"
    path.write_text(CLEAN)
    assert check_html_page(path) == []


def test_control_character_in_text_and_attribute_found(tmp_path):
    problems = check_html_page(page(tmp_path, "<p>the \x08eta of the test</p>"))
    assert kinds(problems) == ["control-char"]
    assert "U+0008" in problems[0].detail and problems[0].page == "p.html"
    # a character reference is a control character once the browser has decoded it
    assert kinds(check_html_page(page(tmp_path, '<p title="a&#127;b">x</p>'))) == ["control-char"]
    # tab, newline and carriage return are ordinary white space
    assert check_html_page(page(tmp_path, "<p>a\tb\r\nc</p>")) == []


def test_raw_math_in_plain_text_found(tmp_path):
    problems = check_html_page(page(tmp_path, r"<p>so $$\frac{a}{b} is the ratio</p>"))
    assert kinds(problems) == ["raw-math"] and "'$$'" in problems[0].detail
    assert kinds(check_html_page(page(tmp_path, r"<td>\mathrm{acc}</td>"))) == ["raw-math"]
    assert kinds(check_html_page(page(tmp_path, r"<p>\(x\)</p>"))) == ["raw-math"]
    # the same TeX inside a math element or in code is what it should be
    assert check_html_page(page(tmp_path, r'<p><span class="math">\(\frac{a}{b}\)</span></p>')) == []
    assert check_html_page(page(tmp_path, r'<div class="highlight"><pre><span>$$\frac</span></pre></div>')) == []


def test_mathjax_error_node_found(tmp_path):
    body = '<mjx-container><mjx-merror data-mjx-error="Missing close brace">x</mjx-merror></mjx-container>'
    assert "mathjax-error" in kinds(check_html_page(page(tmp_path, body)))


NAN_TABLE = "<table><tr><th>model</th><th>rmqm</th></tr><tr><td>a</td><td>NaN</td></tr><tr><td>b</td><td>-inf</td></tr></table>"


def test_nan_cell_without_explanation_found(tmp_path):
    problems = check_html_page(page(tmp_path, "<h2>Scores</h2><p>The scores of the zoo.</p>" + NAN_TABLE))
    assert kinds(problems) == ["nan-cell"]
    assert "2 cell(s)" in problems[0].detail and "-inf" in problems[0].detail and "NaN" in problems[0].detail


def test_nan_cell_with_explanation_in_section_or_caption_passes(tmp_path):
    said = "<p>The score is undefined (NaN) when every probe fails.</p>"
    assert check_html_page(page(tmp_path, said + NAN_TABLE)) == []
    captioned = NAN_TABLE.replace("<tr>", "<caption>nan: not a number, no probe converged</caption><tr>", 1)
    assert check_html_page(page(tmp_path, captioned)) == []
    # an explanation in another section does not count
    other = f"<section><p>{said}</p></section><section><p>Scores.</p>{NAN_TABLE}</section>"
    assert kinds(check_html_page(page(tmp_path, other))) == ["nan-cell"]


def test_image_without_alt_or_caption_found(tmp_path):
    problems = check_html_page(page(tmp_path, '<figure><img src="f.png"><figcaption>Figure 1.</figcaption></figure>'))
    assert kinds(problems) == ["img-alt"] and "f.png" in problems[0].detail
    problems = check_html_page(page(tmp_path, '<p><img src="g.png" alt="a plot"></p>'))
    assert kinds(problems) == ["img-caption"]
    assert kinds(check_html_page(page(tmp_path, '<img src="h.png" alt="  ">'))) == ["img-alt", "img-caption"]
    # myst-nb's default alt text is the image's path: not a description
    named = '<figure><img src="../_images/3f.png" alt="../_images/3f.png"><figcaption>Fig.</figcaption></figure>'
    problems = check_html_page(page(tmp_path, named))
    assert kinds(problems) == ["img-alt"] and "file name" in problems[0].detail


def test_notebook_output_image_captioned_by_next_paragraph(tmp_path):
    cell = ('<div class="cell docutils container"><div class="cell_output docutils container">'
            '<img alt="accuracy against epsilon" src="../_images/x.png" /></div></div>')
    assert kinds(check_html_page(page(tmp_path, cell + "<p>The curve.</p>"))) == ["img-caption"]
    assert check_html_page(page(tmp_path, cell + "<p><strong>Figure 2.</strong> The curve.</p>")) == []


def test_book_collects_pages_and_names_them(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "_static").mkdir()
    page(tmp_path / "book", "<p>\x01</p>", "a.html")
    page(tmp_path, "<p>fine</p>", "index.html")
    page(tmp_path / "_static", "<p>\x01</p>", "ignored.html")
    assert html_pages(tmp_path) == ["book/a.html", "index.html"]
    assert [(p.page, p.kind) for p in check_html_book(tmp_path)] == [("book/a.html", "control-char")]
    with pytest.raises(FileNotFoundError, match="_build/html"):
        check_html_book(tmp_path / "nope")
