"""Caches that never lie: every cached artefact (notebook output, store record, checkpoint,
zoo scores) is reused only while the code, the data and the files behind it are unchanged.

The notebooks here are tiny synthetic ones run through :func:`run_notebooks`; the stale-result
test runs a changed copy of the package in a subprocess.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell

import rmqm.study.runner as runner
from rmqm._utils.hashing import PACKAGE_DIR
from rmqm.study.book import run_info_markdown
from rmqm.study.manifest import BuildFolderBusy
from rmqm.study.notebooks import read_notebook
from rmqm.study.profiles import Profile
from rmqm.study.runner import run_notebooks
from rmqm.training.configs import TrainingConfig

pytest.importorskip("papermill")


@pytest.fixture(autouse=True)
def fixed_library(monkeypatch):
    """Whether the library changed is not what these tests ask (other engineers may edit rmqm
    while they run); the subprocess test below changes it on purpose."""
    monkeypatch.setattr(runner, "library_fingerprint", lambda: "fixed")


@pytest.fixture
def two(tmp_path: Path, write_nb) -> Path:
    nbs = tmp_path / "notebooks"
    write_nb(nbs, "a_first", "scale = 1\nresults_dir = '.'",
             ["import pathlib\npathlib.Path(results_dir, 'a.txt').write_text(str(scale * 2))"])
    write_nb(nbs, "b_second", "results_dir = '.'",
             ["import pathlib\nv = int(pathlib.Path(results_dir, 'a.txt').read_text())\n"
              "pathlib.Path(results_dir, 'b.txt').write_text(str(v + 1))"], depends_on=["a_first"])
    return nbs


def run(nbs: Path, out: Path, params=None, **kw) -> tuple[list[str], list[str]]:
    logs: list[str] = []
    runs = run_notebooks(Profile("t", params or {}), nbs, out, progress=False, log=logs.append, **kw)
    return [r.status for r in runs], logs


# ------------------------------------------------------------------ executed notebooks, manifest, lock


@pytest.mark.slow
def test_a_damaged_executed_notebook_reruns(two: Path, tmp_path: Path):
    out = tmp_path / "build"
    assert run(two, out)[0] == ["executed", "executed"]
    output = out / "notebooks" / "a_first.ipynb"
    raw = output.read_bytes()
    output.write_bytes(raw[: len(raw) // 2])  # cut mid-JSON (a full disk, a killed copy)
    statuses, logs = run(two, out)
    assert statuses == ["executed", "executed"]  # b follows its upstream's new run
    assert any(f"a_first: executing (its output {output} changed since it ran" in ln for ln in logs), logs
    read_notebook(output, validate=True)  # whole again: the book can build

    nb = read_notebook(output)  # valid JSON, edited by hand: not what the runner produced
    nb.cells.append(new_code_cell("1"))
    nbformat.write(nb, output)
    assert run(two, out)[0] == ["executed", "executed"]
    assert run(two, out)[0] == ["cached", "cached"]
    output.unlink()
    statuses, logs = run(two, out)
    assert statuses == ["executed", "executed"] and any("is missing" in ln for ln in logs)


def test_a_manifest_of_the_wrong_shape_is_refused_with_a_clear_error(two: Path, tmp_path: Path):
    out = tmp_path / "build"
    out.mkdir()
    for bad, what in (([1, 2], "the top level is a list"), ({"notebooks": []}, "'notebooks' is a list"),
                      ({"notebooks": {"a_first": "ok"}}, r"'notebooks' entries \['a_first'\] are not objects"),
                      ({"notebooks": {"a_first": {"key": 3}}}, "notebooks.a_first.key is a int")):
        (out / "study.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=f"manifest {out / 'study.json'} is not an rmqm study manifest: {what}"):
            run(two, out)


def test_a_manifest_cut_mid_json_is_moved_aside_and_everything_reruns(two: Path, tmp_path: Path):
    out = tmp_path / "build"
    run(two, out)
    manifest = out / "study.json"
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2])
    statuses, logs = run(two, out)
    assert statuses == ["executed", "executed"]
    aside = list(out.glob("study.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == text[: len(text) // 2]
    assert any(ln.startswith(f"WARNING: manifest {manifest} is not valid JSON") and str(aside[0]) in ln for ln in logs)
    assert json.loads(manifest.read_text())["notebooks"]["b_second"]["status"] == "ok"


def test_a_build_folder_in_use_is_refused(two: Path, tmp_path: Path):
    out = tmp_path / "build"
    out.mkdir()
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what another run's lock looks like
        with pytest.raises(BuildFolderBusy, match=f"build folder {out} is in use by another run.*--build-dir"):
            run(two, out)
        assert not (out / "study.json").exists() and not (out / "notebooks").exists()  # nothing touched
    finally:
        os.close(fd)
    assert run(two, out)[0] == ["executed", "executed"]  # free again


def test_warnings_inside_a_notebook_reach_the_console(tmp_path: Path, write_nb):
    nbs = tmp_path / "notebooks"
    write_nb(nbs, "w_warn", "", ["import warnings\nfrom rmqm.experiments.store import StoreWarning\n"
                                 "warnings.warn('part abc is damaged; moved aside', StoreWarning)\nprint('fine')"])
    statuses, logs = run(nbs, tmp_path / "build")
    assert statuses == ["executed"]
    assert any(ln.startswith("[t] w_warn: ") and "StoreWarning: part abc is damaged; moved aside" in ln
               for ln in logs), logs
    assert not any("fine" in ln for ln in logs)  # only warnings are echoed
    statuses, logs = run(nbs, tmp_path / "build")
    assert statuses == ["cached"] and any("w_warn (cached run): " in ln and "StoreWarning" in ln for ln in logs)


# ------------------------------------------------------------------ data fallback, checkpoints


def fake_fashion_mnist(folder: Path, n: int = 100) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        for kind, array in (("images-idx3", rng.integers(0, 256, size=(n, 28, 28))), ("labels-idx1", np.arange(n) % 10)):
            a = np.asarray(array, dtype=np.uint8)
            header = bytes([0, 0, 8, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape)
            with gzip.open(folder / f"{prefix}-{kind}-ubyte.gz", "wb") as fh:
                fh.write(header + a.tobytes())


ZOO_NB = [
    "from pathlib import Path\nfrom rmqm.training.checkpoints import load_model\nfrom rmqm.training.zoo import train_zoo\n"
    "from rmqm.training.configs import TrainingConfig\n"
    "zoo = train_zoo(['cross-entropy'], [4], [0], data=data, transfer=['faces'],\n"
    "                training=TrainingConfig(n_train=64, epochs=1, batch_size=32), n_eval=50,\n"
    "                cache_dir=Path(results_dir) / 'zoo', progress=False)\n"
    "m = load_model(zoo['name'].iloc[0], Path(results_dir) / 'zoo')  # as the later notebooks do\n"
    "Path(results_dir, 'used.txt').write_text(m.config['data'])",
]


@pytest.mark.slow
def test_fallback_is_loud_recorded_and_keyed_and_damaged_checkpoints_heal(tmp_path: Path, monkeypatch, write_nb):
    nbs = tmp_path / "notebooks"
    write_nb(nbs, "z_zoo", "data = 'fashion-mnist'\nresults_dir = '.'", ZOO_NB)
    out = tmp_path / "build"
    empty = tmp_path / "no-files"
    empty.mkdir()
    monkeypatch.setenv("RMQM_FASHION_MNIST", str(empty))

    statuses, logs = run(nbs, out, {"data": "fashion-mnist"})
    assert statuses == ["executed"]
    loud = [ln for ln in logs if "DataFallbackWarning" in ln and "using 'digits' instead" in ln]
    assert any(ln.startswith("[t] z_zoo: DataFallbackWarning") for ln in loud)  # seen before running
    assert any(str(empty) in ln and "z_zoo: " in ln and ".py:" in ln for ln in loud)  # echoed from the notebook
    manifest = json.loads((out / "study.json").read_text())
    used = manifest["data_used"]["zoo/data_used.json"]
    assert (used["requested"], used["used"], used["fallback"]) == ("fashion-mnist", "digits", True)
    assert "**Data fallback:** `fashion-mnist` was requested" in run_info_markdown(manifest)
    assert (out / "results" / "used.txt").read_text() == "digits"

    fake_fashion_mnist(tmp_path / "fm")  # the files come back: nothing may stay cached on digits
    monkeypatch.setenv("RMQM_FASHION_MNIST", str(tmp_path / "fm"))
    statuses, logs = run(nbs, out, {"data": "fashion-mnist"})
    assert statuses == ["executed"]
    assert "[t] z_zoo: executing (its data changed)" in logs
    assert (out / "results" / "used.txt").read_text() == "fashion-mnist"
    manifest = json.loads((out / "study.json").read_text())
    used = manifest["data_used"]["zoo/data_used.json"]
    assert (used["used"], used["fallback"]) == ("fashion-mnist", False)
    md = run_info_markdown(manifest)
    assert "Data fallback" not in md
    for rel, sha in used["pretraining"]["files"]:
        assert f"{rel}` | `{sha[:16]}`" in md
    assert run(nbs, out, {"data": "fashion-mnist"})[0] == ["cached"]

    # a checkpoint cut short while the zoo notebook is cached: the zoo reruns, quarantines and retrains it
    ckpt = next((out / "results" / "zoo").glob("fashion-mnist_*.pt"))  # the zoo's own, not the fallback's
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    statuses, logs = run(nbs, out, {"data": "fashion-mnist"})
    assert statuses == ["executed"]
    assert f"[t] z_zoo: executing (files it wrote are damaged: zoo/{ckpt.name} changed)" in logs
    assert any("CheckpointWarning: damaged zoo checkpoint" in ln and ckpt.name in ln for ln in logs), logs
    assert len(list((out / "results" / "zoo" / "quarantine").iterdir())) == 1
    assert run(nbs, out, {"data": "fashion-mnist"})[0] == ["cached"]


# ------------------------------------------------------------------ a changed function, a changed table

MEASURE_NB = [
    "import torch\nfrom pathlib import Path\nfrom rmqm.data.offline import load_digits\n"
    "from rmqm.experiments.cache import cached_rmqm\nfrom rmqm.experiments.store import ResultsStore\n"
    "from rmqm.metrics.rmqm.alterations import WhiteNoise\n"
    "from rmqm.models.backbones import TinyCNN\nfrom rmqm.models.encoder import Encoder\n"
    "torch.manual_seed(0)\nenc = Encoder(TinyCNN(1, dim=8, width=4), (0.2,), (0.3,)).eval()\n"
    "data = load_digits('test', n=12, seed=0)\n"
    "t = cached_rmqm(ResultsStore(Path(results_dir) / 'store'), 'tiny', enc, data, {'name': 'digits'},\n"
    "                WhiteNoise(n_levels=4), seed=0)\n"
    "t['summary'][['rmqm']].to_csv(Path(results_dir) / 'table.csv', index=False)",
]

RUN_SCRIPT = """
import json, sys
import rmqm
from rmqm.study.profiles import Profile
from rmqm.study.runner import run_notebooks
assert rmqm.__file__.startswith(sys.argv[3]), rmqm.__file__
runs = run_notebooks(Profile("t", {}), sys.argv[1], sys.argv[2], force=sys.argv[4] == "force",
                     progress=False, log=lambda s: None)
