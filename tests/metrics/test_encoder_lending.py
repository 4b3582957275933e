"""Every measurement lends the encoder: it runs on the asked device in eval mode and comes
back on the caller's device and in the caller's train/eval mode; `device` takes a string,
a torch.device or "auto" everywhere."""

import pytest
import torch
from torch import nn

from rmqm._utils.device import resolve_device
from rmqm.data.offline import load_digits
from rmqm.metrics.probes import embed_dataset, evaluate_probes
from rmqm.metrics.rmqm.alterations import PGD, WhiteNoise
from rmqm.metrics.rmqm.measure import measure_rmqm
from rmqm.metrics.synbench.evaluate import evaluate_synbench
from rmqm.models.backbones import TinyCNN
from rmqm.models.encoder import Encoder

DATA = load_digits(n=40, seed=0)
SYN = dict(s_values=[1.0, 2.0], n_train=40, n_test=16, n_bootstrap=0, thresholds=(0.6,), progress=False)


def mixed_mode_encoder() -> Encoder:
    """Training mode, but with the first BatchNorm frozen in eval mode (a common fine-tuning set-up)."""
    torch.manual_seed(0)
    encoder = Encoder(TinyCNN(1, dim=8, width=4), (0.2,), (0.3,)).train()
    encoder.backbone.features[1].eval()
    return encoder


def modes(module: nn.Module) -> list[bool]:
    return [m.training for m in module.modules()]


MEASUREMENTS = {
    "measure_rmqm": lambda enc, device: measure_rmqm(enc, DATA.images[:6], WhiteNoise(n_levels=3),
                                                     progress=False, device=device),
    "measure_rmqm_pgd": lambda enc, device: measure_rmqm(enc, DATA.images[:6], PGD(n_levels=3),
                                                         progress=False, device=device),
    "evaluate_synbench": lambda enc, device: evaluate_synbench(enc, (1, 28, 28), device=device, **SYN),
    "embed_dataset": lambda enc, device: embed_dataset(enc, DATA.images[:6], batch_size=4, device=device),
    "evaluate_probes": lambda enc, device: evaluate_probes(enc, DATA, k=3, device=device),
}


@pytest.mark.parametrize("name", sorted(MEASUREMENTS))
@pytest.mark.parametrize("device", ["cpu", torch.device("cpu"), "auto"])
def test_encoder_comes_back_in_the_callers_mode(name, device):
    encoder = mixed_mode_encoder()
    before = modes(encoder)
    seen = []
    handle = encoder.register_forward_pre_hook(lambda module, args: seen.append(modes(module)))
    MEASUREMENTS[name](encoder, device)
    handle.remove()
    assert seen and all(not any(m) for m in seen)  # every forward pass ran fully in eval mode
    assert modes(encoder) == before and encoder.training and not encoder.backbone.features[1].training
    assert {p.device.type for p in encoder.parameters()} == {"cpu"}


def test_mode_comes_back_when_the_measurement_fails():
    class Breaks(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(784, 4)

        def forward(self, x):
            return torch.full((x.shape[0], 4), float("nan"))

    encoder = Breaks().train()
    with pytest.raises(ValueError, match="NaN"):
        measure_rmqm(encoder, DATA.images[:4], WhiteNoise(n_levels=3), progress=False)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_synbench(encoder, (1, 28, 28), **SYN)
    with pytest.raises(ValueError, match="NaN"):
        embed_dataset(encoder, DATA.images[:4])
    assert encoder.training


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(MEASUREMENTS))
def test_encoder_comes_back_on_the_callers_device(name):
    encoder = mixed_mode_encoder()
    MEASUREMENTS[name](encoder, "cuda")
    assert {p.device.type for p in encoder.parameters()} == {"cpu"}
    assert {b.device.type for b in encoder.buffers()} == {"cpu"}
    encoder.cuda()
    MEASUREMENTS[name](encoder, "cpu")
    assert {p.device.type for p in encoder.parameters()} == {"cuda"}


def test_resolve_device_names_and_refusals():
    assert resolve_device("cpu") == "cpu" and resolve_device(torch.device("cpu")) == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(TypeError, match="torch.device"):
        resolve_device(0)
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device(torch.device("cuda:1"))


def test_measurements_record_the_resolved_device():
    rmqm_result = MEASUREMENTS["measure_rmqm"](mixed_mode_encoder(), "auto")
    synbench_result = MEASUREMENTS["evaluate_synbench"](mixed_mode_encoder(), torch.device("cpu"))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert rmqm_result.config["device"] == expected and synbench_result.config["device"] == "cpu"
