"""The study runner on tiny synthetic notebooks: order, caching, failures, overrides."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

import rmqm.study.notebooks as notebooks
import rmqm.study.runner as runner
from rmqm.cli.study_cmd import main
from rmqm.study.book import run_info_markdown
from rmqm.study.notebooks import (
    NotebookSpec,
    cache_key,
    execution_order,
    library_fingerprint,
)
from rmqm.study.profiles import Profile, apply_overrides, load_profile, parse_overrides
from rmqm.study.runner import NotebookFailed, run_notebooks

pytest.importorskip("papermill")


@pytest.fixture
def two_notebooks(tmp_path: Path, write_nb) -> Path:
    """a writes a file from its parameter; b (depends on a) reads it and writes its own."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    write_nb(nbs, "a_first", "scale = 1\nresults_dir = '.'",
             ["import pathlib\npathlib.Path(results_dir, 'a.txt').write_text(str(scale * 2))"])
    write_nb(nbs, "b_second", "offset = 0\nresults_dir = '.'",
             ["import pathlib\nv = int(pathlib.Path(results_dir, 'a.txt').read_text())\n"
              "pathlib.Path(results_dir, 'b.txt').write_text(str(v + offset))\nprint('b =', v + offset)"],
             depends_on=["a_first"])
    return nbs


def outputs_text(path: Path) -> str:
    nb = json.loads(path.read_text())
    return "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))


def test_parse_overrides_reads_yaml_values():
    got = parse_overrides(["n=3", "dims=[16, 32]", "name=digits", "x.lr=1e-3", "flag=true", "empty="])
    assert got == {"n": 3, "dims": [16, 32], "name": "digits", "x.lr": 1e-3, "flag": True, "empty": ""}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["novalue"])
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["=3"])


def test_apply_overrides_shared_and_per_notebook():
    prof = Profile("p", {"n": 1, "seed": 0}, {"nb1": {"k": 2}})
    new = apply_overrides(prof, {"n": 5, "nb1.k": 7, "nb2.j": 1})
    assert new.parameters == {"n": 5, "seed": 0}
    assert new.notebooks == {"nb1": {"k": 7}, "nb2": {"j": 1}}
    assert prof.parameters == {"n": 1, "seed": 0}  # the original is untouched


def test_load_profile(tmp_path: Path):
    (tmp_path / "p.yaml").write_text("description: test\nparameters: {n: 3}\nnotebooks: {a: {m: 1}}\n")
    prof = load_profile("p", tmp_path)
    assert (prof.name, prof.parameters, prof.notebooks, prof.description) == ("p", {"n": 3}, {"a": {"m": 1}}, "test")
    with pytest.raises(FileNotFoundError, match=r"available profiles: \['p'\]"):
        load_profile("nope", tmp_path)
    (tmp_path / "bad.yaml").write_text("parameter: {n: 3}\n")
    with pytest.raises(ValueError, match="unknown top-level keys"):
        load_profile("bad", tmp_path)


def test_repository_profiles_load():
    root = Path(__file__).resolve().parents[2]
    for name in ("tiny", "default", "paper"):
        prof = load_profile(name, root / "profiles")
        assert prof.parameters, name


def test_repository_profiles_fit_the_notebooks_and_replicate_seeds():
    from rmqm.study.notebooks import check_profile, discover_notebooks

    root = Path(__file__).resolve().parents[2]
    specs = discover_notebooks(root / "notebooks")
    for name in ("tiny", "default", "paper"):
        prof = load_profile(name, root / "profiles")
        check_profile(prof, specs)  # every parameter is declared by some notebook
        seeds = prof.parameters["zoo_seeds"]
        # headline numbers are means over >= 3 seeds; epochs, not a time budget, end training,
        # so a profile alone determines every encoder whatever the machine's load
        assert len(set(seeds)) == len(seeds) >= 3, name
        assert prof.parameters["time_budget_s"] is None, name


