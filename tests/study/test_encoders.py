"""The ``encoders`` profile parameter: spec parsing, loading, and the check before any notebook starts."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch

from rmqm.models.adapters import InputAdapter
from rmqm.models.backbones import LeNet, TinyCNN
from rmqm.models.encoder import Encoder
from rmqm.models.pretrained import PRETRAINED_ENCODERS
from rmqm.study.encoders import (
    EncoderSpecError,
    check_encoder_specs,
    check_profile_encoders,
    load_encoder,
    parse_encoder_specs,
    study_image_shape,
)
from rmqm.study.profiles import Profile
from rmqm.study.run import run_study
from rmqm.study.runner import encoder_sources, run_notebooks
from rmqm.training.checkpoints import TrainedModel, model_config, model_name, save_model

HERE = Path(__file__).resolve().parent
STUDY = {"in_channels": 1, "input_size": 28}


@pytest.fixture
def factories(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make tests/study/encoder_factories.py importable as ``encoder_factories``, and allow
    factories to run code (``RMQM_ALLOW_CODE=1``, what ``--allow-code`` sets)."""
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("RMQM_ALLOW_CODE", "1")


def problems_of(value: list, tmp_path: Path | None = None) -> list[str]:
    """Every problem of an ``encoders`` value: its form first, then loading and one batch."""
    try:
        specs = parse_encoder_specs(value, base_dir=tmp_path)
    except EncoderSpecError as err:
        return err.problems
    return check_encoder_specs(specs, **STUDY)


def only_problem(value: list, tmp_path: Path | None = None) -> str:
    found = problems_of(value, tmp_path)
    assert len(found) == 1, found
    return found[0]


def save_lenet_state(tmp_path: Path, dim: int = 16) -> Path:
    path = tmp_path / "lenet.pt"
    torch.save(LeNet(1, dim).state_dict(), path)
    return path


# -- valid specs --------------------------------------------------------------------------------


def test_state_dict_checkpoint_loads_and_embeds(tmp_path: Path) -> None:
    net = LeNet(1, 16).eval()
    torch.save(net.state_dict(), tmp_path / "lenet.pt")
    (spec,) = parse_encoder_specs([{"name": "mine", "checkpoint": "lenet.pt", "arch": "lenet", "dim": 16}],
                                  base_dir=tmp_path)
    assert check_encoder_specs([spec], **STUDY) == []
    name, encoder = load_encoder(spec, **STUDY)
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert name == "mine" and isinstance(encoder, InputAdapter) and not encoder.training
    assert torch.equal(encoder(x), net(x))  # same weights, nothing to adapt


def test_encoder_state_dict_keeps_its_normalisation_and_tiny_width_is_read(tmp_path: Path) -> None:
    enc = Encoder(TinyCNN(1, 8, width=6), mean=(0.3,), std=(0.4,)).eval()
    torch.save(enc.state_dict(), tmp_path / "enc.pt")
    specs = parse_encoder_specs([{"name": "tiny6", "checkpoint": str(tmp_path / "enc.pt"), "arch": "tiny", "dim": 8}])
    _, encoder = load_encoder(specs[0], **STUDY)
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(encoder(x), enc(x), atol=1e-6)


def test_zoo_checkpoint_needs_no_arch_and_checks_a_given_one(tmp_path: Path) -> None:
    config = model_config("digits", "random-init", 8, epochs=0, width=4)
    encoder = Encoder(TinyCNN(1, 8, width=4), mean=(0.5,), std=(0.5,), name=model_name(config))
    info = {"in_channels": 1, "n_classes": 10, "mean": [0.5], "std": [0.5], "input_size": [28, 28]}
    model = TrainedModel(model_name(config), encoder, None, config, pd.DataFrame(), info)
    save_model(model, tmp_path / "zoo.pt")
    assert problems_of([{"name": "z", "checkpoint": "zoo.pt"}], tmp_path) == []
    message = only_problem([{"name": "z", "checkpoint": "zoo.pt", "arch": "tiny", "dim": 9}], tmp_path)
    assert "encoders[0] ('z')" in message and "dim = 9" in message and "holds dim = 8" in message


