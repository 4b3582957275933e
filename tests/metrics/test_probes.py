"""Downstream probes on embeddings whose answer is known."""

import numpy as np
import pytest
import torch

from rmqm.data.offline import load_digits
from rmqm.metrics.probes import (
    embed_dataset,
    evaluate_probes,
    knn_accuracy,
    linear_probe_accuracy,
    one_nn_accuracy,
)


def separated(n_per_class=20, classes=4, d=6, seed=0, rescale=True):
    """Tight clusters around orthogonal directions; with ``rescale`` each point is scaled
    randomly, so that only after L2-normalisation are the classes separated by distance."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    z = np.eye(d)[y] + 0.05 * rng.standard_normal((len(y), d))
    if rescale:
        z *= rng.uniform(0.1, 10.0, size=(len(y), 1))
    return z, y


def test_one_nn_of_perfectly_separated_embeddings_is_one():
    ztr, ytr = separated(seed=0)
    zte, yte = separated(seed=1)
    assert one_nn_accuracy(ztr, ytr, zte, yte) == 1.0
    assert knn_accuracy(torch.from_numpy(ztr), torch.from_numpy(ytr), zte, yte, k=5) == 1.0
    assert knn_accuracy(ztr, ytr, zte, yte, k=1, normalize=False) < 1.0  # raw distance is fooled
    (ztr, ytr), (zte, yte) = separated(seed=0, rescale=False), separated(seed=1, rescale=False)
    assert linear_probe_accuracy(ztr, ytr, zte, yte) == 1.0


def test_one_nn_uses_directions_only():
    ztr = np.array([[10.0, 0.0], [0.0, 1.0]])
    ytr = np.array([0, 1])
    # nearer to [0, 1] in raw distance, but pointing along class 0's direction
    zte = np.array([[0.5, 0.2]])
    assert np.linalg.norm(zte - ztr[1]) < np.linalg.norm(zte - ztr[0])
    assert one_nn_accuracy(ztr, ytr, zte, np.array([0])) == 1.0
    assert knn_accuracy(ztr, ytr, zte, np.array([0]), k=1, normalize=False) == 0.0


def test_knn_accuracy_of_shuffled_labels_is_chance_level():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((400, 3))
    y = rng.integers(0, 2, 400)
    assert 0.35 < knn_accuracy(z[:200], y[:200], z[200:], y[200:], k=5) < 0.65


def test_probes_reject_bad_input():
    z, y = separated()
    with pytest.raises(ValueError, match=r"k must lie in \[1, 80\]"):
        knn_accuracy(z, y, z, y, k=81)
    with pytest.raises(ValueError, match=r"train labels must have shape \(80,\)"):
        one_nn_accuracy(z, y[:-1], z, y)
    with pytest.raises(ValueError, match="differ in dimension"):
        one_nn_accuracy(z, y, z[:, :3], y)
    bad = z.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        one_nn_accuracy(bad, y, z, y)
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        one_nn_accuracy(z[:, 0], y, z, y)
    with pytest.raises(ValueError, match="at least two classes"):
        linear_probe_accuracy(z, np.zeros(80), z, y)


def test_evaluate_probes_on_a_fixed_split():
    ds = load_digits("all", n=200)
    flat = torch.nn.Flatten()
    a = evaluate_probes(flat, ds, seed=0)
    b = evaluate_probes(flat, ds, seed=0)
    assert a == b and set(a) == {"1nn", "knn", "linear"}
    assert all(0.8 < v <= 1.0 for v in a.values())  # raw pixels separate digits well
    z = embed_dataset(flat, ds.images, batch_size=64)
    assert z.shape == (200, 28 * 28)
    with pytest.raises(ValueError, match=r"shape \(batch, dim\)"):
        embed_dataset(lambda x: x[:, 0], ds.images[:4])
