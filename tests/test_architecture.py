"""The package's architecture contract, checked over the source of ``rmqm/`` with ``ast``.

Rules (each a test below, each reporting every offender with file and line):

* layers, lowest first: ``_utils < data < models < losses < stats < metrics < training < experiments
  < plots < study < cli``; a module imports only its own subpackage or a lower one. The top-level
  package ``rmqm/__init__.py`` and the ``__main__`` entry points sit above every layer; they may import
  anything, except that ``rmqm/__init__.py`` must not import ``cli``. No layer imports the top.
* no ``rmqm`` import inside a function or method body (nor ``importlib.import_module("rmqm...")``);
* no private name (``_name``) of one module used by another, by ``from m import _name`` or ``m._name``;
* no import cycle between modules;
* no module over ``MAX_LINES`` lines;
* ``requirements/lock.txt`` pins every dependency that ``pyproject.toml`` declares, within its range.

The checker is tested too: ``test_checker_reports_planted_violations`` plants each kind of violation
in a temporary copy of the package and asserts that exactly that violation is reported.
"""

from __future__ import annotations

import ast
import graphlib
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO / "rmqm"
LOCKED_EXTRAS = ("test", "book", "distributed")  # what `make install` installs from the lock
LAYERS = ("_utils", "data", "models", "losses", "stats", "metrics", "training", "experiments", "plots", "study", "cli")
MAX_LINES = 400
TOP = len(LAYERS)  # the rank of the top-level package and of the __main__ entry points


@dataclass(frozen=True)
class ImportEdge:
    """One use of an ``rmqm`` module by another module.

    ``target`` is the dotted name of the module used; ``names`` the names taken from it (``from
    target import a, b``) or read as its attributes (``target._a``), empty for a plain ``import``.
    """

    importer: str
    target: str
    names: tuple[str, ...]
    where: str  # "rmqm/data/registry.py:12"
    in_function: bool
    kind: str = "import"  # "import", "dynamic" (import_module / __import__) or "attribute" (module._name)


