"""The pre-registered confirmatory families: the shipped file loads, bad files are refused with
the problem named, and the hash and last commit are reported."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from rmqm.study.endpoints import default_endpoints_path, last_commit, load_endpoints


def test_the_shipped_file_declares_the_four_families():
    ep = load_endpoints()
    assert [f.id for f in ep.families] == ["rmqm-noise", "synbench-reference", "rmqm-steps", "synbench-claim2"]
    assert ep.alpha == 0.05
    assert ep.sha256 == hashlib.sha256(default_endpoints_path().read_bytes()).hexdigest()
    ref = ep.family("synbench-reference")
    assert (ref.get("threshold"), ref.get("epsilon"), ref.get("direction")) == (0.7, 0.2, "all-ones")
    assert ref.get("encoders") == ("without", "with")
    assert len(ep.family("synbench-claim2").get("radii")) >= 2
    with pytest.raises(KeyError, match="declared"):
        ep.family("nope")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.update(alpha=1.5), "alpha must lie in"),
    (lambda d: d["families"][0].update(kind="vote"), "unknown kind"),
    (lambda d: d["families"][0].pop("score"), "lacks \\['score'\\]"),
    (lambda d: d["families"][3].update(radii=[]), "radii must be"),
    (lambda d: d["families"].append(dict(d["families"][0])), "repeated family id"),
])
def test_a_bad_file_is_refused_naming_the_problem(tmp_path: Path, edit, message):
    data = yaml.safe_load(default_endpoints_path().read_text())
    edit(data)
    path = tmp_path / "endpoints.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=message):
        load_endpoints(path)


def test_last_commit_falls_back_without_a_repository(tmp_path: Path):
    copy = tmp_path / "endpoints.yaml"
    shutil.copy(default_endpoints_path(), copy)
    assert last_commit(copy).startswith("unknown")
    with pytest.raises(FileNotFoundError, match="book/endpoints.yaml"):
        load_endpoints(tmp_path / "missing.yaml")