def test_execution_order_follows_dependencies():
    def spec(name, deps=()):
        return NotebookSpec(name, Path(name), tuple(deps), ())

    order = execution_order([spec("c", ["b"]), spec("b", ["a"]), spec("a"), spec("0z", ["c"])])
    assert [s.name for s in order] == ["a", "b", "c", "0z"]
    with pytest.raises(ValueError, match=r"cycle: (a -> b -> a|b -> a -> b)"):
        execution_order([spec("a", ["b"]), spec("b", ["a"]), spec("c")])
    # ties are broken by name at every step, not only among the first ready ones
    order = execution_order([spec("d"), spec("b", ["d"]), spec("c"), spec("a", ["c"])])
    assert [s.name for s in order] == ["c", "a", "d", "b"]
    with pytest.raises(ValueError, match="unknown notebook"):
        execution_order([spec("a", ["zz"])])


def test_cache_key_depends_on_parameters_source_and_upstream(two_notebooks: Path):
    specs = {s.name: s for s in notebooks.discover_notebooks(two_notebooks)}
    a = specs["a_first"]
    assert a.declared == ("scale", "results_dir") and specs["b_second"].depends_on == ("a_first",)
    k = cache_key(a, {"scale": 1, "results_dir": "/x"}, {})
    assert k == cache_key(a, {"scale": 1, "results_dir": "/elsewhere"}, {})  # reserved: not in key
    assert k != cache_key(a, {"scale": 2, "results_dir": "/x"}, {})
    b = specs["b_second"]
    assert cache_key(b, {}, {"a_first": "1"}) != cache_key(b, {}, {"a_first": "2"})
    nb = nbformat.read(a.path, as_version=4)
    nb.cells.append(new_code_cell("print('changed')"))
    nbformat.write(nb, a.path)
    assert cache_key(a, {"scale": 1}, {}) != k


