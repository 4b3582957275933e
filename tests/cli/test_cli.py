"""The `rmqm` command line: the main job on tiny settings, and its error messages."""

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import rmqm.cli.study_cmd
import rmqm.cli.zoo_cmd
import rmqm.study.run
from rmqm.cli.main import build_parser, main


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("zoo"))


@pytest.mark.slow
def test_rmqm_command_prints_noise_and_pgd_summaries(zoo_dir, tmp_path, capsys):
    out = tmp_path / "rmqm.csv"
    table = main([
        "rmqm", "--data", "digits", "--n-points", "30", "--noise-levels", "5", "--pgd-levels", "4",
        "--step-size", "2/255", "--zoo-dir", zoo_dir, "--no-progress", "--device", "cpu", "--out", str(out),
    ])
    assert table["perturbation"].tolist() == ["noise", "pgd"]
    assert (table["n_points"] == 30).all() and np.isfinite(table["rmqm"]).all()
    printed = capsys.readouterr().out
    assert "RMQM of" in printed and "digits" in printed and "mean_S_b" in printed
    assert pd.read_csv(out)["rmqm"].tolist() == pytest.approx(table["rmqm"].tolist())


def test_second_run_reuses_the_cached_encoder_and_gives_the_same_numbers(zoo_dir):
    args = ["rmqm", "--data", "digits", "--n-points", "20", "--noise-levels", "4", "--perturbation", "noise",
            "--zoo-dir", zoo_dir, "--no-progress", "--device", "cpu", "--per-class"]
    first, second = main(args), main(args)
    pd.testing.assert_frame_equal(first, second)
    assert first["scope"].iloc[0] == "all" and first["scope"].str.startswith("label=").sum() >= 2


def test_own_attack_loss_uses_the_classifier_head(zoo_dir):
    table = main(["rmqm", "--data", "digits", "--n-points", "20", "--perturbation", "pgd", "--pgd-levels", "3",
                  "--pgd-mode", "own-loss", "--zoo-dir", zoo_dir, "--no-progress", "--device", "cpu"])
    assert table["perturbation"].tolist() == ["pgd"]


def test_pgd_mode_reference_runs_the_references_attack(zoo_dir, capsys):
    argv = ["rmqm", "--data", "digits", "--n-points", "12", "--perturbation", "pgd", "--pgd-levels", "3",
            "--batch-size", "6", "--step-size", "2/255", "--zoo-dir", zoo_dir, "--no-progress", "--device", "cpu"]
    reference = main(argv + ["--pgd-mode", "reference"])
    own = main(argv + ["--pgd-mode", "own-loss"])
    assert np.isfinite(reference["rmqm"]).all() and reference["rmqm"].iloc[0] != own["rmqm"].iloc[0]
    named = main(argv + ["--pgd-mode", "reference", "--attack-loss", "nt-xent"])  # another loss than the model's
    assert named["rmqm"].iloc[0] != reference["rmqm"].iloc[0]
    with pytest.raises(SystemExit) as exc:  # a label-free loss does not fit the reference's attack
        main(argv + ["--pgd-mode", "reference", "--attack-loss", "displacement"])
    assert exc.value.code == 2 and "does not fit" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # no string sentinel for "the model's own loss": the mode says it
        main(argv + ["--attack-loss", "own"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_pgd_mode_options_parse(capsys):
    args = build_parser().parse_args(["rmqm", "--pgd-mode", "reference", "--drop", "joint"])
    assert (args.pgd_mode, args.drop) == ("reference", "joint")
    assert build_parser().parse_args(["rmqm"]).pgd_mode is None
    assert build_parser().parse_args(["sweep", "grid.yaml", "--pgd-mode", "own-loss"]).pgd_mode == "own-loss"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["rmqm", "--pgd-mode", "fgsm"])
    assert "invalid choice: 'fgsm'" in capsys.readouterr().err


def test_sweep_pgd_mode_sets_only_the_pgd_rmqm_jobs():
    from rmqm.cli.sweep_cmd import with_pgd_mode

    configs = [{"seed": 0, "perturbation": "pgd"}, {"seed": 0, "perturbation": "noise"},
               {"seed": 0, "measure": "stats"}, {"seed": 0, "measure": "rmqm", "perturbation": "pgd"}]
    out = with_pgd_mode(configs, "reference")
    assert [c.get("pgd_mode") for c in out] == ["reference", None, None, "reference"]
    assert "pgd_mode" not in configs[0]  # not edited in place
    with pytest.raises(ValueError, match="conflicts"):
        with_pgd_mode([{"seed": 0, "perturbation": "pgd", "pgd_mode": "own-loss"}], "reference")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["rmqm", "--data", "cifar-100", "--no-progress"], "unknown dataset"),
        (["rmqm", "--data", "digits", "--noise-levels", "2", "--perturbation", "noise", "--no-progress"],
         "argument --noise-levels: expected an integer >= 3; got '2'"),
    ],
)
def test_bad_options_exit_with_a_clear_message(zoo_dir, argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--zoo-dir", zoo_dir, "--device", "cpu"])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_fraction_options_parse():
    args = build_parser().parse_args(["rmqm", "--step-size", "2/255", "--epsilon", "0.1"])
    assert args.step_size == pytest.approx(2 / 255) and args.epsilon == pytest.approx(0.1)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["rmqm", "--step-size", "two"])


