"""Nothing written outside the build folder, nothing damaged used, everything checked before the
first notebook (issue 25): each write and delete site of the runner and the book step, the
profile name, per-notebook and reserved keys, the machine checks, interrupts and dead kernels,
and caches that survive a moved build and data folder."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from rmqm.study.book import stage_book
from rmqm.study.profiles import Profile, load_profile, parse_overrides
from rmqm.study.run import run_study
from rmqm.study.runner import KernelDied, run_notebooks
from rmqm.study.schema import scheduler_problem, validate_profile


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (not following links) and its bytes: what "untouched" compares."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


@pytest.fixture
def repo(tmp_path: Path, write_nb: Callable[..., Path]) -> Path:
    """A small repository root: profiles/, two notebooks writing into results/."""
    root = tmp_path / "repo"
    write_nb(root / "notebooks", "01_a", "results_dir = ''\nn = 1", [
        "import pathlib\npathlib.Path(results_dir, 'a.txt').write_text(str(n))"])
    write_nb(root / "notebooks", "02_b", "results_dir = ''\nn = 1", [
        "import pathlib\npathlib.Path(results_dir, 'b.txt').write_text(str(n))"], depends_on=["01_a"])
    (root / "profiles").mkdir()
    (root / "profiles" / "small.yaml").write_text("parameters: {n: 2}\n")
    return root


def run(root: Path, profile: str | Profile = "small", **kwargs):
    return run_study(profile, root=root, build=False, progress=False, log=lambda _: None, **kwargs)


# -- 1. profile names are plain labels; every write and delete site stays in the build folder ------


def test_a_profile_file_named_dot_dot_yaml_is_refused_before_anything_is_written(repo: Path) -> None:
    (repo / "profiles" / "...yaml").write_text("parameters: {n: 3}\n")
    before = tree(repo)
    with pytest.raises(ValueError, match=r"profile name '\.\.' is not a plain label"):
        run(repo, str(repo / "profiles" / "...yaml"))
    assert tree(repo) == before and not (repo / "build").exists()


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../x", ".hidden", "x" * 101, "a\nb"])
def test_profile_names_must_be_plain_labels(name: str) -> None:
    with pytest.raises(ValueError, match="not a plain label"):
        Profile(name)


@pytest.mark.parametrize("site", ["notebooks", "results", "study.json", "notebooks/02_b.ipynb", ".lock"])
def test_each_runner_write_site_that_resolves_outside_is_refused(repo: Path, tmp_path: Path, site: str) -> None:
    out_dir = tmp_path / "build" / "small"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    link = out_dir / site
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside if "." not in Path(site).name else outside / "keep.txt")
    before = tree(outside)
    with pytest.raises(ValueError, match="outside the build folder"):
        run_notebooks(Profile("small"), repo / "notebooks", out_dir, progress=False, log=lambda _: None)
    assert tree(outside) == before


@pytest.mark.parametrize("site", ["_config.yml", "_toc.yml", "book", "_mathjax", "_mathjax/mathjax"])
def test_each_book_write_and_delete_site_that_resolves_outside_is_refused(tmp_path: Path, site: str) -> None:
    out_dir = tmp_path / "build" / "small"
    out_dir.mkdir(parents=True)
    outside = tmp_path / "outside"
    (outside / "book").mkdir(parents=True)
    (outside / "_config.yml").write_text("title: mine\n")
    (outside / "book" / "page.md").write_text("# mine\n")
    (out_dir / site).parent.mkdir(parents=True, exist_ok=True)
    (out_dir / site).symlink_to(outside / ("book" if site.startswith(("book", "_mathjax")) else "_config.yml"))
    before = tree(outside)
    with pytest.raises(ValueError, match="outside the build folder"):
        stage_book(tmp_path / "no-root-needed", out_dir)
    assert tree(outside) == before


def test_the_book_folder_must_lie_inside_the_build_folder(tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    with pytest.raises(ValueError, match="outside the build folder"):
        stage_book(tmp_path, tmp_path / "build" / "..", build_dir=tmp_path / "build")


@pytest.mark.parametrize("build_dir, match", [("", "empty path"), ("x" * 300, "bytes long")])
def test_an_empty_or_too_long_build_folder_is_one_clean_error(repo: Path, tmp_path: Path, build_dir: str,
                                                              match: str) -> None:
    before = tree(repo)
    with pytest.raises(ValueError, match=match):
        run(repo, build_dir=str(tmp_path / build_dir) if build_dir else build_dir)
    assert tree(repo) == before


# -- 4. everything checked before the first notebook ----------------------------------------------


@pytest.mark.parametrize("override, match", [
    ("02_b.n_pointz=3", r"notebook 02_b declares no parameter\(s\) \['n_pointz'\].*\['02_b.n_pointz'\]"),
    ("results_dir=/tmp/elsewhere", "results_dir: set by the runner"),
    ("profile=other", "profile: set by the runner"),
    ("01_a.results_dir=x", "01_a.results_dir: set by the runner"),
])
def test_bad_keys_fail_before_any_notebook(repo: Path, tmp_path: Path, override: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        run(repo, overrides=parse_overrides([override]), build_dir=tmp_path / "build")
    assert not (tmp_path / "build").exists()


def test_an_unreachable_scheduler_fails_up_front() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert "cannot be reached" in scheduler_problem(f"tcp://127.0.0.1:{port}", timeout_s=0.5)
    assert "tcp://host:port" in scheduler_problem("tcp://")
    with pytest.raises(ValueError, match=r"scheduler = 'tcp://127.0.0.1:\d+': the Dask scheduler .* cannot be reached"):
        validate_profile(Profile("p", {"scheduler": f"tcp://127.0.0.1:{port}"}), check_device=False)
    with socket.socket() as server:  # a listening port answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert scheduler_problem(f"tcp://127.0.0.1:{server.getsockname()[1]}") is None


def test_a_device_this_machine_lacks_fails_up_front() -> None:
    import torch

    for device, present in (("mps", torch.backends.mps.is_available()), ("cuda", torch.cuda.is_available())):
        if present:
            continue
        with pytest.raises(ValueError, match=f"device = '{device}'.*(not available|no CUDA device)"):
            validate_profile(Profile("p", {"device": device}))


def test_a_profile_nested_5000_deep_is_one_clean_error(repo: Path) -> None:
    (repo / "profiles" / "deep.yaml").write_text("parameters: {n: " + "[" * 5000 + "]" * 5000 + "}\n")
    with pytest.raises(ValueError, match="nested too deeply"):
        load_profile("deep", repo / "profiles")
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_overrides(["n=" + "[" * 5000 + "]" * 5000])


def test_a_dead_kernel_is_one_line_and_the_next_run_retries(repo: Path, tmp_path: Path,
                                                            write_nb: Callable[..., Path]) -> None:
    marker = tmp_path / "died-once"
    write_nb(repo / "notebooks", "02_b", "results_dir = ''\nn = 1", [
        f"import os, pathlib\nm = pathlib.Path({str(marker)!r})\n"
        "if not m.exists():\n    m.touch()\n    os.kill(os.getpid(), 9)"], depends_on=["01_a"])
    out_dir = tmp_path / "build" / "small"
    with pytest.raises(KernelDied) as info:
        run_notebooks(Profile("small"), repo / "notebooks", out_dir, progress=False, log=lambda _: None)
    assert "\n" not in str(info.value) and "02_b: its kernel died" in str(info.value)
    manifest = json.loads((out_dir / "study.json").read_text())
    assert manifest["notebooks"]["01_a"]["status"] == "ok" and manifest["notebooks"]["02_b"]["status"] == "failed"
    runs = run_notebooks(Profile("small"), repo / "notebooks", out_dir, progress=False, log=lambda _: None)
    assert [r.status for r in runs] == ["cached", "executed"]


def test_ctrl_c_keeps_what_finished(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import papermill

    real = papermill.execute_notebook

    def interrupt_the_second(path: str, *args, **kwargs):
        if "02_b" in path:
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(papermill, "execute_notebook", interrupt_the_second)
    out_dir = tmp_path / "build" / "small"
    with pytest.raises(KeyboardInterrupt):
        run_notebooks(Profile("small"), repo / "notebooks", out_dir, progress=False, log=lambda _: None)
    monkeypatch.setattr(papermill, "execute_notebook", real)
    logs: list[str] = []
    runs = run_notebooks(Profile("small"), repo / "notebooks", out_dir, progress=False, log=logs.append)
    assert [r.status for r in runs] == ["cached", "executed"]
    assert any("02_b: executing (its last run was interrupted)" in line for line in logs)


# -- 6. keys from content: a moved build folder and data folder are reused in full ------------------


def test_a_moved_build_and_data_folder_are_reused(repo: Path, tmp_path: Path, write_nb: Callable[..., Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from rmqm.data.offline import FashionMNISTNotFoundError, fashion_mnist_files

    try:
        files = fashion_mnist_files(None)
    except FashionMNISTNotFoundError:
        pytest.skip("Fashion-MNIST files are not installed")
    data_a = tmp_path / "here" / "fashion"
    data_a.mkdir(parents=True)
    for path in files.values():
        shutil.copy2(path, data_a / path.name)
    write_nb(repo / "notebooks", "01_a", "results_dir = ''\ndata = 'digits'\nn = 1", [
        "import pathlib\npathlib.Path(results_dir, 'a.txt').write_text(str(n))"])
    profile = Profile("small", {"data": "fashion-mnist"})
    monkeypatch.setenv("RMQM_FASHION_MNIST", str(data_a))
    build_a = tmp_path / "here" / "build" / "small"
    first = run_notebooks(profile, repo / "notebooks", build_a, progress=False, log=lambda _: None)
    assert [r.status for r in first] == ["executed", "executed"]

    elsewhere = tmp_path / "another" / "machine"
    elsewhere.mkdir(parents=True)
    shutil.move(tmp_path / "here", elsewhere / "here")  # both folders move
    monkeypatch.setenv("RMQM_FASHION_MNIST", str(elsewhere / "here" / "fashion"))
    logs: list[str] = []
    again = run_notebooks(profile, repo / "notebooks", elsewhere / "here" / "build" / "small", progress=False,
                          log=logs.append)
    assert [r.status for r in again] == ["cached", "cached"], logs
    assert [r.key for r in again] == [r.key for r in first]
    text = (elsewhere / "here" / "build" / "small" / "study.json").read_text()
    assert str(data_a) not in json.dumps(json.loads(text)["notebooks"]["01_a"]["inputs"])
    assert os.path.exists(elsewhere / "here" / "build" / "small" / "results" / "b.txt")