def test_library_fingerprint_follows_every_byte_of_the_package_source(tmp_path: Path):
    installed = Path(notebooks.__file__).resolve().parent.parent
    before = library_fingerprint(installed)
    default = library_fingerprint()
    assert default in (before, library_fingerprint(installed))  # the default is the installed rmqm
    pkg = tmp_path / "rmqm"
    shutil.copytree(installed, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    fp = library_fingerprint(pkg)
    assert len(fp) == 64 and fp == library_fingerprint(pkg)

    source = pkg / "study" / "runner.py"
    original = source.read_bytes()
    source.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # one flipped bit
    assert library_fingerprint(pkg) != fp
    source.write_bytes(original)
    assert library_fingerprint(pkg) == fp

    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "study.cpython-312.pyc").write_bytes(b"compiled")
    (pkg / "notes.txt").write_text("not code")
    assert library_fingerprint(pkg) == fp  # only *.py counts
    (pkg / "extra.py").write_text("")
    assert library_fingerprint(pkg) != fp  # a new (even empty) module counts
    (pkg / "extra.py").unlink()
    source.rename(pkg / "study" / "runner2.py")
    assert library_fingerprint(pkg) != fp  # so does a renamed one

    with pytest.raises(FileNotFoundError, match="does not exist"):
        library_fingerprint(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no Python source \(\*\.py\)"):
        library_fingerprint(tmp_path / "empty")


def test_cache_key_includes_the_library_fingerprint_when_given(two_notebooks: Path):
    a = next(s for s in notebooks.discover_notebooks(two_notebooks) if s.name == "a_first")
    plain = cache_key(a, {"scale": 1}, {})
    assert plain == cache_key(a, {"scale": 1}, {}, library=None)
    assert len({plain, cache_key(a, {"scale": 1}, {}, library="1"), cache_key(a, {"scale": 1}, {}, library="2")}) == 3


def test_run_reruns_everything_when_the_library_changes(two_notebooks: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "build"
    prof = Profile("t", {"scale": 3})
    calls = []

    def run_with(fingerprint):
        monkeypatch.setattr(runner, "library_fingerprint", lambda *a: calls.append(a) or fingerprint)
        runs = run_notebooks(prof, two_notebooks, out, progress=False, log=lambda s: None)
        manifest = json.loads((out / "study.json").read_text())
        return [r.status for r in runs], manifest

    statuses, manifest = run_with("code-v1")
    assert statuses == ["executed", "executed"] and manifest["library_fingerprint"] == "code-v1"
    assert [manifest["notebooks"][n]["library"] for n in ("a_first", "b_second")] == ["code-v1", "code-v1"]
    assert run_with("code-v1")[0] == ["cached", "cached"]
    (out / "results" / "b.txt").write_text("stale")
    statuses, manifest = run_with("code-v2")
    assert statuses == ["executed", "executed"] and manifest["library_fingerprint"] == "code-v2"
    assert (out / "results" / "b.txt").read_text() == "6"
    assert run_with("code-v2")[0] == ["cached", "cached"]
    assert len(calls) == 4  # hashed once per run, not once per notebook
    assert "`code-v2`" in run_info_markdown(manifest)


def test_run_caches_and_reruns_downstream_on_override(two_notebooks: Path, tmp_path: Path):
    out = tmp_path / "build"
    prof = Profile("t", {"scale": 3})
    runs = run_notebooks(prof, two_notebooks, out, progress=False, log=lambda s: None)
    assert [(r.name, r.status) for r in runs] == [("a_first", "executed"), ("b_second", "executed")]
    assert (out / "results" / "b.txt").read_text() == "6"
    assert "b = 6" in outputs_text(out / "notebooks" / "b_second.ipynb")
    manifest = json.loads((out / "study.json").read_text())
    assert all(manifest["notebooks"][n]["status"] == "ok" and manifest["notebooks"][n]["wall_s"] > 0
               for n in ("a_first", "b_second"))

    again = run_notebooks(prof, two_notebooks, out, progress=False, log=lambda s: None)
    assert [r.status for r in again] == ["cached", "cached"]
    assert [r.wall_s for r in again] == [manifest["notebooks"][n]["wall_s"] for n in ("a_first", "b_second")]

    # a file that b wrote was changed behind the runner's back: b reruns and restores it, a stays cached
    (out / "results" / "b.txt").write_text("sentinel")
    logs: list[str] = []
    healed = run_notebooks(prof, two_notebooks, out, progress=False, log=logs.append)
    assert [r.status for r in healed] == ["cached", "executed"]
    assert (out / "results" / "b.txt").read_text() == "6"
    assert "[t] b_second: executing (files it wrote are damaged: b.txt changed)" in logs

    # a changed parameter of a re-executes a and, through the dependency, b
    changed = run_notebooks(apply_overrides(prof, {"scale": 5}), two_notebooks, out,
                            progress=False, log=lambda s: None)
    assert [r.status for r in changed] == ["executed", "executed"]
    assert (out / "results" / "b.txt").read_text() == "10"
    # a parameter of b alone leaves a cached
    only_b = run_notebooks(apply_overrides(prof, {"scale": 5, "b_second.offset": 1}), two_notebooks,
                           out, progress=False, log=lambda s: None)
    assert [r.status for r in only_b] == ["cached", "executed"]
    assert (out / "results" / "b.txt").read_text() == "11"


def test_parameters_are_injected_and_cells_hidden(two_notebooks: Path, tmp_path: Path):
    out = tmp_path / "build"
    prof = Profile("t", {"scale": 2}, {"b_second": {"offset": 100}})
    run_notebooks(prof, two_notebooks, out, progress=False, log=lambda s: None)
    executed = json.loads((out / "notebooks" / "b_second.ipynb").read_text())
    tags = [c["metadata"].get("tags", []) for c in executed["cells"]]
    assert ["parameters", "remove-cell"] in tags
    assert ["injected-parameters", "remove-cell"] in tags  # listed on the reproducibility page instead
    injected = next(c for c in executed["cells"] if "injected-parameters" in c["metadata"]["tags"])
    assert "offset = 100" in "".join(injected["source"])
    assert "b = 104" in outputs_text(out / "notebooks" / "b_second.ipynb")


def test_unknown_parameters_are_rejected(two_notebooks: Path, tmp_path: Path):
    with pytest.raises(ValueError, match=r"declared by no notebook.*known parameters"):
        run_notebooks(Profile("t", {"scael": 2}), two_notebooks, tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"declares no parameter\(s\) \['nope'\]"):
        run_notebooks(Profile("t", {}, {"a_first": {"nope": 1}}), two_notebooks, tmp_path, progress=False)
    with pytest.raises(ValueError, match="unknown notebook"):
        run_notebooks(Profile("t", {}, {"zz": {"x": 1}}), two_notebooks, tmp_path, progress=False)


def test_failure_names_notebook_and_cell_and_keeps_finished(two_notebooks: Path, tmp_path: Path, write_nb):
    write_nb(two_notebooks, "c_third", "", ["x = 1", "raise ValueError('boom in c')", "print('never')"],
             depends_on=["a_first"])
    out = tmp_path / "build"
    with pytest.raises(NotebookFailed, match=r"c_third failed in cell 2 .*ValueError: boom in c") as info:
        run_notebooks(Profile("t", {"scale": 1}), two_notebooks, out, progress=False, log=lambda s: None)
    err = info.value
    assert err.notebook == "c_third" and err.ename == "ValueError"
    assert "raise ValueError('boom in c')" in err.cell_source and "raise ValueError" in str(err)
    manifest = json.loads((out / "study.json").read_text())["notebooks"]
    assert manifest["a_first"]["status"] == "ok" and manifest["b_second"]["status"] == "ok"
    assert manifest["c_third"]["status"] == "failed"
    assert (out / "notebooks" / "a_first.ipynb").is_file()



def test_cli_failure_message(two_notebooks: Path, tmp_path: Path, capsys, monkeypatch, write_nb):
    write_nb(two_notebooks, "c_third", "k = 0", ["raise KeyError(f'missing-thing {k}')"])
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "t.yaml").write_text("parameters: {scale: 1}\nnotebooks: {c_third: {k: 7}}\n")
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--profile", "t", "--no-book", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    # cell 2 of the source notebook (markdown, parameters, failing cell), although papermill
    # inserted its injected-parameters cell before it
    assert "c_third failed in cell 2" in err and "missing-thing 7" in err and "raise KeyError" in err
    code = main(["run", "--profile", "missing", "--no-book"])
    assert code == 1 and "profile 'missing' not found" in capsys.readouterr().err


def test_run_info_markdown_lists_wall_times_and_versions():
    manifest = {"profile": "tiny", "description": "smoke", "shared_parameters": {"n_points": 64},
                "notebooks": {"01_x": {"wall_s": 12.5, "key": "abcdef1234567890", "finished": "t",
                                       "hardware": "cpu, 2 cores"},
                              "02_y": {"wall_s": 7.5, "key": "0123", "finished": "t"}}}
    md = run_info_markdown(manifest)
    assert "**tiny** profile (smoke)" in md
    assert "| `01_x` | 12.5 | t | `abcdef123456` |" in md
    assert "**20.0**" in md and "`n_points` | `64`" in md and "| torch |" in md and "cpu, 2 cores" in md


def test_library_files_name_what_changed(tmp_path: Path):
    from rmqm.study.notebooks import changed_files, library_files

    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    before = library_files(pkg)
    assert sorted(before) == ["a.py", "sub/b.py"] and all(len(v) == 64 for v in before.values())
    (pkg / "sub" / "b.py").write_text("y = 3\n")
    (pkg / "c.py").write_text("")
    assert changed_files(before, library_files(pkg)) == ["c.py", "sub/b.py"]