print(json.dumps([r.status for r in runs]))
"""


@pytest.mark.slow
def test_a_changed_computing_function_recomputes_the_store_and_changes_the_table(tmp_path: Path, write_nb):
    copy = tmp_path / "copy"
    shutil.copytree(PACKAGE_DIR, copy / "rmqm", ignore=shutil.ignore_patterns("__pycache__"))
    nbs = tmp_path / "notebooks"
    write_nb(nbs, "m_measure", "results_dir = '.'", MEASURE_NB)
    (tmp_path / "run.py").write_text(RUN_SCRIPT)
    out = tmp_path / "build"
    env = {**os.environ, "PYTHONPATH": str(copy)}

    def study(mode: str = "") -> tuple[list[str], float, int]:
        proc = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(nbs), str(out), str(copy), mode],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        value = float((out / "results" / "table.csv").read_text().split()[1])
        records = len(list((out / "results" / "store").rglob("*.parquet")))
        return json.loads(proc.stdout.strip().splitlines()[-1]), value, records

    statuses, value, records = study()
    assert statuses == ["executed"] and np.isfinite(value) and value > 0
    assert study("force") == (["executed"], value, records)  # unchanged code: served from the store

    manifold = copy / "rmqm" / "metrics" / "rmqm" / "manifold.py"
    source = manifold.read_text()
    assert '"rmqm": float(np.log1p(' in source
    manifold.write_text(source.replace('"rmqm": float(np.log1p(', '"rmqm": 2 * float(np.log1p(', 1))
    statuses, doubled, more = study()
    assert statuses == ["executed"]  # the library changed
    assert doubled == pytest.approx(2 * value, rel=1e-12)  # and the store recomputed: the table changed
    assert more > records
    assert study() == (["cached"], doubled, more)  # unchanged since: served from the notebook cache


def test_a_moved_zoo_folder_keeps_its_job_records_and_checkpoints(tmp_path: Path, monkeypatch):
    # The zoo-job records are keyed by content only (no absolute path): a build folder moved to
    # another place (or machine) is reused in full, no job reruns and no model retrains.
    import rmqm.training.checkpoints as checkpoints
    from rmqm.experiments.engine import run_zoo
    from rmqm.experiments.store import ResultsStore

    zoo = dict(data="digits", training=TrainingConfig(epochs=1, n_train=200), n_eval=100, n_transfer=100)
    first = run_zoo(["cross-entropy"], [4], [0], cache_dir=tmp_path / "here" / "zoo", **zoo)
    (record,) = ResultsStore(tmp_path / "here" / "zoo" / "jobs").configs()
    assert str(tmp_path) not in json.dumps(record)
    shutil.move(tmp_path / "here", tmp_path / "there")

    def fail(*args, **kwargs):
        raise AssertionError("a finished zoo job or model ran again after the move")

    monkeypatch.setattr("rmqm.experiments.engine.zoo_model_job", fail)
    monkeypatch.setattr(checkpoints, "train_model", fail)
    again = run_zoo(["cross-entropy"], [4], [0], cache_dir=tmp_path / "there" / "zoo", **zoo)
    assert again.drop(columns=[c for c in again.columns if "time" in c]).equals(
        first.drop(columns=[c for c in first.columns if "time" in c]))


def test_a_rerun_after_a_library_edit_names_the_edited_files(tmp_path: Path, two: Path, monkeypatch):
    monkeypatch.setattr(runner, "library_files", lambda: {"metrics/a.py": "1", "study/b.py": "1"})
    run(two, tmp_path / "out")
    monkeypatch.setattr(runner, "library_fingerprint", lambda: "edited")
    monkeypatch.setattr(runner, "library_files", lambda: {"metrics/a.py": "2", "study/b.py": "1", "new.py": "1"})
    statuses, logs = run(two, tmp_path / "out")
    assert statuses == ["executed", "executed"]
    assert "[t] a_first: executing (its library (metrics/a.py, new.py) changed)" in logs
