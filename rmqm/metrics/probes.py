"""Downstream probes on frozen embeddings: 1-NN, k-NN and linear accuracy."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from rmqm.data.dataset import ImageDataset
from rmqm.models.encoder import check_embeddings

__all__ = ['PROBES', 'as_features', 'knn_accuracy', 'one_nn_accuracy', 'linear_probe_accuracy', 'embed_dataset', 'evaluate_probes']


PROBES: tuple[str, ...] = ("1nn", "knn", "linear")


def as_features(z, name: str = "embeddings") -> np.ndarray:
    """``z`` as a finite float64 ``(N, d)`` numpy array (raises ValueError otherwise)."""
    if isinstance(z, torch.Tensor):
        z = z.detach().cpu()
        z = (z.double() if z.is_floating_point() else z).numpy()  # numpy has no bfloat16
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (N, d) array; got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError(f"{name} contain NaN or inf")
    return z


def _labels(y, n: int, name: str) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the embeddings; got {y.shape}")
    return y


def _check_split(train_z, train_y, test_z, test_y) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    xtr, xte = as_features(train_z, "train embeddings"), as_features(test_z, "test embeddings")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"train and test embeddings differ in dimension: {xtr.shape[1]} vs {xte.shape[1]}")
    return xtr, _labels(train_y, len(xtr), "train labels"), xte, _labels(test_y, len(xte), "test labels")


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_accuracy(train_z, train_y, test_z, test_y, k: int = 5, normalize: bool = True) -> float:
    """Accuracy of a majority-vote k-nearest-neighbour classifier (Euclidean distance).

    Args:
        train_z, test_z: ``(N, d)`` and ``(M, d)`` embeddings (tensors or arrays).
        train_y, test_y: ``(N,)`` and ``(M,)`` labels.
        k: neighbours (ties broken towards the nearest, as scikit-learn does).
        normalize: L2-normalise embeddings first (the paper's 1-NN protocol).

    Returns:
        Fraction of test points classified correctly, in ``[0, 1]``.
    """
    from sklearn.neighbors import KNeighborsClassifier

    xtr, ytr, xte, yte = _check_split(train_z, train_y, test_z, test_y)
    if not 1 <= k <= len(xtr):
        raise ValueError(f"k must lie in [1, {len(xtr)}] (the number of training points); got {k}")
    if normalize:
        xtr, xte = _l2_normalize(xtr), _l2_normalize(xte)
    with threadpool_limits(limits=1):
        pred = KNeighborsClassifier(n_neighbors=k).fit(xtr, ytr).predict(xte)
    return float((pred == yte).mean())


def one_nn_accuracy(train_z, train_y, test_z, test_y) -> float:
    """1-nearest-neighbour accuracy on L2-normalised embeddings (the RMQM paper's probe)."""
    return knn_accuracy(train_z, train_y, test_z, test_y, k=1, normalize=True)


def linear_probe_accuracy(
    train_z, train_y, test_z, test_y, *, C: float = 1.0, max_iter: int = 2000, seed: int = 0
) -> float:
    """Accuracy of a multinomial logistic regression on standardised frozen embeddings.

    Args:
        C: inverse L2 regularisation strength of :class:`sklearn.linear_model.LogisticRegression`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

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
    encoder: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int = 512, device: str = "cpu"
) -> torch.Tensor:
    """Embeddings ``(N, d)`` (on CPU) of ``[0, 1]`` images ``(N, C, H, W)``, in batches.

    ``encoder`` is put in eval mode when it is a module.

    Raises:
        TypeError: ``images`` is not a floating tensor of the encoder's dtype (its first
            floating parameter's dtype; float32 for a function or a parameter-free module).
        ValueError: ``images`` not 4-D or empty, or ``batch_size`` not a positive integer.
    """

    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (N, C, H, W); got {type(images).__name__}")
    if images.ndim != 4 or images.numel() == 0:
        raise ValueError(f"images must be a non-empty (N, C, H, W) tensor; got shape {tuple(images.shape)}")
    expected = _encoder_dtype(encoder)
    if images.dtype != expected:
        raise TypeError(
            f"images have dtype {images.dtype} but the encoder computes in {expected}; convert them first, "
            f"e.g. images.to({expected})"
        )
    if isinstance(encoder, torch.nn.Module):
        encoder.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device)
        out.append(check_embeddings(encoder(x), len(x)).float().cpu())
    return torch.cat(out)


def _encoder_dtype(encoder: Callable[[torch.Tensor], torch.Tensor]) -> torch.dtype:
    """dtype of the first floating parameter of a module; float32 otherwise."""
    if isinstance(encoder, torch.nn.Module):
        for parameter in encoder.parameters():
            if parameter.is_floating_point():
                return parameter.dtype
    return torch.float32


def evaluate_probes(
    encoder: Callable[[torch.Tensor], torch.Tensor],
    dataset: ImageDataset,
    *,
    test_fraction: float = 0.5,
    seed: int = 0,
    k: int = 5,
    batch_size: int = 512,
    device: str = "cpu",
) -> dict[str, float]:
    """1-NN, k-NN and linear-probe accuracy of ``encoder`` on a fixed split of ``dataset``.

    The split is stratified and seeded by ``seed`` (the same for every encoder).

    Returns:
        ``{"1nn": ..., "knn": ..., "linear": ...}`` accuracies in ``[0, 1]``.
    """
    train, test = dataset.split(test_fraction, seed=seed)
    ztr = embed_dataset(encoder, train.images, batch_size, device)
    zte = embed_dataset(encoder, test.images, batch_size, device)
    return {
        "1nn": one_nn_accuracy(ztr, train.labels, zte, test.labels),
        "knn": knn_accuracy(ztr, train.labels, zte, test.labels, k=min(k, len(train))),
        "linear": linear_probe_accuracy(ztr, train.labels, zte, test.labels, seed=seed),
    }