def test_factory_plain_module_and_module_with_info(factories: None) -> None:
    specs = parse_encoder_specs([
        {"name": "plain", "factory": "encoder_factories:tiny", "kwargs": {"dim": 5}},
        {"name": "rgb", "factory": "encoder_factories:rgb16"},
    ])
    assert check_encoder_specs(specs, **STUDY) == []
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    assert load_encoder(specs[0], **STUDY)[1](x).shape == (4, 5)
    z = load_encoder(specs[1], **STUDY)[1](x)
    assert z.shape == (4, 3)
    assert torch.allclose(z[:, 0], z[:, 1])  # a grey image repeated in all three channels
    flat = torch.full((2, 1, 28, 28), 0.8)  # a constant image stays constant: (0.8 - 0.5) / 0.25 = 1.2
    assert torch.allclose(load_encoder(specs[1], **STUDY)[1](flat), torch.full((2, 3), 1.2), atol=1e-5)


def test_factory_module_in_base_dir_is_found_and_sys_path_restored(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_root_encoders.py").write_text(
        "from torch import nn\n\ndef build(dim=3):\n    return nn.Sequential(nn.Flatten(), nn.Linear(784, dim))\n")
    monkeypatch.delitem(sys.modules, "my_root_encoders", raising=False)
    monkeypatch.setenv("RMQM_ALLOW_CODE", "1")
    before = list(sys.path)
    (spec,) = parse_encoder_specs([{"name": "root", "factory": "my_root_encoders:build"}], base_dir=tmp_path)
    assert check_encoder_specs([spec], **STUDY) == []
    assert sys.path == before
    monkeypatch.delitem(sys.modules, "my_root_encoders")
    assert "cannot import" in only_problem([{"name": "root", "factory": "my_root_encoders:build"}])  # no base_dir


@pytest.mark.slow  # about 15 s on a CPU: loads EfficientNet-Lite0 three times
@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite_pytorch") is None,
                    reason="the efficientnet-lite-pytorch wheel (rmqm.models.pretrained) is not installed")
def test_builtin_by_name_on_a_small_input() -> None:
    name = PRETRAINED_ENCODERS[0]
    specs = parse_encoder_specs([{"name": name, "input_size": 32}, {"builtin": name, "name": "rand",
                                                                     "pretrained": False, "input_size": 32}])
    assert [s.kind for s in specs] == ["builtin", "builtin"]
    assert check_encoder_specs(specs, **STUDY) == []
    _, encoder = load_encoder(specs[0], **STUDY)
    assert encoder(torch.rand(2, 1, 28, 28)).shape == (2, 1280)


# -- every kind of bad spec -----------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    message = only_problem([{"name": "gone", "checkpoint": "nope.pt", "arch": "lenet", "dim": 4}], tmp_path)
    assert "encoders[0] ('gone')" in message and "not found" in message and "fix the path" in message


def test_unknown_architecture(tmp_path: Path) -> None:
    save_lenet_state(tmp_path)
    message = only_problem([{"name": "x", "checkpoint": "lenet.pt", "arch": "vgg", "dim": 16}], tmp_path)
    assert "encoders[0] ('x')" in message and "unknown architecture 'vgg'" in message and "lenet" in message


def test_weights_of_another_architecture_or_size(tmp_path: Path) -> None:
    save_lenet_state(tmp_path)
    message = only_problem([{"name": "x", "checkpoint": "lenet.pt", "arch": "tiny", "dim": 16}], tmp_path)
    assert "do not fit arch 'tiny'" in message
    message = only_problem([{"name": "x", "checkpoint": "lenet.pt", "arch": "lenet", "dim": 17}], tmp_path)
    assert "do not fit" in message and "dim 17" in message
    message = only_problem([{"name": "x", "checkpoint": "lenet.pt"}], tmp_path)
    assert "needs arch" in message


def test_unreadable_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    message = only_problem([{"name": "j", "checkpoint": "junk.pt", "arch": "lenet", "dim": 4}], tmp_path)
    assert "encoders[0] ('j')" in message and "not a readable torch checkpoint" in message


def test_factory_import_errors(factories: None) -> None:
    message = only_problem([{"name": "f", "factory": "no_such_module_here:build"}])
    assert "encoders[0] ('f')" in message and "cannot import 'no_such_module_here'" in message
    assert "PYTHONPATH" in message
    message = only_problem([{"name": "f", "factory": "encoder_factories:nothing"}])
    assert "has no function 'nothing'" in message
    message = only_problem([{"name": "f", "factory": "not a factory"}])
    assert "package.module:function" in message


