"""The `rmqm` command line: the main job on tiny settings, and its error messages."""

import numpy as np
import pandas as pd
import pytest

from rmqm.cli.main import build_parser, main


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("zoo"))


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
                  "--attack-loss", "own", "--zoo-dir", zoo_dir, "--no-progress", "--device", "cpu"])
    assert table["perturbation"].tolist() == ["pgd"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["rmqm", "--data", "cifar-100", "--no-progress"], "unknown dataset"),
        (["rmqm", "--data", "digits", "--noise-levels", "2", "--perturbation", "noise", "--no-progress"], "n_levels"),
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
