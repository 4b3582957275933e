"""Downstream probes on frozen embeddings: 1-NN, k-NN and linear accuracy."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from rmqm._utils.device import resolve_device
from rmqm._utils.validation import as_features, check_int, check_labels
from rmqm.data.dataset import ImageDataset
from rmqm.models.encoder import check_embeddings, encoder_dtype, evaluating_on

__all__ = [
    "PROBES", "as_features", "knn_accuracy", "one_nn_accuracy", "linear_probe_accuracy", "embed_dataset",
    "evaluate_probes",
]


PROBES: tuple[str, ...] = ("1nn", "knn", "linear")


def _check_split(train_z: Any, train_y: Any, test_z: Any, test_y: Any
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and test embeddings as float64 ``(N, d)``/``(M, d)`` arrays with their ``(N,)``/``(M,)`` labels."""
    xtr, xte = as_features(train_z, "train embeddings"), as_features(test_z, "test embeddings")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"train and test embeddings differ in dimension: {xtr.shape[1]} vs {xte.shape[1]}")
    ytr = check_labels(train_y, len(xtr), "train labels", of="embeddings")
    return xtr, ytr, xte, check_labels(test_y, len(xte), "test labels", of="embeddings")


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` ``(N, d)`` scaled to unit L2 norm (a zero row stays zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_accuracy(train_z: Any, train_y: Any, test_z: Any, test_y: Any, k: int = 5, normalize: bool = True) -> float:
    """Accuracy of a majority-vote k-nearest-neighbour classifier (Euclidean distance).

    Args:
        train_z, test_z: ``(N, d)`` and ``(M, d)`` embeddings (tensors or arrays).
        train_y, test_y: ``(N,)`` and ``(M,)`` labels.
        k: neighbours (ties broken towards the nearest, as scikit-learn does).
        normalize: L2-normalise embeddings first (the paper's 1-NN protocol).

    Returns:
        Fraction of test points classified correctly, in ``[0, 1]``.

    Raises:
        ValueError: bad embeddings or labels, or ``k`` outside ``[1, N]``.
    """
    xtr, ytr, xte, yte = _check_split(train_z, train_y, test_z, test_y)
    if not 1 <= k <= len(xtr):
        raise ValueError(f"k must lie in [1, {len(xtr)}] (the number of training points); got {k}")
    if normalize:
        xtr, xte = _l2_normalize(xtr), _l2_normalize(xte)
    with threadpool_limits(limits=1):
        pred = KNeighborsClassifier(n_neighbors=k).fit(xtr, ytr).predict(xte)
    return float((pred == yte).mean())


def one_nn_accuracy(train_z: Any, train_y: Any, test_z: Any, test_y: Any) -> float:
    """1-nearest-neighbour accuracy on L2-normalised embeddings (the RMQM paper's probe), in ``[0, 1]``.

    Raises:
        ValueError: bad embeddings or labels.
    """
    return knn_accuracy(train_z, train_y, test_z, test_y, k=1, normalize=True)


def linear_probe_accuracy(
    train_z: Any, train_y: Any, test_z: Any, test_y: Any, *, C: float = 1.0, max_iter: int = 2000, seed: int = 0
) -> float:
    """Accuracy (in ``[0, 1]``) of a multinomial logistic regression on standardised frozen embeddings.

    Args:
        train_z, test_z: ``(N, d)`` and ``(M, d)`` embeddings; train_y, test_y: their labels.
        C: inverse L2 regularisation strength of :class:`sklearn.linear_model.LogisticRegression`.
        max_iter: solver iterations.
        seed: ``random_state`` of the solver.

    Raises:
        ValueError: bad embeddings or labels, ``C <= 0``, fewer than two training classes.
    """
    xtr, ytr, xte, yte = _check_split(train_z, train_y, test_z, test_y)
    if C <= 0:
        raise ValueError(f"C must be positive; got {C}")
    if len(np.unique(ytr)) < 2:
        raise ValueError("the linear probe needs at least two classes in the training half")
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))
    # One BLAS thread: on these small problems threads beside torch's oversubscribe the
    # cores (measured 40x slower on a busy 2-core machine).
    with threadpool_limits(limits=1):
        clf.fit(xtr, ytr)
        pred = clf.predict(xte)
    return float((pred == yte).mean())


@torch.no_grad()
def embed_dataset(
    encoder: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Embeddings ``(N, d)`` float32 (on CPU) of ``[0, 1]`` images ``(N, C, H, W)``, in batches.

    Args:
        encoder: a module or a function ``(B, C, H, W) -> (B, d)``. A module runs on
            ``device`` in eval mode and is given back on its own device and in its own
            train/eval mode.
        images: ``(N, C, H, W)`` in the encoder's dtype.
        batch_size: images per encoder call.
        device: ``"cpu"``, ``"cuda[:N]"``, ``"auto"`` or a ``torch.device``.

    Raises:
        TypeError: ``images`` is not a floating tensor of the encoder's dtype (its first
            floating parameter's dtype; float32 for a function or a parameter-free module),
            or ``batch_size`` is not an integer.
        ValueError: ``images`` not 4-D or empty, ``batch_size < 1``, an encoder output that
            is not a finite ``(B, d)`` tensor, an unavailable device.
    """
    check_int(batch_size, "batch_size", low=1)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (N, C, H, W); got {type(images).__name__}")
    if images.ndim != 4 or images.numel() == 0:
        raise ValueError(f"images must be a non-empty (N, C, H, W) tensor; got shape {tuple(images.shape)}")
    expected = encoder_dtype(encoder)
    if images.dtype != expected:
        raise TypeError(
            f"images have dtype {images.dtype} but the encoder computes in {expected}; convert them first, "
            f"e.g. images.to({expected})"
        )
    device = torch.device(resolve_device(device))
    out = []
    with evaluating_on(encoder, device) if isinstance(encoder, torch.nn.Module) else nullcontext():
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device)
            out.append(check_embeddings(encoder(x), len(x)).float().cpu())
    return torch.cat(out)


def evaluate_probes(
    encoder: Callable[[torch.Tensor], torch.Tensor],
    dataset: ImageDataset,
    *,
    test_fraction: float = 0.5,
    seed: int = 0,
    k: int = 5,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """1-NN, k-NN and linear-probe accuracy of ``encoder`` on a fixed split of ``dataset``.

    The split is stratified and seeded by ``seed`` (the same for every encoder); the
    encoder is lent as in :func:`embed_dataset` (given back on its device and in its mode).

    Returns:
        ``{"1nn": ..., "knn": ..., "linear": ...}`` accuracies in ``[0, 1]``.

    Raises:
        TypeError, ValueError: as :func:`embed_dataset` and the probes.
    """
    train, test = dataset.split(test_fraction, seed=seed)
    ztr = embed_dataset(encoder, train.images, batch_size, device)
    zte = embed_dataset(encoder, test.images, batch_size, device)
    return {
        "1nn": one_nn_accuracy(ztr, train.labels, zte, test.labels),
        "knn": knn_accuracy(ztr, train.labels, zte, test.labels, k=min(k, len(train))),
        "linear": linear_probe_accuracy(ztr, train.labels, zte, test.labels, seed=seed),
    }
