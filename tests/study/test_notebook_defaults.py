"""A notebook opened on its own runs the default study: its parameters cell equals profiles/default.yaml."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from rmqm.study.notebooks import discover_notebooks, read_notebook

ROOT = Path(__file__).resolve().parents[2]
RUNNER_ONLY = {"results_dir", "profile"}  # set by the runner for every notebook, never by a profile


def _defaults(path: Path) -> dict[str, object]:
    cell = next(c for c in read_notebook(path).cells if "parameters" in c.get("metadata", {}).get("tags", []))
    out = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


SPECS = discover_notebooks(ROOT / "notebooks")


@pytest.mark.parametrize("spec", SPECS, ids=[s.path.stem for s in SPECS])
def test_parameters_cell_equals_the_default_profile(spec):
    profile = yaml.safe_load((ROOT / "profiles" / "default.yaml").read_text())["parameters"]
    defaults = _defaults(spec.path)
    unknown = sorted(set(defaults) - set(profile) - RUNNER_ONLY)
    assert not unknown, f"{spec.path.name} declares parameters the default profile lacks: {unknown}"
    differ = {k: (v, profile[k]) for k, v in defaults.items()
              if k in profile and (list(v) if isinstance(v, tuple) else v) != profile[k]}
    assert not differ, f"{spec.path.name}: notebook default vs profiles/default.yaml: {differ}"
    assert defaults.get("profile", "default") == "default", f"{spec.path.name}: profile = {defaults['profile']!r}"