def test_factory_that_raises_or_returns_no_module(factories: None) -> None:
    message = only_problem([{"name": "r", "factory": "encoder_factories:raises", "kwargs": {"message": "boom"}}])
    assert "encoders[0] ('r')" in message and "raised RuntimeError: boom" in message
    message = only_problem([{"name": "r", "factory": "encoder_factories:tiny", "kwargs": {"depth": 3}}])
    assert "raised TypeError" in message and "kwargs" in message
    message = only_problem([{"name": "s", "factory": "encoder_factories:not_a_module"}])
    assert "must return an nn.Module" in message


@pytest.mark.parametrize("factory, expected", [
    ("flat_output", "output shape (2,)"),
    ("rank3_output", "output shape (2, 1, 1)"),
    ("nan_output", "NaN or inf"),
    ("detached_output", "no gradient"),
])
def test_bad_outputs(factories: None, factory: str, expected: str) -> None:
    message = only_problem([{"name": "out", "factory": f"encoder_factories:{factory}"}])
    assert "encoders[0] ('out')" in message and expected in message


def test_duplicate_and_clashing_names(factories: None) -> None:
    spec = {"factory": "encoder_factories:tiny"}
    found = problems_of([{"name": "a", **spec}, {"name": "a", **spec}])
    assert found == ["encoders[1] ('a'): duplicate name, also used by encoders[0]; give each encoder its own name"]
    zoo = model_name(model_config("digits", "cross-entropy", 8))
    assert "clashes" in only_problem([{"name": zoo, **spec}])
    assert "clashes" in only_problem([{"name": PRETRAINED_ENCODERS[0], **spec}])
    specs = parse_encoder_specs([{"name": "taken", **spec}])
    assert "clashes" in check_encoder_specs(specs, **STUDY, reserved=["taken"])[0]


def test_form_errors_are_all_reported_at_once() -> None:
    with pytest.raises(EncoderSpecError) as err:
        parse_encoder_specs([
            {"name": "a", "checkpoint": "x.pt", "factory": "m:f"},
            {"name": "b"},
            {"name": "c d", "factory": "m:f"},
            {"name": "e", "checkpoint": "x.pt", "arch": "lenet", "dim": 0, "colour": 1},
            {"builtin": "resnet-9000"},
            7,
        ])
    text = str(err.value)
    assert err.value.problems[0].startswith("encoders[0] ('a'): give exactly one of")
    for expected in ["encoders[1] ('b'): give exactly one of", "encoders[2]: name must be",
                     "dim must be an integer", "unknown key(s) ['colour']",
                     "unknown built-in encoder 'resnet-9000'", "encoders[5]: a spec must be"]:
        assert expected in text
    assert isinstance(err.value, ValueError)
    with pytest.raises(EncoderSpecError, match="must be a list"):
        parse_encoder_specs({"name": "a"})
    assert parse_encoder_specs(None) == [] and parse_encoder_specs([]) == []


# -- the runner's hook ----------------------------------------------------------------------------


def test_profile_hook_stops_on_bad_specs_and_names_them(factories: None, tmp_path: Path) -> None:
    profile = Profile("mine", {"data": "digits", "encoders": [
        {"name": "ok", "factory": "encoder_factories:tiny"},
        {"name": "gone", "checkpoint": "missing.pt", "arch": "lenet", "dim": 4},
    ]}, {"03_noise_vs_pgd": {"encoders": [{"name": "flat", "factory": "encoder_factories:flat_output"}]}})
    with pytest.raises(EncoderSpecError) as err:
        check_profile_encoders(profile, base_dir=tmp_path)
    assert len(err.value.problems) == 2
    assert err.value.problems[0].startswith("encoders[1] ('gone')")
    assert err.value.problems[1].startswith("03_noise_vs_pgd.encoders[0] ('flat')")


def test_profile_hook_passes_good_specs_and_ignores_empty_ones(factories: None) -> None:
    good = [{"name": "ok", "factory": "encoder_factories:tiny"}]
    check_profile_encoders(Profile("p", {"data": "digits", "encoders": good}))
    check_profile_encoders(Profile("p", {"data": "no-such-data", "encoders": []}))  # nothing read
    check_profile_encoders(Profile("p", {}))
    assert study_image_shape("digits") == (1, 28, 28)


