"""Profiles merged over a base, the parameter schema, and run_study's checks before any notebook."""

from __future__ import annotations

import ast
import json
import os
import time
from pathlib import Path

import papermill as pm
import pytest
import torch
import yaml

import rmqm.study.run
from rmqm.cli.study_cmd import main as study_main
from rmqm.study.notebooks import discover_notebooks
from rmqm.study.profiles import (
    RESERVED_PARAMETERS,
    Profile,
    apply_overrides,
    load_profile,
    merge_layers,
    parse_overrides,
)
from rmqm.study.run import run_study
from rmqm.study.schema import SCHEMA, check_output_folder, validate_profile

ROOT = Path(__file__).resolve().parents[2]
#: The profiles, merged and flattened (first written when each repeated every key, git show 64eb229:profiles/<name>.yaml
#: before profiles gained a base), flattened: the merged profiles must give exactly these values.
FLAT = json.loads((Path(__file__).parent / "data" / "profiles_flat.json").read_text())


# ------------------------------------------------------------------ merging over a base
@pytest.mark.parametrize("name", ["tiny", "default", "paper", "full", "pretrained"])
def test_merged_profiles_equal_the_flat_copies(name):
    prof = load_profile(name, ROOT / "profiles")
    got = {"description": prof.description, "parameters": prof.parameters, "notebooks": prof.notebooks}
    # json text: same keys in the same order, same values and types (1 vs 1.0 differ)
    assert json.dumps(got) == json.dumps(FLAT[name])
    assert prof.name == name


@pytest.mark.parametrize("name", ["tiny", "paper", "full", "pretrained"])
def test_derived_profiles_state_only_what_differs_from_default(name):
    raw = yaml.safe_load((ROOT / "profiles" / f"{name}.yaml").read_text())
    base = yaml.safe_load((ROOT / "profiles" / "default.yaml").read_text())["parameters"]
    assert raw["base"] == "default"
    same = [k for k, v in raw["parameters"].items() if k in base and json.dumps(base[k]) == json.dumps(v)]
    assert same == [], f"{name} repeats the base's value of {same}"
    assert len(raw["parameters"]) < len(base)