def module_map(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file under ``package_dir``."""
    package = package_dir.name
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join((package, *parts))] = path
    return modules


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__")) and name not in LAYERS


class _Collector(ast.NodeVisitor):
    """Collects the ``rmqm`` imports (and private attribute reads of imported modules) of one module."""

    def __init__(self, module: str, path: Path, modules: dict[str, Path], package_dir: Path) -> None:
        self.module = module
        self.is_package = path.name == "__init__.py"
        self.modules = modules
        self.package = package_dir.name
        self.rel = path.relative_to(package_dir.parent).as_posix()
        self.depth = 0
        self.aliases: dict[str, str] = {}  # local name -> rmqm module it is bound to
        self.edges: list[ImportEdge] = []

    def _add(self, node: ast.expr | ast.stmt, target: str, names: tuple[str, ...] = (), kind: str = "import") -> None:
        self.edges.append(ImportEdge(self.module, target, names, f"{self.rel}:{node.lineno}", self.depth > 0, kind))

    def _ours(self, name: str | None) -> bool:
        return name is not None and (name == self.package or name.startswith(self.package + "."))

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if self._ours(alias.name):
                self._add(node, alias.name)
                if alias.asname:
                    self.aliases[alias.asname] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module
        if node.level:  # relative: resolve against this module's package
            package = self.module.split(".")
            if not self.is_package:
                package = package[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([node.module] if node.module else []))
        if base is None or not self._ours(base):
            return
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in self.modules:
                self._add(node, submodule, (alias.name,) if _is_private(alias.name) else ())
                self.aliases[alias.asname or alias.name] = submodule
            else:
                self._add(node, base, (alias.name,))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain: list[str] = []
        value: ast.expr = node
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in self.aliases and _is_private(node.attr):
            target = ".".join([self.aliases[value.id], *reversed(chain[1:])])
            self._add(node, target, (node.attr,), kind="attribute")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("import_module", "__import__") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and self._ours(arg.value):
                self._add(node, arg.value, kind="dynamic")
        self.generic_visit(node)


def collect_edges(package_dir: Path) -> list[ImportEdge]:
    """Every use of an ``rmqm`` module by a module under ``package_dir``, in file order."""
    modules = module_map(package_dir)
    edges = []
    for module, path in modules.items():
        collector = _Collector(module, path, modules, package_dir)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        edges.extend(collector.edges)
    return edges


def layer_rank(module: str) -> int | None:
    """Position of a dotted module name in LAYERS; TOP for the package and __main__ modules; None if in no layer."""
    parts = module.split(".")
    if len(parts) == 1 or parts[-1] == "__main__":
        return TOP
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def layer_violations(package_dir: Path) -> list[str]:
    """Imports that go up the layers, a library module importing the top, or __init__ importing cli."""
    found = []
    package = package_dir.name
    for edge in collect_edges(package_dir):
        if edge.kind == "attribute":
            continue
        src, dst = layer_rank(edge.importer), layer_rank(edge.target)
        if edge.importer == package:
            if dst == LAYERS.index("cli"):
                found.append(f"{edge.where}: {package}/__init__.py imports {edge.target} (cli)")
        elif src is not None and dst is not None and dst > src and src != TOP:
            dst_name = "the top-level package" if dst == TOP else f"layer {LAYERS[dst]}"
            found.append(f"{edge.where}: {edge.importer} (layer {LAYERS[src]}) imports {edge.target} ({dst_name})")
    return found


def modules_outside_layers(package_dir: Path) -> list[str]:
    """Modules whose subpackage is not one of LAYERS (a new subpackage must be placed in the order)."""
    return sorted(m for m in module_map(package_dir) if layer_rank(m) is None)


def function_imports(package_dir: Path) -> list[str]:
    """``rmqm`` imports inside a function or method body, and ``import_module("rmqm...")`` anywhere."""
    return [
        f"{e.where}: {e.importer} imports {e.target} " + ("dynamically" if e.kind == "dynamic" else "inside a function")
        for e in collect_edges(package_dir)
        if e.kind == "dynamic" or (e.kind == "import" and e.in_function)
    ]


def private_imports(package_dir: Path) -> list[str]:
    """Private names (``_name``) of one module used by another."""
    return [
        f"{e.where}: {e.importer} uses private {', '.join(n for n in e.names if _is_private(n))} of {e.target}"
        for e in collect_edges(package_dir)
        if e.target != e.importer and any(_is_private(n) for n in e.names)
    ]


def import_cycles(package_dir: Path) -> list[str]:
    """Cycles of the module import graph (each found cycle once), via graphlib."""
    modules = module_map(package_dir)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for edge in collect_edges(package_dir):
        if edge.kind != "attribute" and edge.target in modules and edge.target != edge.importer:
            graph[edge.importer].add(edge.target)
    cycles: list[str] = []
    while True:
        try:
            graphlib.TopologicalSorter(graph).prepare()
            return cycles
        except graphlib.CycleError as error:
            cycle = error.args[1]  # [a, b, ..., a], each importing the next (or each imported by the next)
            cycles.append(" -> ".join(cycle))
            graph[cycle[0]].discard(cycle[1])  # break it and look for the next one
            graph[cycle[1]].discard(cycle[0])


def oversized_modules(package_dir: Path, max_lines: int = MAX_LINES) -> list[str]:
    """Modules longer than ``max_lines`` lines, with their length."""
    sizes = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in module_map(package_dir).values()}
    return [
        f"{path.relative_to(package_dir.parent).as_posix()}: {n} lines"
        for path, n in sorted(sizes.items())
        if n > max_lines
    ]


def _report(found: Iterable[str], what: str) -> str:
    found = list(found)
    return f"{len(found)} {what}:\n  " + "\n  ".join(found)


# --- the contract, over the package as it is --------------------------------------------------------


def test_every_module_sits_in_a_layer() -> None:
    assert not modules_outside_layers(PACKAGE_DIR), _report(
        modules_outside_layers(PACKAGE_DIR), f"modules in no layer (add the subpackage to LAYERS = {LAYERS})"
    )


def test_imports_go_down_the_layers() -> None:
    found = layer_violations(PACKAGE_DIR)
    assert not found, _report(found, "imports against the layer order " + " < ".join(LAYERS))


def test_no_rmqm_import_inside_a_function() -> None:
    found = function_imports(PACKAGE_DIR)
    assert not found, _report(found, "rmqm imports hidden in functions (import at module level, downward)")


def test_no_private_name_across_modules() -> None:
    found = private_imports(PACKAGE_DIR)
    assert not found, _report(found, "private names used across modules (make them public or move them)")


def test_module_graph_is_acyclic() -> None:
    found = import_cycles(PACKAGE_DIR)
    assert not found, _report(found, "import cycles")


def test_modules_stay_small() -> None:
    found = oversized_modules(PACKAGE_DIR)
    assert not found, _report(found, f"modules over {MAX_LINES} lines (split them)")


# --- the checker itself -------------------------------------------------------------------------------

Check = Callable[[Path], list[str]]
PLANTS: dict[str, tuple[Check, dict[str, str], tuple[str, ...]]] = {
    # name: (checker, {file relative to the package: code appended}, words the new finding must contain)
    "upward import": (
        layer_violations,
        {"data/planted.py": "from rmqm.cli.main import main\n"},
        ("rmqm.data.planted", "rmqm.cli.main"),
    ),
    "relative upward import": (
        layer_violations,
        {"stats/planted.py": "from ..training import zoo\n"},
        ("rmqm.stats.planted", "rmqm.training"),
    ),
    "import of the top package": (
        layer_violations,
        {"models/planted.py": "import rmqm\n"},
        ("rmqm.models.planted", "top-level"),
    ),
    "__init__ imports cli": (
        layer_violations,
        {"__init__.py": "\nimport rmqm.cli.main\n"},
        ("__init__.py", "rmqm.cli.main"),
    ),
    "import in a function": (
        function_imports,
        {"models/planted.py": "def f():\n    from rmqm.data import dataset\n    return dataset\n"},
        ("rmqm/models/planted.py:2", "inside a function"),
    ),
    "import in a method": (
        function_imports,
        {"models/planted.py": "class C:\n    def f(self):\n        import rmqm.data.dataset\n"},
        ("rmqm/models/planted.py:3", "rmqm.data.dataset"),
    ),
    "dynamic import": (
        function_imports,
        {"models/planted.py": "import importlib\nM = importlib.import_module('rmqm.data.dataset')\n"},
        ("rmqm/models/planted.py:2", "dynamically"),
    ),
    "private name imported": (
        private_imports,
        {
            "models/planted.py": "from rmqm.data.planted_lib import _helper\n",
            "data/planted_lib.py": "def _helper():\n    pass\n",
        },
        ("rmqm/models/planted.py:1", "_helper", "rmqm.data.planted_lib"),
    ),
    "private attribute read": (
        private_imports,
        {
            "models/planted.py": "from rmqm.data import planted_lib\nX = planted_lib._helper\n",
            "data/planted_lib.py": "_helper = 1\n",
        },
        ("rmqm/models/planted.py:2", "_helper"),
    ),
    "import cycle": (
        import_cycles,
        {
            "stats/planted_a.py": "import rmqm.stats.planted_b\n",
            "stats/planted_b.py": "from rmqm.stats import planted_a\n",
        },
        ("rmqm.stats.planted_a", "rmqm.stats.planted_b"),
    ),
    "long module": (
        oversized_modules,
        {"_utils/planted.py": "x = 1\n" * (MAX_LINES + 1)},
        ("rmqm/_utils/planted.py", f"{MAX_LINES + 1} lines"),
    ),
    "new subpackage": (modules_outside_layers, {"extras/__init__.py": ""}, ("rmqm.extras",)),
}


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package's sources to plant violations in (the original is never touched)."""
    copy = tmp_path_factory.mktemp("pristine") / "rmqm"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return copy


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_checker_reports_planted_violations(plant: str, package_copy: Path, tmp_path: Path) -> None:
    check, files, words = PLANTS[plant]
    planted = tmp_path / "rmqm"
    shutil.copytree(package_copy, planted)
    for name, code in files.items():
        path = planted / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(code)
    new = sorted(set(check(planted)) - set(check(package_copy)))
    assert len(new) == 1, f"{plant}: expected one new finding, got {new}"
    assert all(word in new[0] for word in words), f"{plant}: {new[0]!r} should name {words}"


def test_checker_accepts_downward_and_own_layer_imports(tmp_path: Path) -> None:
    """Allowed imports raise nothing: downward, within a subpackage, relative, entry points at the top."""
    package = tmp_path / "rmqm"
    sources = {
        "__init__.py": "from rmqm.metrics import m\n",
        "__main__.py": "from rmqm.cli import main\n",
        "_utils/__init__.py": "",
        "_utils/v.py": "def check():\n    import numpy\n    return numpy\n",
        "metrics/__init__.py": "from .m import score\nfrom . import m\n",
        "metrics/m.py": "from rmqm._utils.v import check\nfrom rmqm.metrics import n\n\n"
        "def score():\n    return check\n",
        "metrics/n.py": "import rmqm._utils.v as v\nX = v.check\n",
        "cli/__init__.py": "",
        "cli/main.py": "from rmqm.metrics.m import score\n",
    }
    for name, code in sources.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(code, encoding="utf-8")
    for check in (
        layer_violations,
        function_imports,
        private_imports,
        import_cycles,
        oversized_modules,
        modules_outside_layers,
    ):
        assert check(package) == [], check.__name__


def lock_problems(pyproject: Path, lock: Path) -> list[str]:
    """Dependencies of ``pyproject`` (and its LOCKED_EXTRAS) that ``lock`` misses or pins outside their range."""
    toml = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")  # tomllib: Python >= 3.11
    project = toml.loads(pyproject.read_text(encoding="utf-8"))["project"]
    declared = [Requirement(r) for r in project["dependencies"]]
    declared += [Requirement(r) for extra in LOCKED_EXTRAS for r in project["optional-dependencies"][extra]]
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line and not line[0].isspace() and not line.startswith(("#", "-")):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return [
        f"{r}: locked {pins.get(canonicalize_name(r.name), 'nowhere')}"
        for r in declared
        if canonicalize_name(r.name) not in pins or not r.specifier.contains(pins[canonicalize_name(r.name)])
    ]


def test_lock_pins_every_declared_dependency_within_its_range() -> None:
    """A dependency added to pyproject.toml without `make lock` would be missing after `make install`."""
    found = lock_problems(REPO / "pyproject.toml", REPO / "requirements" / "lock.txt")
    assert not found, _report(found, "dependencies the lock misses or pins outside their range (run `make lock`)")


def test_lock_check_reports_missing_and_out_of_range_pins(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    extras = "\n".join(f"{e} = []" for e in LOCKED_EXTRAS)
    pyproject.write_text(
        '[project]\ndependencies = ["numpy>=2", "Scikit_Learn>=1.3", "torch<2"]\n'
        f"[project.optional-dependencies]\n{extras}\n",
        encoding="utf-8",
    )
    lock = tmp_path / "lock.txt"
    lock.write_text("# header\nnumpy==2.4.6\n    # via rmqm\nscikit-learn==1.9.1\ntorch==2.14.1\n", encoding="utf-8")
    assert lock_problems(pyproject, lock) == ["torch<2: locked 2.14.1"]
    lock.write_text("numpy==2.4.6\n", encoding="utf-8")
    assert lock_problems(pyproject, lock) == ["Scikit_Learn>=1.3: locked nowhere", "torch<2: locked nowhere"]