def test_run_study_refuses_a_bad_spec_before_any_notebook(tmp_path: Path, write_nb: Callable[..., Path]) -> None:
    marker = tmp_path / "ran"
    write_nb(tmp_path / "notebooks", "01_a", "encoders = []\ndata = 'digits'", [f"open({str(marker)!r}, 'w')"])
    profile = Profile("bad", {"data": "digits", "encoders": [{"name": "x", "checkpoint": "nope.pt", "arch": "tiny",
                                                             "dim": 4}]})
    with pytest.raises(EncoderSpecError, match=r"encoders\[0\] \('x'\).*not found"):
        run_study(profile, root=tmp_path, build=False, progress=False, log=lambda _: None)
    assert not marker.exists() and not (tmp_path / "build" / "bad").exists()


# -- the runner's cache key follows the encoders' files ---------------------------------------------


def test_encoder_sources_hash_checkpoints_and_factory_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RMQM_ALLOW_CODE", "1")
    save_lenet_state(tmp_path)
    (tmp_path / "root_factory_mod.py").write_text("def build():\n    raise RuntimeError\n")
    value = [{"name": "c", "checkpoint": "lenet.pt", "arch": "lenet", "dim": 16},
             {"name": "f", "factory": "root_factory_mod:build"},
             {"name": "g", "factory": "no_such_module_anywhere:build"},
             {"builtin": PRETRAINED_ENCODERS[0]}]
    first = encoder_sources(value, tmp_path)
    assert set(first) == {"c", "f", "g", PRETRAINED_ENCODERS[0]}
    assert first["c"] and first["f"] and first["g"] is None and first[PRETRAINED_ENCODERS[0]] == PRETRAINED_ENCODERS[0]
    torch.save(LeNet(1, 16).state_dict(), tmp_path / "lenet.pt")  # new random weights
    (tmp_path / "root_factory_mod.py").write_text("def build():\n    raise ValueError\n")
    second = encoder_sources(value, tmp_path)
    assert second["c"] != first["c"] and second["f"] != first["f"]
    (tmp_path / "lenet.pt").unlink()
    assert encoder_sources(value, tmp_path)["c"] is None
    monkeypatch.delenv("RMQM_ALLOW_CODE")  # finding a module imports its package: refused
    with pytest.raises(EncoderSpecError, match="allow-code"):
        encoder_sources(value, tmp_path)


def test_run_reruns_a_notebook_when_an_encoder_checkpoint_changes(tmp_path: Path,
                                                                  write_nb: Callable[..., Path]) -> None:
    save_lenet_state(tmp_path)
    notebooks = tmp_path / "notebooks"
    write_nb(notebooks, "01_mine", "encoders = []", ["n = len(encoders)"])
    profile = Profile("p", {"encoders": [{"name": "c", "checkpoint": "lenet.pt", "arch": "lenet", "dim": 16}]})
    logs: list[str] = []

    def statuses() -> list[str]:
        return [r.status for r in run_notebooks(profile, notebooks, tmp_path / "build", progress=False,
                                                log=logs.append)]

    assert statuses() == ["executed"]
    assert statuses() == ["cached"]
    torch.save(LeNet(1, 16).state_dict(), tmp_path / "lenet.pt")  # retrained, same path
    assert statuses() == ["executed"]
    assert "[p] 01_mine: executing (its data changed)" in logs


def test_factory_refused_before_any_import_unless_code_is_allowed(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "evil_factory.py").write_text(f"open({str(marker)!r}, 'w').close()\n\ndef build():\n    pass\n")
    monkeypatch.delitem(sys.modules, "evil_factory", raising=False)
    monkeypatch.delenv("RMQM_ALLOW_CODE", raising=False)
    value = [{"name": "x", "factory": "evil_factory:build"}]
    message = only_problem(value, tmp_path)
    assert "--allow-code" in message and "RMQM_ALLOW_CODE=1" in message and "runs code" in message
    with pytest.raises(EncoderSpecError, match="RMQM_ALLOW_CODE"):
        check_profile_encoders(Profile("p", {"encoders": value}), base_dir=tmp_path)
    assert not marker.exists() and "evil_factory" not in sys.modules
    monkeypatch.setenv("RMQM_ALLOW_CODE", "0")  # only 1 allows
    assert "RMQM_ALLOW_CODE" in only_problem(value, tmp_path)
    assert not marker.exists()