def write(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.yaml").write_text(text)


def test_base_chain_merges_mappings_and_replaces_lists(tmp_path):
    write(tmp_path, "root", "description: root\nparameters: {a: 1, dims: [1, 2], nested: {x: 1, y: 2}}\n"
                            "notebooks: {nb1: {k: 1, j: 2}}\n")
    write(tmp_path, "mid", "base: root\nparameters: {dims: [3], nested: {y: 5}}\nnotebooks: {nb1: {k: 9}}\n")
    write(tmp_path, "leaf", "base: mid\ndescription: leaf\nparameters: {b: null}\nnotebooks: {nb2: {z: 0}}\n")
    prof = load_profile("leaf", tmp_path)
    assert prof.name == "leaf" and prof.description == "leaf"
    assert prof.parameters == {"a": 1, "dims": [3], "nested": {"x": 1, "y": 5}, "b": None}
    assert prof.notebooks == {"nb1": {"k": 9, "j": 2}, "nb2": {"z": 0}}
    assert load_profile("mid", tmp_path).description == "root"  # inherited when not stated


def test_base_given_as_a_path_relative_to_the_profile(tmp_path):
    (tmp_path / "shared").mkdir()
    write(tmp_path / "shared", "common", "parameters: {a: 1, b: 2}\n")
    write(tmp_path, "p", "base: shared/common.yaml\nparameters: {b: 3}\n")
    assert load_profile(tmp_path / "p.yaml", tmp_path).parameters == {"a": 1, "b": 3}


@pytest.mark.parametrize("files, error, match", [
    ({"p": "base: q\n", "q": "base: p\n"}, ValueError, "cycle: p -> q -> p"),
    ({"p": "base: p\n"}, ValueError, "cycle"),
    ({"p": "base: nope\n"}, FileNotFoundError, r"profile 'nope' \(the base of .*p.yaml\) not found"),
    ({"p": "base: [a]\n"}, ValueError, "'base' must name a profile"),
    ({"p": "base: q\n", "q": "parameters: {a: 1}\nbogus: 2\n"}, ValueError, "unknown top-level keys"),
    ({"p": "base: q\nparameters: {a: {x: 1}}\n", "q": "parameters: {a: [1]}\n"}, ValueError, "cannot merge"),
])
def test_bad_bases_raise_named_errors(tmp_path, files, error, match):
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(error, match=match):
        load_profile("p", tmp_path)


def test_merge_layers_keeps_floats_and_strings_exactly():
    merged = merge_layers({"p": {"s": 0.00784313725490196, "t": "${x}", "n": None}}, {"p": {"n": 3}})
    assert merged == {"p": {"s": 0.00784313725490196, "t": "${x}", "n": 3}}


def test_overrides_replace_values_whole():
    prof = Profile("p", {"dims": [16, 64], "nested": {"a": 1}}, {"nb": {"k": 1}})
    new = apply_overrides(prof, parse_overrides(["dims=[8]", "nested={b: 2}", "nb.k=1e-3"]))
    assert new.parameters == {"dims": [8], "nested": {"b": 2}} and new.notebooks == {"nb": {"k": 1e-3}}


# ------------------------------------------------------------------ the schema
def declared_defaults() -> dict[str, dict[str, object]]:
    """{notebook: {parameter: default value}} from the notebooks' parameters cells."""
    out = {}
    for spec in discover_notebooks(ROOT / "notebooks"):
        params = pm.inspect_notebook(str(spec.path))
        out[spec.name] = {k: ast.literal_eval(v["default"]) for k, v in params.items()}
    return out


def test_schema_covers_exactly_the_notebooks_parameters():
    declared = set().union(*(set(d) for d in declared_defaults().values())) - set(RESERVED_PARAMETERS)
    assert set(SCHEMA) == declared


def test_notebook_defaults_pass_the_schema():
    for nb, defaults in declared_defaults().items():
        values = {k: v for k, v in defaults.items() if k not in RESERVED_PARAMETERS}
        validate_profile(Profile(nb, values), check_device=False)


@pytest.mark.parametrize("name", ["tiny", "default", "paper", "full", "pretrained"])
def test_repository_profiles_pass_the_schema(name):
    prof = load_profile(name, ROOT / "profiles")
    assert set(prof.parameters) == set(SCHEMA)  # the merged profile states every parameter
    validate_profile(prof, check_device=prof.parameters["device"] == "cpu")


GOOD = load_profile("tiny", ROOT / "profiles")


@pytest.mark.parametrize("override, expected", [
    ("confidence=2", "a number in (0, 1)"),
    ("confidence=1", "a number in (0, 1)"),
    ("n_points=abc", "an integer >= 1"),
    ("n_points=1e3", "an integer >= 1"),  # a float, even a whole one
    ("epochs=0", "an integer >= 1"),
    ("epochs=true", "an integer >= 1"),
    ("methods=[]", "a non-empty list"),
    ("methods=[nt-xent, bogus]", "one of ['cross-entropy'"),
    ("dims=[16, 16]", "distinct"),
    ("dims=16", "a non-empty list"),
    ("zoo_seeds=[-1]", "an integer in [0, 4294967295]"),
    ("zoo_seeds=[18446744073709551616]", "an integer in [0, 4294967295]"),
    ("data=cifar-100", "one of ["),
    ("arch=vgg", "one of ['tiny'"),
    ("optimizers=[sgd]", "one of ['adam'"),
    ("device=tpu", "auto, cpu, cuda, cuda:N"),
    ("device=3", "auto, cpu, cuda, cuda:N"),
    ("time_budget_s=0", "null or a finite number > 0"),
    ("n_train=1", "null or an integer >= 2"),
    ("noise_sigma_max=.nan", "a finite number > 0"),
    ("pgd_step_size=2", "a number in (0, 1]"),
    ("pgd_epsilon=-0.1", "a number in (0, 1]"),
    ("n_noise_levels=2", "an integer >= 3"),
    ("pgd_modes=[bogus]", "a non-empty list of distinct values, each one of ['displacement', 'own-loss', 'reference']"),
    ("checkpoints=[1, 4]", "the largest must equal epochs = 2"),
    ("syn_s_step=5", "a number in (0, 4.9]"),
    ("syn_epsilons=[0.0, 1.0]", "0 or a number in"),
    ("syn_epsilons=[]", "a non-empty list"),
    ("attack_radii=[0]", "a non-empty list of distinct values, each a number in (0, 1]"),
    ("syn_n_bootstrap=-1", "an integer >= 0"),
    ("synbench_threshold=0.72", "one of [0.6, 0.65"),
    ("synbench_epsilon=0.3", "one of syn_epsilons [0.0, 0.1, 0.2]"),
    ("05_predicting_downstream.synbench_epsilon=0.3", "one of syn_epsilons"),
    ("05_predicting_downstream.confidence=2", "a number in (0, 1)"),
])
def test_each_bad_value_is_named_with_what_is_expected(override, expected):
    values = parse_overrides([override])
    with pytest.raises(ValueError) as info:
        validate_profile(apply_overrides(GOOD, values), check_device=False)
    message = str(info.value)
    key, value = next(iter(values.items()))
    assert f"{key} = {value!r}" in message and expected in message, message
    assert "1 bad parameter value" in message


def test_synbench_epsilon_must_be_one_notebook_04_computes():
    prof = apply_overrides(GOOD, parse_overrides(["04_synbench.syn_epsilons=[0.1, 0.2]"]))
    with pytest.raises(ValueError, match=r"synbench_epsilon = 0.0: expected one of 04_synbench.syn_epsilons \[0.1, 0.2\]"):
        validate_profile(prof, check_device=False)
    validate_profile(apply_overrides(prof, {"synbench_epsilon": 0.2}), check_device=False)


def test_every_bad_value_is_named_in_one_error():
    prof = apply_overrides(GOOD, parse_overrides(["confidence=2", "n_points=abc", "epochs=0", "data=nope"]))
    with pytest.raises(ValueError, match="4 bad parameter value") as info:
        validate_profile(prof, check_device=False)
    for key in ("confidence = 2", "n_points = 'abc'", "epochs = 0", "data = 'nope'"):
        assert key in str(info.value)


def test_unknown_parameters_are_left_to_the_notebook_check():
    assert validate_profile(Profile("t", {"scale": 3}), check_device=False).parameters == {"scale": 3}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_missing_gpu_is_refused_up_front():
    with pytest.raises(ValueError, match="device = 'cuda'.*no CUDA device"):
        validate_profile(apply_overrides(GOOD, {"device": "cuda"}))
    validate_profile(apply_overrides(GOOD, {"device": "auto"}))


# ------------------------------------------------------------------ output folders
def test_check_output_folder(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("")
    assert check_output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # nothing is created
    with pytest.raises(ValueError, match=f"cannot write build folder {afile}: {afile} is a file"):
        check_output_folder(afile, "build folder")
    with pytest.raises(ValueError, match=f"{afile} is a file, not a folder"):
        check_output_folder(afile / "sub" / "x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_check_output_folder_without_permission(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ValueError, match="no permission"):
        check_output_folder(locked / "x")


# ------------------------------------------------------------------ run_study checks first
@pytest.fixture
def no_notebooks(monkeypatch):
    """Make any notebook execution fail the test: the checks must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("a notebook would have run")

    monkeypatch.setattr(rmqm.study.run, "run_notebooks", refuse)


@pytest.mark.parametrize("override, named", [
    ("confidence=2", "confidence = 2 (int): expected a number in (0, 1)"),
    ("n_points=abc", "n_points = 'abc' (str): expected an integer >= 1"),
])
def test_bad_set_values_fail_before_any_notebook(no_notebooks, tmp_path, override, named):
    start = time.perf_counter()
    with pytest.raises(ValueError) as info:
        run_study("tiny", parse_overrides([override]), root=ROOT, build_dir=tmp_path / "build", progress=False)
    assert time.perf_counter() - start < 1.0
    assert named in str(info.value)
    assert not (tmp_path / "build").exists()


def test_study_cli_names_the_bad_set_value(no_notebooks, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code = study_main(["run", "--profile", "tiny", "--set", "confidence=2", "--set", "n_points=abc",
                       "--build-dir", str(tmp_path / "b"), "--no-book", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: profile 'tiny' has 2 bad parameter value(s)")
    assert "confidence = 2" in err and "n_points = 'abc'" in err and "Traceback" not in err


def test_build_dir_on_a_file_fails_before_any_notebook(no_notebooks, tmp_path, capsys, monkeypatch):
    afile = tmp_path / "build"
    afile.write_text("")
    with pytest.raises(ValueError, match=f"{afile} is a file, not a folder"):
        run_study("tiny", root=ROOT, build_dir=afile, progress=False)
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as info:  # the CLI refuses it when parsing
        study_main(["run", "--profile", "tiny", "--build-dir", str(afile)])
    assert info.value.code == 2
    assert f"argument --build-dir: cannot write {afile}: {afile} is a file" in capsys.readouterr().err
