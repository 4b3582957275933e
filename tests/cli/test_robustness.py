"""Every CLI entry point against bad values (issue 25): one clean ``error:`` line, no traceback,
and the build folder untouched. The named cases of the issue first, then a property-based test
per entry point (hypothesis, derandomised, a few examples each; nothing is trained: every value
is refused before any work starts)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmqm.cli.main import main
from rmqm.cli.study_cmd import main as study_main

REPO = Path(__file__).resolve().parents[2]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current folder for the call: an existing build folder with one file in it."""
    (tmp_path / "build" / "tiny").mkdir(parents=True)
    (tmp_path / "build" / "tiny" / "keep.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(argv: list[str], capsys: pytest.CaptureFixture[str], place: Path, *, study: bool = False) -> str:
    """Run ``argv``; assert a non-zero exit, one ``error:`` line, no traceback, nothing written."""
    before = tree(place)
    if study:
        code = study_main(argv)
    else:
        with pytest.raises(SystemExit) as info:
            main(argv)
        code = info.value.code
    err = capsys.readouterr().err
    assert code not in (0, None), argv
    assert "Traceback" not in err and sum("error:" in line for line in err.splitlines()) == 1, (argv, err)
    assert tree(place) == before, argv
    return err


# -- the cases named in the issue ------------------------------------------------------------------------


@pytest.mark.parametrize("argv, expected", [
    (["rmqm", "--sigma-max", "0"], "argument --sigma-max: expected a finite number > 0"),
    (["rmqm", "--sigma-max", "-0"], "argument --sigma-max: expected a finite number > 0"),
    (["rmqm", "--epsilon", "0"], "argument --epsilon: expected a number in (0, 1]"),
    (["rmqm", "--epsilon", "2"], "argument --epsilon: expected a number in (0, 1]"),
    (["rmqm", "--step-size", "0"], "argument --step-size: expected a number in (0, 1]"),
    (["rmqm", "--model", ""], "argument --model: expected a non-empty string"),
    (["rmqm", "--zoo-dir", ""], "argument --zoo-dir: cannot write to an empty path"),
    (["rmqm", "--zoo-dir", "z" * 300], "bytes long; this file system allows"),
    (["rmqm", "--out", "o" * 300 + ".csv"], "bytes long; this file system allows"),
    (["rmqm", "--seed", str(2**64)], "argument --seed: expected an integer in [0, 4294967295]"),
    (["zoo", "--k", "100000"], "error: --k: k = 100000 neighbours, but the k-NN probe trains on"),
    (["zoo", "--zoo-dir", ""], "argument --zoo-dir: cannot write to an empty path"),
    (["zoo", "--seeds", str(2**64)], "argument --seeds: expected an integer in [0, 4294967295]"),
    (["sweep", "grid.yaml", "--store", ""], "argument --store: cannot write to an empty path"),
    (["study", "run", "--build-dir", ""], "argument --build-dir: cannot write to an empty path"),
    (["study", "run", "--build-dir", "b" * 300], "bytes long; this file system allows"),
])
def test_named_bad_values_give_one_clean_line(argv: list[str], expected: str, capsys, place: Path) -> None:
    assert expected in refused(argv, capsys, place)


@pytest.mark.parametrize("override, expected", [
    ("05_predicting_downstream.n_pointz=3", "['05_predicting_downstream.n_pointz']"),
    ("results_dir=/tmp/x", "results_dir: set by the runner"),
    ("profile=other", "profile: set by the runner"),
    (f"zoo_seeds=[{2**64}]", "an integer in [0, 4294967295]"),
    ("scheduler=tcp://", "expected a Dask scheduler address tcp://host:port"),
    ("scheduler=tcp://127.0.0.1:1", "cannot be reached"),
    ("encoders=[{name: x, factory: 'os:system', kwargs: {command: 'touch pwned'}}]", "--allow-code"),
    ("n_points=" + "[" * 5000 + "]" * 5000, "nested too deeply"),
    *([("device=mps", "MPS")] if not torch.backends.mps.is_available() else []),
    *([("device=cuda", "no CUDA device")] if not torch.cuda.is_available() else []),
])
def test_study_set_values_fail_before_any_notebook(override: str, expected: str, capsys, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the study's notebooks and profiles
    monkeypatch.delenv("RMQM_ALLOW_CODE", raising=False)
    err = refused(["run", "--profile", "tiny", "--no-book", "--no-progress", "--build-dir", str(tmp_path / "b"),
                   "--set", override], capsys, tmp_path, study=True)
    assert expected in err and not (tmp_path / "b").exists() and not (REPO / "pwned").exists()


def test_a_sweep_grid_nested_5000_deep_is_one_clean_line(capsys, place: Path, tmp_path_factory) -> None:
    grid = tmp_path_factory.mktemp("grid") / "deep.yaml"
    grid.write_text("axes: {seed: " + "[" * 5000 + "]" * 5000 + "}\n")
    assert "nested too deeply" in refused(["sweep", str(grid), "--no-progress"], capsys, place)


def test_ctrl_c_exits_130_with_one_line(capsys, place: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rmqm.cli.study_cmd

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rmqm.cli.study_cmd, "run_study", interrupted)
    assert study_main(["run", "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: interrupted (Ctrl-C); finished notebooks are kept")
    monkeypatch.setattr("rmqm.cli.zoo_cmd.train_zoo", interrupted)
    with pytest.raises(SystemExit) as info:
        main(["zoo", "--no-progress", "--zoo-dir", str(place / "z")])
    assert info.value.code == 130 and "error: interrupted (Ctrl-C)" in capsys.readouterr().err


def test_allow_code_sets_the_variable_the_kernels_inherit(monkeypatch: pytest.MonkeyPatch, capsys,
                                                          tmp_path: Path) -> None:
    import rmqm.cli.study_cmd

    seen: list[str | None] = []
    monkeypatch.delenv("RMQM_ALLOW_CODE", raising=False)
    monkeypatch.setattr(rmqm.cli.study_cmd, "run_study",
                        lambda *a, **k: seen.append(os.environ.get("RMQM_ALLOW_CODE")) or (_ for _ in ()).throw(
                            ValueError("stop")))
    study_main(["run", "--build-dir", str(tmp_path)])
    study_main(["run", "--build-dir", str(tmp_path), "--allow-code"])
    assert seen == [None, "1"]


# -- a property-based test per entry point ---------------------------------------------------------


PROPS = settings(max_examples=12, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def bad_int(low: int) -> st.SearchStrategy[str]:
    return st.one_of(st.integers(max_value=low - 1).map(str), st.sampled_from(["1.5", "", "x", "nan", "1e3", "[]"]))


NOT_A_NUMBER = st.sampled_from(["nan", "inf", "-inf", "abc", "", "1/0", "[1]"])
NOT_POSITIVE = st.one_of(st.floats(max_value=0.0, allow_nan=False, allow_infinity=False).map(repr), NOT_A_NUMBER)
NOT_IN_UNIT = st.one_of(NOT_POSITIVE, st.floats(min_value=1.0, exclude_min=True, allow_infinity=False).map(repr))
BAD_SEED = st.one_of(bad_int(0), st.integers(min_value=2**32).map(str))
BAD_FOLDER = st.one_of(st.sampled_from(["", " ", "  "]), st.text("abc", min_size=256, max_size=300))
BAD_TABLE = st.one_of(st.sampled_from(["", "table.txt", "table"]), st.text("abc", min_size=256, max_size=300)
                      .map(lambda s: s + ".csv"))


@PROPS
@given(st.one_of(
    st.tuples(st.just("--sigma-max"), NOT_POSITIVE), st.tuples(st.just("--epsilon"), NOT_IN_UNIT),
    st.tuples(st.just("--step-size"), NOT_IN_UNIT), st.tuples(st.just("--n-points"), bad_int(1)),
    st.tuples(st.just("--noise-levels"), bad_int(3)), st.tuples(st.just("--pgd-levels"), bad_int(3)),
    st.tuples(st.just("--seed"), BAD_SEED), st.tuples(st.just("--model"), st.sampled_from(["", " "])),
    st.tuples(st.just("--zoo-dir"), BAD_FOLDER), st.tuples(st.just("--out"), BAD_TABLE),
    st.tuples(st.just("--batch-size"), bad_int(1)), st.tuples(st.just("--dim"), bad_int(1)),
))
def test_rmqm_command_refuses_random_bad_values(capsys, place: Path, option: tuple[str, str]) -> None:
    refused(["rmqm", "--no-progress", f"{option[0]}={option[1]}"], capsys, place)


@PROPS
@given(st.one_of(
    st.tuples(st.just("--k"), st.one_of(bad_int(1), st.integers(min_value=501, max_value=10**9).map(str))),
    st.tuples(st.just("--epochs"), bad_int(1)), st.tuples(st.just("--batch-size"), bad_int(2)),
    st.tuples(st.just("--seeds"), BAD_SEED), st.tuples(st.just("--dims"), bad_int(1)),
    st.tuples(st.just("--lr"), NOT_POSITIVE), st.tuples(st.just("--n-eval"), bad_int(2)),
    st.tuples(st.just("--zoo-dir"), BAD_FOLDER), st.tuples(st.just("--out"), BAD_TABLE),
    st.tuples(st.just("--data-root"), st.sampled_from(["", " "])),
))
def test_zoo_command_refuses_random_bad_values(capsys, place: Path, option: tuple[str, str]) -> None:
    refused(["zoo", "--no-progress", "--n-eval", "1000", f"{option[0]}={option[1]}"]
            if option[0] != "--n-eval" else ["zoo", "--no-progress", f"{option[0]}={option[1]}"], capsys, place)


@PROPS
@given(st.one_of(
    st.tuples(st.just("--epsilons"), st.one_of(NOT_A_NUMBER, st.floats(min_value=1.0).map(repr),
                                              st.floats(max_value=0.0, exclude_max=True).map(repr))),
    st.tuples(st.just("--n-train"), bad_int(4)), st.tuples(st.just("--n-test"), bad_int(1)),
    st.tuples(st.just("--n-bootstrap"), bad_int(0)), st.tuples(st.just("--out"), BAD_TABLE),
    st.tuples(st.just("--seed"), BAD_SEED),
))
def test_synbench_command_refuses_random_bad_values(capsys, place: Path, option: tuple[str, str]) -> None:
    refused(["synbench", "--no-progress", f"{option[0]}={option[1]}"], capsys, place)


@PROPS
@given(st.one_of(
    st.tuples(st.just("--store"), BAD_FOLDER), st.tuples(st.just("--out"), BAD_TABLE),
    st.tuples(st.just("--scheduler"), st.sampled_from(["tcp://", "tcp://127.0.0.1:1", "tcp://:80", "udp://h:1"])),
))
def test_sweep_command_refuses_random_bad_values(capsys, place: Path, tmp_path_factory,
                                                 option: tuple[str, str]) -> None:
    grid = tmp_path_factory.mktemp("grid") / "grid.yaml"
    grid.write_text("axes:\n  seed: [0]\n")
    refused(["sweep", str(grid), "--no-progress", f"{option[0]}={option[1]}"], capsys, place)


@PROPS
@given(st.one_of(
    st.tuples(st.just("n_points"), bad_int(1)), st.tuples(st.just("noise_sigma_max"), NOT_POSITIVE),
    st.tuples(st.just("pgd_epsilon"), NOT_IN_UNIT), st.tuples(st.just("pgd_step_size"), NOT_IN_UNIT),
    st.tuples(st.just("zoo_seeds"), BAD_SEED.map(lambda s: f"[{s}]")),
    st.tuples(st.sampled_from(["results_dir", "profile", "01_model_zoo.no_such_key", "no_such_key"]),
              st.text("abc", min_size=1, max_size=5)),
))
def test_study_command_refuses_random_bad_values(capsys, tmp_path_factory, monkeypatch: pytest.MonkeyPatch,
                                                 option: tuple[str, str]) -> None:
    monkeypatch.chdir(REPO)
    build = tmp_path_factory.mktemp("study")
    refused(["run", "--profile", "tiny", "--no-book", "--no-progress", "--build-dir", str(build / "b"),
             "--set", f"{option[0]}={option[1]}"], capsys, build, study=True)
    assert not (build / "b").exists()
