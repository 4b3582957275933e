"""The classroom profile (profiles/classroom.yaml): a valid profile over ``default`` that states
only what it changes, keeps the MNIST LeNet zoo, and declares its time budget."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from rmqm.study.notebooks import check_profile, discover_notebooks
from rmqm.study.profiles import load_profile
from rmqm.study.schema import validate_profile

ROOT = Path(__file__).resolve().parents[2]


def raw(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / f"{name}.yaml").read_text())


def test_classroom_loads_and_passes_the_schema_and_the_notebooks():
    prof = load_profile("classroom", ROOT / "profiles")
    assert prof.name == "classroom"
    assert validate_profile(prof, check_device=False) is prof
    check_profile(prof, discover_notebooks(ROOT / "notebooks"))  # raises on an undeclared parameter


def test_classroom_states_only_what_differs_from_default():
    mine = raw("classroom")
    base = raw("default")["parameters"]
    assert mine["base"] == "default"
    assert set(mine["parameters"]) <= set(base), "classroom names a parameter the base does not have"
    same = [k for k, v in mine["parameters"].items() if json.dumps(base[k]) == json.dumps(v)]
    assert same == [], f"classroom repeats the base's value of {same}"
    assert len(mine["parameters"]) < len(base)


def test_classroom_keeps_the_mnist_lenet_zoo_with_intervals():
    params = load_profile("classroom", ROOT / "profiles").parameters
    assert params["data"] == "mnist" and params["arch"] == "lenet"
    assert len(params["zoo_seeds"]) >= 3, "t-intervals over seeds need at least 3 seeds to be worth discussing"
    assert {"cross-entropy", "random-init"} <= set(params["methods"])
    assert max(params["checkpoints"]) == params["epochs"]
    # one attack batch per seed: the own losses are batch means over the same points as the reference
    assert params["attack_batch_size"] == params["n_points"]


def test_classroom_is_smaller_than_default_everywhere_it_costs_time():
    small = load_profile("classroom", ROOT / "profiles").parameters
    big = load_profile("default", ROOT / "profiles").parameters
    for key in ("epochs", "n_points", "n_noise_levels", "n_pgd_levels", "n_resamples"):
        assert small[key] < big[key], key
    assert small["n_train"] < big["n_train"]
    assert len(small["methods"]) * len(small["dims"]) < len(big["methods"]) * len(big["dims"])


def test_classroom_synbench_samples_cover_the_identity_control():
    # notebook 04's identity control fits LDA on the raw 28 x 28 MNIST pixels: its pooled
    # covariance is singular below d + 2 = 786 samples (rmqm.metrics.synbench), so a smaller
    # syn_n_samples stops the classroom run in chapter 4
    params = load_profile("classroom", ROOT / "profiles").parameters
    assert params["syn_n_samples"] >= 28 * 28 + 2


def test_classroom_description_and_header_state_the_time_budget():
    text = (ROOT / "profiles" / "classroom.yaml").read_text()
    description = raw("classroom")["description"]
    assert re.search(r"10 min", description) and "2 CPU cores" in description
    # the header comment quotes a measured wall time
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert re.search(r"[Mm]easured", header) and re.search(r"\d+ min \d+ s|\d+:\d\d", header)
