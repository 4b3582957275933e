"""Static checks of the built book's HTML, read as a reader would read it.

Pure functions over the files of ``_build/html`` (stdlib :mod:`html.parser` only, so importing
this module needs no book extra). Each finding is a :class:`Problem`; the rules:

``control-char``
    A control character (U+0000-U+001F except tab, newline and carriage return, or U+007F)
    in the text or in an attribute value of the page, character references (``&#8;``) included:
    a browser shows it as a box or nothing, so it is always a leak (e.g. a ``\\b`` of a Python
    string that was meant as TeX ``\\beta``).
``raw-math``
    TeX left in plain text: ``$$``, ``\\(`` ``\\)`` ``\\[`` ``\\]`` or a ``\\command`` (a backslash and
    two or more letters) in a text node that is not inside a math container (an element of class
    ``math``, ``MathJax`` or ``mjx-*``, ``mjx-container`` itself) nor inside code (``pre``, ``code``,
    ``kbd``, ``samp``, ``script``, ``style``, ``textarea``, ``title`` or an element of class
    ``highlight``). MathJax renders in the browser, so a broken formula cannot be seen here; a
    formula that MyST did not recognise as math (an unbalanced ``$``, a ``$$`` inside a paragraph,
    a Python string printed with TeX in it) can.
``mathjax-error``
    A MathJax error node already in the file (``merror``, ``mjx-merror`` or ``data-mjx-error``);
    the browser check (:mod:`rmqm.study.browser_check`) finds those that MathJax makes.
``nan-cell``
    A cell (``td``/``th``) of a table whose whole text is ``nan``, ``NaN``, ``<NA>``, ``inf``,
    ``-inf``, ``infinity`` (any case, any sign) while the page does not explain it. The rule:
    the explanation is one of the words ``nan``, ``inf``, ``infinite``, ``infinity``, ``undefined``,
    ``not defined``, ``not a number`` in the table's own caption or in the text, outside any table
    cell, of the innermost ``section`` that holds the table (its subsections included).
``img-alt`` / ``img-caption``
    Every ``img`` of the main content (the ``article`` element, else ``main``, else the body) has a
    non-empty ``alt`` that is not a file name (myst-nb writes the image's path as its ``alt`` when
    the cell gives none) and a caption: a ``figcaption`` with text in its enclosing ``figure``
    (what MyST's ``{figure}`` and myst-nb's ``mystnb: figure: caption:`` cell metadata or
    ``{glue:figure}`` produce), or, for a notebook output image (inside ``div.cell``), a
    paragraph right after that cell whose text starts with "Figure" (a caption written in the
    next markdown cell). An image inside a link that is not in a figure is exempt from the
    caption (badges, logos), not from ``alt``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

__all__ = ["Problem", "check_html_page", "check_html_book", "html_pages"]


@dataclass(frozen=True)
class Problem:
    """One finding: ``page`` (path relative to the HTML folder, or the file name), ``kind`` (one
    of the rule names of the module docstring, or a browser rule) and a human ``detail``."""

    page: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: [{self.kind}] {self.detail}"


_VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())
_CODE_TAGS = frozenset("pre code kbd samp script style textarea title".split())
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_RAW_MATH = re.compile(r"\$\$|\\[()\[\]]|\\[A-Za-z]{2,}")
_NAN_CELL = re.compile(r"[+-]?(nan|<na>|inf|infinity)", re.IGNORECASE)
_FILE_NAME = re.compile(r"\S+\.(png|jpe?g|svg|gif|webp|pdf)", re.IGNORECASE)
_EXPLAINS = re.compile(r"\b(nan|inf|infinite|infinity|undefined|not defined|not a number)\b", re.IGNORECASE)


@dataclass(eq=False)
class _Node:
    tag: str
    attrs: dict[str, str]
    parent: _Node | None = None
    children: list[_Node | str] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def ancestors(self) -> list[_Node]:
        out, node = [], self.parent
        while node is not None:
            out.append(node)
            node = node.parent
        return out

    def elements(self) -> list[_Node]:
        """This node and every element below it, in document order."""
        out: list[_Node] = [self]
        for child in self.children:
            if isinstance(child, _Node):
                out += child.elements()
        return out

    def text(self, skip: frozenset[str] = frozenset()) -> str:
        """The text below this node, leaving out the subtrees whose tag is in ``skip``."""
        parts = []
        for child in self.children:
            if isinstance(child, str):
                parts.append(child)
            elif child.tag not in skip:
                parts.append(child.text(skip))
        return " ".join(parts)


class _TreeBuilder(HTMLParser):
    """A forgiving DOM: an end tag closes up to its open element and is ignored when none is open."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = _Node(tag, {k: v or "" for k, v in attrs}, parent=self.stack[-1])
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


