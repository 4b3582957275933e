"""The progress helper: its show/hide rule and the bar it writes."""

import io
import sys

import pytest

from rmqm._utils.progress import ENV_VAR, describe, progress, progress_bar, progress_enabled


@pytest.mark.parametrize(("enabled", "environ", "shown"), [
    (True, {}, True),
    (False, {}, False),
    (True, {"CI": "true"}, False),
    (True, {"CI": "true", ENV_VAR: "1"}, True),
    (True, {ENV_VAR: "off"}, False),
    (True, {ENV_VAR: " Yes "}, True),
    (False, {ENV_VAR: "1"}, False),  # the caller's progress=False always wins
])
def test_rule(enabled, environ, shown):
    assert progress_enabled(enabled, environ) is shown


def test_bad_environment_value_is_named():
    with pytest.raises(ValueError, match=ENV_VAR):
        progress_enabled(True, {ENV_VAR: "maybe"})


def test_bar_writes_stage_and_item_to_stderr(monkeypatch):
    stream = io.StringIO()  # not a terminal, like a notebook's stderr
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert list(progress(iter(["lenet-a", "lenet-b"]), "SynBench", total=2, label=str.upper)) == ["lenet-a", "lenet-b"]
    text = stream.getvalue()
    assert "SynBench" in text and "LENET-B" in text and "2/2" in text
    with progress_bar(desc="hidden", total=3, enabled=False) as bar:
        bar.update(3)
    assert "hidden" not in stream.getvalue()


def test_hidden_bar_still_iterates(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "0")
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    assert list(progress(range(4), "stage", label=lambda i: i)) == [0, 1, 2, 3]
    assert stream.getvalue() == ""


def test_describe_names_encoder_and_stage():
    config = {"model": "lenet-a", "seed": 2, "perturbation": "pgd", "pgd_mode": "own-loss", "data": {"n": 5}, "lr": 1}
    assert describe(config) == "lenet-a 2 pgd own-loss"
    assert describe({"method": "vicreg", "dim": 16, "zoo": {"epochs": 2}}) == "vicreg 16"


def test_child_progress_turns_bars_off_for_child_processes_and_restores_the_environment(monkeypatch):
    import os
    import subprocess

    from rmqm._utils.progress import child_progress

    monkeypatch.setenv(ENV_VAR, "1")
    probe = [sys.executable, "-c", f"import os; print(os.environ.get({ENV_VAR!r}))"]
    with child_progress(False):
        assert subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip() == "0"
    assert os.environ[ENV_VAR] == "1"
    monkeypatch.delenv(ENV_VAR)
    with child_progress(False):
        pass
    assert ENV_VAR not in os.environ
    with child_progress(True):
        assert ENV_VAR not in os.environ