# ----------------------------------------------------- checked before anything is computed
@pytest.fixture
def afile(tmp_path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


@pytest.fixture
def no_training(monkeypatch):
    """Any training or notebook makes the test fail: a bad option must be refused first."""
    def refuse(*args, **kwargs):
        raise AssertionError("the command started computing")

    monkeypatch.setattr(rmqm.cli.zoo_cmd, "train_zoo", refuse)
    monkeypatch.setattr(rmqm.cli.study_cmd, "run_study", refuse)


def refused(argv: list[str], capsys) -> str:
    """Run ``rmqm argv``; assert it exits with status 2 within a second; return stderr."""
    start = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert time.perf_counter() - start < 1.0
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("command", [["zoo"], ["rmqm"], ["synbench"], ["sweep", "grid.yaml"]])
def test_out_inside_a_file_fails_fast_naming_the_path(no_training, afile, command, capsys):
    out = afile / "x.csv"
    err = refused([*command, "--out", str(out)], capsys)
    assert f"argument --out: cannot write {out}: {afile} is a file, not a folder" in err


@pytest.mark.skipif(not Path("/etc/passwd").is_file(), reason="needs /etc/passwd")
def test_out_under_etc_passwd_fails_fast(no_training, capsys):
    err = refused(["zoo", "--out", "/etc/passwd/x.csv"], capsys)
    assert "cannot write /etc/passwd/x.csv: /etc/passwd is a file, not a folder" in err


@pytest.mark.parametrize("out, message", [
    ("table.xlsx", "table.xlsx must end in .csv or .parquet"),
    ("table", "table must end in .csv or .parquet"),
])
def test_out_needs_a_table_suffix(no_training, out, message, capsys):
    assert message in refused(["zoo", "--out", out], capsys)


def test_out_on_an_existing_folder_is_refused(no_training, tmp_path, capsys):
    folder = tmp_path / "t.csv"
    folder.mkdir()
    assert f"{folder} is a folder; give a file name" in refused(["zoo", "--out", str(folder)], capsys)


def test_figure_needs_an_image_suffix(capsys):
    assert "x.bogus must end in .eps or" in refused(["synbench", "--figure", "x.bogus"], capsys)


@pytest.mark.parametrize("command, option", [
    (["zoo"], "--zoo-dir"), (["rmqm"], "--zoo-dir"), (["synbench"], "--zoo-dir"),
    (["sweep", "grid.yaml"], "--store"), (["study", "run"], "--build-dir"),
])
def test_folder_options_on_a_file_are_refused(no_training, afile, command, option, capsys):
    err = refused([*command, option, str(afile)], capsys)
    assert f"argument {option}: cannot write {afile}: {afile} is a file, not a folder" in err
    err = refused([*command, option, str(afile / "sub")], capsys)
    assert f"{afile} is a file, not a folder" in err


def test_python_m_rmqm_study_refuses_a_build_dir_on_a_file(no_training, afile, capsys):
    with pytest.raises(SystemExit) as exc:
        rmqm.cli.study_cmd.main(["run", "--build-dir", str(afile)])
    assert exc.value.code == 2 and f"{afile} is a file" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "two"])
def test_zoo_epochs_below_one_is_refused(no_training, value, capsys):
    err = refused(["zoo", "--epochs", value], capsys)
    assert f"argument --epochs: expected an integer >= 1; got '{value}'" in err


@pytest.mark.parametrize("option, value, message", [
    ("--dims", "0", "expected an integer >= 1"),
    ("--lr", "0", "expected a finite number > 0"),
    ("--lr", "nan", "expected a finite number > 0"),
    ("--n-eval", "1", "expected an integer >= 2"),
    ("--data", "cifar-100", "unknown dataset 'cifar-100'"),
    ("--transfer", "nope", "unknown dataset 'nope'"),
])
def test_zoo_numbers_and_names_are_checked_when_parsed(no_training, option, value, message, capsys):
    assert f"argument {option}: {message}" in refused(["zoo", option, value], capsys)


@pytest.mark.parametrize("command", [["zoo"], ["rmqm"], ["synbench"]])
@pytest.mark.parametrize("device", ["tpu", "cuda:x", "meta", ""])
def test_unknown_devices_are_refused_up_front(no_training, command, device, capsys):
    assert "argument --device:" in refused([*command, "--device", device], capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_missing_gpu_is_refused_up_front(no_training, capsys):
    assert "no CUDA device is available" in refused(["zoo", "--device", "cuda:0"], capsys)


def test_device_auto_resolves_when_parsed():
    args = build_parser().parse_args(["zoo", "--device", "auto"])
    assert args.device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_file_system_errors_become_one_error_line(monkeypatch, capsys):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/some/where/model.pt")

    monkeypatch.setattr(rmqm.cli.zoo_cmd, "train_zoo", denied)
    err = refused(["zoo"], capsys)
    assert err.strip() == "error: [Errno 13] Permission denied: '/some/where/model.pt'"


def test_rmqm_study_subcommand_checks_the_profile_first(monkeypatch, tmp_path, capsys):
    def refuse(*args, **kwargs):
        raise AssertionError("a notebook would have run")

    monkeypatch.setattr(rmqm.study.run, "run_notebooks", refuse)  # the real run_study must refuse first
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    start = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        main(["study", "run", "--profile", "tiny", "--set", "confidence=2", "--build-dir", str(tmp_path / "b"),
              "--no-book", "--no-progress"])
    assert time.perf_counter() - start < 1.0
    err = capsys.readouterr().err
    assert exc.value.code == 1 and "confidence = 2 (int): expected a number in (0, 1)" in err
    assert not (tmp_path / "b").exists()