_CHARREF = re.compile(r"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")


def _control_ref(m: re.Match[str]) -> str:
    """A numeric character reference to a control character, as that character (what a
    browser shows; :func:`html.unescape` would drop it); any other reference unchanged."""
    code = int(m.group(1), 16) if m.group(1) else int(m.group(2))
    return chr(code) if code < 0x110000 and _CONTROL.fullmatch(chr(code)) else m.group()


def _parse(text: str) -> _Node:
    builder = _TreeBuilder()
    builder.feed(_CHARREF.sub(_control_ref, text))
    builder.close()
    return builder.root


def _visible(s: str) -> str:
    """``s`` shortened to 60 characters, control characters written as ``U+XXXX``."""
    s = " ".join(s.split()) if not _CONTROL.search(s) else s.strip()
    s = s if len(s) <= 60 else s[:57] + "..."
    return _CONTROL.sub(lambda m: f"<U+{ord(m.group()):04X}>", s)


def _where(node: _Node) -> str:
    """A short CSS-like path of ``node`` (tag, id or first class) for problem details."""
    names = []
    for n in [node, *node.ancestors()][:4]:
        if n.tag == "#document":
            break
        ident = n.attrs.get("id")
        names.append(n.tag + (f"#{ident}" if ident else f".{n.classes[0]}" if n.classes else ""))
    return " < ".join(names)


def _control_problems(page: str, root: _Node) -> list[Problem]:
    problems = []
    for node in root.elements():
        for name, value in node.attrs.items():
            if _CONTROL.search(value):
                problems.append(Problem(page, "control-char",
                                        f"attribute {name}={_visible(value)!r} of {_where(node)}"))
        for child in node.children:
            if isinstance(child, str) and _CONTROL.search(child):
                m = _CONTROL.search(child)
                assert m is not None
                around = child[max(0, m.start() - 30): m.end() + 30]
                problems.append(Problem(page, "control-char", f"U+{ord(m.group()):04X} in {_where(node)}: "
                                        f"{_visible(around)!r}"))
    return problems


def _is_math_or_code(node: _Node) -> bool:
    return (node.tag in _CODE_TAGS or node.tag.startswith("mjx-") or node.tag == "math"
            or any(c in ("math", "MathJax", "highlight") or c.startswith(("mjx-", "MathJax")) for c in node.classes))


def _raw_math_problems(page: str, root: _Node) -> list[Problem]:
    problems = []
    for node in root.elements():
        if any(_is_math_or_code(n) for n in [node, *node.ancestors()]):
            continue
        for child in node.children:
            if isinstance(child, str) and (m := _RAW_MATH.search(child)):
                around = child[max(0, m.start() - 30): m.end() + 30]
                problems.append(Problem(page, "raw-math", f"{m.group()!r} in plain text of {_where(node)}: "
                                        f"{_visible(around)!r} (outside any math element: MathJax will not render it)"))
    return problems


def _mathjax_error_problems(page: str, root: _Node) -> list[Problem]:
    return [Problem(page, "mathjax-error", f"{_where(n)}: {_visible(n.text())!r}")
            for n in root.elements()
            if n.tag in ("merror", "mjx-merror") or "data-mjx-error" in n.attrs]


def _innermost(node: _Node, tag: str) -> _Node | None:
    return next((a for a in node.ancestors() if a.tag == tag), None)


