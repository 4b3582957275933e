"""The book's PDF (rmqm.study.pdf) on small hand-written pages: printed in order, merged, and
checked; a planted raw formula and a planted missing page are caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from rmqm.study.pdf import check_pdf, pdf_missing, print_book, toc_pages


def page(folder: Path, name: str, title: str, body: str) -> str:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(f"<!DOCTYPE html><html><head><title>{title}</title></head><body><main><article>"
                               f"<h1>{title}</h1>{body}</article></main></body></html>")
    return name


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    if pdf_missing():
        pytest.skip(f"no PDF: {pdf_missing()}")
    html = tmp_path_factory.mktemp("html")
    pages = [page(html, "book/intro.html", "Can we tell a good representation", "<p>First page.</p>"),
             page(html, "notebooks/two.html", "Second chapter", "<p>" + "Long text. " * 900 + "</p>"),
             page(html, "book/raw.html", "A leaked formula", r"<p>so $$\frac{a}{b}$$ is the ratio</p>")]
    return print_book(html, pages), pages


def test_pages_printed_in_order_and_merged(printed):
    (pdf, titles), _ = printed
    assert pdf.name == "rmqm-study.pdf" and pdf.read_bytes().startswith(b"%PDF")
    assert titles == ["Can we tell a good representation", "Second chapter", "A leaked formula"]


def test_raw_math_found_and_nothing_else(printed):
    (pdf, titles), _ = printed
    problems = check_pdf(pdf, titles)
    assert {p.kind for p in problems} == {"pdf-raw-math"}
    assert any("\\frac" in p.detail for p in problems) and any("'$$'" in p.detail for p in problems)


def test_missing_page_found(printed, tmp_path):
    (pdf, titles), _ = printed
    problems = check_pdf(pdf, [*titles, "A page that was never printed"])
    assert [p.detail for p in problems if p.kind == "pdf-missing-page"] == [
        "the page 'A page that was never printed' is not in the PDF's text"]
    too_many = check_pdf(pdf, ["Second chapter"] * 50)
    assert any("PDF page(s) for 50 book pages" in p.detail for p in too_many)
    assert [p.kind for p in check_pdf(tmp_path / "none.pdf", titles)] == ["pdf-missing-page"]


def test_bad_input_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="_toc.yml"):
        toc_pages(tmp_path)
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nparts:\n  - chapters:\n"
                                       "      - file: notebooks/a\n")
    assert toc_pages(tmp_path) == ["book/intro.html", "notebooks/a.html"]
    if pdf_missing() is None:
        with pytest.raises(RuntimeError, match=r"not in"):
            print_book(tmp_path, ["nope.html"])
