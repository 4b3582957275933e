"""The book's quoted numbers come from the run's parameters (rmqm.study.substitutions)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from rmqm.study.abstract import abstract_substitutions
from rmqm.study.chapters.synbench import mean_scales
from rmqm.study.profiles import load_profile
from rmqm.study.substitutions import book_substitutions, build_substitutions, source_commit, stage_substitutions

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["tiny", "default", "full", "paper"])
def test_quoted_grids_are_the_grids_the_profile_runs(name):
    params = load_profile(name, ROOT / "profiles").parameters
    subs = book_substitutions(params)
    scales = mean_scales(params["syn_s_step"])
    assert subs["syn_n_scales"] == f"{len(scales):,}"
    assert subs["syn_s_range"] == f"{scales[0]:g} to {scales[-1]:g} in steps of {params['syn_s_step']:g}"
    assert subs["syn_n_samples"] == f"{params['syn_n_samples']:,}"
    assert subs["n_seeds"] == str(len(params["zoo_seeds"]))
    assert subs["n_train"] == ("all" if params["n_train"] is None else f"{params['n_train']:,}")


def test_number_formats():
    subs = book_substitutions({"pgd_step_size": 2 / 255, "syn_epsilons": [0.0, 0.2], "checkpoints": [1, 2, 4],
                               "confidence": 0.95, "dims": [16]})
    assert subs["pgd_step"] == "2/255"
    assert subs["syn_epsilons"] == "0 and 0.2"
    assert subs["checkpoints"] == "1, 2 and 4"
    assert subs["confidence_pct"] == "95" and subs["dims"] == "16"
    assert book_substitutions({"pgd_step_size": 0.01})["pgd_step"] == "0.01"
    assert book_substitutions({})["syn_n_scales"] == "(not set)"


def test_added_encoders_in_words():
    encoders = [{"name": "lite0-imagenet-48px", "builtin": "efficientnet-lite0", "input_size": 48},
                {"name": "lite0-random", "builtin": "efficientnet-lite0", "pretrained": False},
                {"name": "mine", "factory": "m:f"}, "efficientnet-lite1"]
    assert book_substitutions({"encoders": encoders})["added_encoders"] == (
        "lite0-imagenet-48px (efficientnet-lite0, ImageNet weights, 48 px), lite0-random (efficientnet-lite0, "
        "random init, native size), mine and efficientnet-lite1")
    assert book_substitutions({"encoders": []})["added_encoders"] == "none"
    assert book_substitutions({})["attack_radii"] == "(not set)"
    assert book_substitutions({"attack_radii": [0.003, 0.01, 0.03]})["attack_radii"] == "0.003, 0.01 and 0.03"


def test_every_key_the_pages_use_is_made():
    made = set(book_substitutions(load_profile("default", ROOT / "profiles").parameters))
    made |= set(abstract_substitutions(None)) | set(build_substitutions(ROOT, {"profile": "default"}))
    pages = [*(ROOT / "book").glob("*.md"), *(ROOT / "notebooks").glob("*.ipynb")]
    used = {k for page in pages for k in re.findall(r"\{\{\s*(\w+)\s*\}\}", page.read_text())}
    assert used, "the methods page quotes the run's numbers through substitutions"
    assert used <= made, f"pages use substitutions no build makes: {sorted(used - made)}"


def test_stage_substitutions_keeps_the_rest_of_the_config(tmp_path):
    config = tmp_path / "_config.yml"
    config.write_text("title: T\nparse:\n  myst_enable_extensions: [substitution]\n  myst_substitutions: {own: x}\n")
    subs = stage_substitutions(config, {"syn_s_step": 0.7, "zoo_seeds": [0, 1]})
    data = yaml.safe_load(config.read_text())
    assert data["title"] == "T" and data["parse"]["myst_enable_extensions"] == ["substitution"]
    assert data["parse"]["myst_substitutions"]["own"] == "x"
    assert data["parse"]["myst_substitutions"]["syn_n_scales"] == subs["syn_n_scales"] == "7"
    assert data["parse"]["myst_substitutions"]["n_seeds"] == "2"
    with pytest.raises(FileNotFoundError, match="book config .* is missing"):
        stage_substitutions(tmp_path / "nope.yml", {})


def test_stage_substitutions_adds_the_results_and_identity(tmp_path):
    config = tmp_path / "_config.yml"
    config.write_text("title: T\n")
    subs = stage_substitutions(config, {"zoo_seeds": [0]}, {"n_claims": "3", "build_profile": "tiny"})
    staged = yaml.safe_load(config.read_text())["parse"]["myst_substitutions"]
    assert staged["n_claims"] == subs["n_claims"] == "3" and staged["build_profile"] == "tiny"
    assert staged["n_seeds"] == "1"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_source_commit_names_the_commit_and_uncommitted_changes(tmp_path):
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              capture_output=True, text=True, check=True).stdout.strip()

    assert source_commit(tmp_path) == "unknown (not a git checkout)"
    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("commit", "-qm", "one")
    head = git("rev-parse", "HEAD")
    assert source_commit(tmp_path) == head and len(head) == 40
    (tmp_path / "b.txt").write_text("untracked files do not count")
    assert source_commit(tmp_path) == head
    (tmp_path / "a.txt").write_text("2")
    assert source_commit(tmp_path) == head + " plus uncommitted changes"
    subs = build_substitutions(tmp_path, {"profile": "tiny"})
    assert subs["build_commit"] == head + " plus uncommitted changes" and subs["build_profile"] == "tiny"
    assert build_substitutions(tmp_path, {})["build_profile"] == "unknown"