def _nan_problems(page: str, root: _Node) -> list[Problem]:
    problems = []
    for table in (n for n in root.elements() if n.tag == "table"):
        cells = [c for c in table.elements() if c.tag in ("td", "th") and _NAN_CELL.fullmatch(c.text().strip())]
        if not cells:
            continue
        caption = " ".join(c.text() for c in table.elements() if c.tag == "caption")
        scope = _innermost(table, "section") or root
        prose = scope.text(skip=frozenset({"table", "script", "style"}))
        if _EXPLAINS.search(caption) or _EXPLAINS.search(prose):
            continue
        values = sorted({c.text().strip() for c in cells})
        problems.append(Problem(page, "nan-cell", f"{len(cells)} cell(s) {', '.join(values)} in {_where(table)} "
                                "and no word of the section or caption explains them (say why they are "
                                "nan/inf, e.g. 'undefined: ...', or fill them)"))
    return problems


def _main_content(root: _Node) -> _Node:
    for tag in ("article", "main", "body"):
        found = next((n for n in root.elements() if n.tag == tag), None)
        if found is not None:
            return found
    return root


def _next_element(node: _Node) -> _Node | None:
    if node.parent is None:
        return None
    siblings = node.parent.children
    after = siblings[siblings.index(node) + 1:]
    return next((s for s in after if isinstance(s, _Node)), None)


def _has_caption(img: _Node) -> bool:
    figure = _innermost(img, "figure")
    if figure is not None:
        return any(n.tag == "figcaption" and n.text().strip() for n in figure.elements())
    cell = next((a for a in img.ancestors() if "cell" in a.classes), None)
    if cell is not None:
        after = _next_element(cell)
        paragraph = next((n for n in after.elements() if n.tag == "p"), None) if after is not None else None
        return paragraph is not None and paragraph.text().strip().lower().startswith("figure")
    return _innermost(img, "a") is not None


def _figure_problems(page: str, root: _Node) -> list[Problem]:
    problems = []
    for img in (n for n in _main_content(root).elements() if n.tag == "img"):
        src = img.attrs.get("src", "?")
        src = src if not src.startswith("data:") else src[:30] + "..."
        alt = img.attrs.get("alt", "").strip()
        if not alt:
            problems.append(Problem(page, "img-alt", f"image {src} has no alt text"))
        elif alt == img.attrs.get("src", "").strip() or _FILE_NAME.fullmatch(alt):
            problems.append(Problem(page, "img-alt", f"image {src}: its alt text is a file name, not a description "
                                    "(myst-nb writes the path when a cell sets no mystnb.image.alt)"))
        if not _has_caption(img):
            problems.append(Problem(page, "img-caption", f"image {src} has no caption (no figcaption in a "
                                    "figure, no 'Figure ...' paragraph after its cell)"))
    return problems


def check_html_page(path: str | os.PathLike, *, page: str | None = None) -> list[Problem]:
    """Every problem of one HTML file (the rules of the module docstring), in rule order.

    ``page`` names the page in the problems (default: the file name).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file: pass an HTML page of the built book")
    text = path.read_bytes().decode("utf-8", errors="replace")
    root = _parse(text)
    name = page if page is not None else path.name
    return (_control_problems(name, root) + _raw_math_problems(name, root) + _mathjax_error_problems(name, root)
            + _nan_problems(name, root) + _figure_problems(name, root))


def html_pages(folder: str | os.PathLike) -> list[str]:
    """The pages of a built book: ``*.html`` under ``folder``, relative POSIX paths, sorted;
    Sphinx's own folders (``_static``, ``_sources``, ``_images``: names starting with ``_``)
    and the generated ``genindex.html``/``search.html`` are left out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder: pass the book's _build/html")
    pages = []
    for path in sorted(folder.rglob("*.html")):
        rel = path.relative_to(folder)
        if any(part.startswith("_") for part in rel.parts[:-1]) or rel.as_posix() in ("genindex.html", "search.html"):
            continue
        pages.append(rel.as_posix())
    return pages


def check_html_book(folder: str | os.PathLike) -> list[Problem]:
    """Every problem of every page of :func:`html_pages` (``page`` = the relative path)."""
    folder = Path(folder)
    return [p for page in html_pages(folder) for p in check_html_page(folder / page, page=page)]
