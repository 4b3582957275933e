"""The 20 ImageNet sample images that ship with foolbox 3.3.4, read as files (foolbox is not imported).

``foolbox/data/imagenet_<ii>_<label>.jpg`` (``ii`` = 00..19): real ImageNet validation-style photos
(19 are 512x512, one 1024x683), the file name giving the ImageNet-1k class index (0..999, the
standard synset order). foolbox is MIT-licensed. Used to check that pretrained ImageNet weights and
their input normalisation are right (a pretrained classifier gets most of them; a random one none).
Install: ``pip install --no-deps foolbox==3.3.4`` (its dependencies are not needed: only the files
are read).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import torch

from rmqm.data.dataset import DatasetNotFoundError, ImageDataset, check_side

__all__ = ['FOOLBOX_INSTALL', 'IMAGENET_MEAN', 'IMAGENET_STD', 'foolbox_data_dir', 'imagenet_sample_files',
           'imagenet_class_names', 'load_imagenet_samples']

FOOLBOX_INSTALL: str = "pip install --no-deps foolbox==3.3.4"

#: The usual per-channel ImageNet statistics on ``[0, 1]`` pixels (dataset statistics; each
#: encoder applies its own normalisation).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_SAMPLE_NAME = re.compile(r"^imagenet_(\d{2})_(\d+)\.jpg$")


def foolbox_data_dir() -> Path:
    """The ``data`` folder of the installed foolbox package, found without importing foolbox.

    Raises:
        DatasetNotFoundError: foolbox is not installed or has no ``data`` folder (message: pip command).
    """
    spec = importlib.util.find_spec("foolbox")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "data"
        if folder.is_dir():
            return folder
    raise DatasetNotFoundError(f"foolbox's sample images are not installed; get them with: {FOOLBOX_INSTALL}")


def imagenet_sample_files(folder: str | Path | None = None) -> list[tuple[Path, int]]:
    """``(path, ImageNet class index)`` of each ``imagenet_<ii>_<label>.jpg``, in sample order.

    Args:
        folder: where the files are (default: foolbox's ``data`` folder).

    Raises:
        DatasetNotFoundError: no ImageNet sample file in ``folder``.
    """
    folder = foolbox_data_dir() if folder is None else Path(folder)
    found = []
    for path in folder.glob("imagenet_*.jpg"):
        match = _SAMPLE_NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path, int(match.group(2))))
    if not found:
        raise DatasetNotFoundError(f"no imagenet_<ii>_<label>.jpg files in {folder}; install: {FOOLBOX_INSTALL}")
    return [(path, label) for _, path, label in sorted(found)]


def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in index order (from torchvision's weight metadata; no download)."""
    from torchvision.models import ResNet18_Weights

    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def load_imagenet_samples(size: int = 224, folder: str | Path | None = None) -> ImageDataset:
    """foolbox's ImageNet sample images as an :class:`ImageDataset`.

    Each image is converted to RGB and resized (whole image, no crop; PIL bilinear with its
    antialiasing) to ``size x size``, as foolbox's own ``samples()`` does.

    Args:
        size: output side in pixels (224 for EfficientNet-Lite0, 240 Lite1, 260 Lite2).
        folder: where the files are (default: foolbox's ``data`` folder).

    Returns:
        ``images`` ``(N, 3, size, size)`` float32 in ``[0, 1]`` (N = 20 for foolbox 3.3.4),
        ``labels`` ``(N,)`` ImageNet-1k class indices, ``classes`` the 1000 class names,
        ``name`` ``"imagenet-samples"``, ``mean``/``std`` the usual ImageNet statistics.

    Raises:
        DatasetNotFoundError: foolbox (its files) missing.
        ValueError, TypeError: a bad ``size``.
    """
    from PIL import Image

    size = check_side(size)
    files = imagenet_sample_files(folder)
    images = []
    for path, _ in files:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            images.append(np.asarray(rgb, dtype=np.float32) / 255.0)
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return ImageDataset(batch, labels, "imagenet-samples", imagenet_class_names(), IMAGENET_MEAN, IMAGENET_STD)
