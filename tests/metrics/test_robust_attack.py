"""L-inf PGD on encoder + robust linear probe: the exact affine worst case, logits, invariants, errors."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from rmqm.metrics.robust_attack import attack_robust_probes, pgd_linf_probe, probe_logits
from rmqm.metrics.robust_probe import RobustLinearProbe


def blob_images(n_per_class, centers, seed=0, spread=0.03):
    """1x4x4 images: Gaussian blobs around per-class pixel levels, kept inside (0.32, 0.68)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(centers)), n_per_class)
    means = np.asarray(centers, dtype=float)[labels]  # (N, 16)
    x = np.clip(means + rng.normal(scale=spread, size=means.shape), 0.32, 0.68)
    return torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 4, 4), labels


def flat(images, normalize=False):
    h = images.reshape(len(images), -1).double().numpy()
    return h / np.linalg.norm(h, axis=1, keepdims=True) if normalize else h


def two_blobs(seed=0):
    rng = np.random.default_rng(seed + 100)
    center = 0.5 + rng.uniform(-0.05, 0.05, size=16)
    shift = rng.uniform(0.01, 0.04, size=16)
    return blob_images(100, [center - shift, center + shift], seed=seed)


@pytest.fixture
def digits_probe(digits_small, tiny_encoder):
    """A 10-class robust probe on the normalised embeddings of 60 digits (the tiny CNN's 16-d features)."""
    with torch.no_grad():
        z = nn.functional.normalize(tiny_encoder(digits_small.images), dim=1).double().numpy()
    labels = digits_small.labels.numpy()
    return RobustLinearProbe(epsilon=0.1, allow_rank_deficient=True).fit(z, labels), labels


@pytest.mark.parametrize("seed", [0, 1])
def test_pgd_reaches_the_exact_affine_worst_case(seed):
    images, labels = two_blobs(seed)
    probe = RobustLinearProbe(epsilon=0.2).fit(flat(images), labels)
    w1 = np.abs(probe.coef_[0]).sum()
    signed = np.where(labels == 1, 1.0, -1.0) * probe.decision_function(flat(images))  # y * f(x)
    radius = float(np.median(signed[signed > 0] / w1))  # about half the correct points survive
    assert 0 < radius < 0.3  # pixels in (0.32, 0.68): x +- radius stays in [0, 1], clipping never binds
    adversarial, robust = pgd_linf_probe(nn.Flatten(), probe, images, labels, radius=radius, n_steps=3,
                                         step_size=1.5 * radius, normalize=False, seed=seed)
    # the worst case lowers y*f by exactly radius * ||w||_1; float32 scores leave a thin band undecided
    expected = signed > radius * w1
    clear = np.abs(signed - radius * w1) > 1e-5 * w1
    assert clear.mean() > 0.95 and expected[clear].any() and not expected[clear].all()
    np.testing.assert_array_equal(robust.numpy()[clear], expected[clear])
    # a robust point's worst iterate is the vertex of the ball: y*f drops by radius * ||w||_1 there
    signed_adv = np.where(labels == 1, 1.0, -1.0) * probe.decision_function(flat(adversarial))
    kept = robust.numpy() & clear
    np.testing.assert_allclose(signed_adv[kept], signed[kept] - radius * w1, atol=1e-4 * w1)
    assert (signed_adv[~robust.numpy()] <= 1e-5 * w1).all()  # the returned image of a lost point is adversarial


def test_multiclass_logits_match_the_probe():
    rng = np.random.default_rng(3)
    centers = 0.5 + rng.uniform(-0.1, 0.1, size=(3, 16))
    images, labels = blob_images(40, centers, seed=3)
    features = flat(images, normalize=True)
    probe = RobustLinearProbe(epsilon=0.1).fit(features, labels + 10)  # labels need not be 0..K-1
    logits = probe_logits(nn.Flatten(), probe, images)
    assert logits.shape == (120, 3) and logits.dtype == torch.float32
    np.testing.assert_allclose(logits.double().numpy(), probe.decision_function(features), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(probe.classes_[logits.argmax(1).numpy()], probe.predict(features))


def test_binary_logits_are_zero_and_decision_and_work_for_sklearn_probes():
    images, labels = two_blobs()
    features = flat(images, normalize=True)
    for probe in (RobustLinearProbe().fit(features, labels), LogisticRegression().fit(features, labels)):
        logits = probe_logits(nn.Flatten(), probe, images)
        assert (logits[:, 0] == 0).all()
        np.testing.assert_allclose(logits[:, 1].double().numpy(), probe.decision_function(features),
                                   rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(logits.argmax(1).numpy(), probe.predict(features))


def test_logits_are_differentiable_in_the_images():
    images, labels = two_blobs()
    probe = RobustLinearProbe().fit(flat(images), labels)
    x = images[:5].clone().requires_grad_(True)
    probe_logits(nn.Flatten(), probe, x, normalize=False)[:, 1].sum().backward()
    expected = np.broadcast_to(probe.coef_[0], (5, 16))
    np.testing.assert_allclose(x.grad.reshape(5, 16).numpy(), expected, rtol=1e-5)


def test_attack_invariants_on_a_cnn(digits_small, tiny_encoder, digits_probe):
    probe, labels = digits_probe
    images = digits_small.images
    for p in tiny_encoder.parameters():
        p.requires_grad_(True)
    tiny_encoder.train()
    clean = probe.predict(nn.functional.normalize(tiny_encoder.eval()(images), dim=1).detach().double().numpy())
    tiny_encoder.train()
    rates = []
    for radius in (0.0, 0.002, 0.005, 0.01):  # a random CNN: small radii already break most points
        adversarial, robust = pgd_linf_probe(tiny_encoder, probe, images, labels, radius=radius, n_steps=5,
                                             step_size=radius / 2, seed=7, batch_size=25)
        assert robust.dtype == torch.bool and robust.shape == (60,)
        assert (adversarial - images).abs().max() <= radius + 1e-6
        assert adversarial.min() >= 0 and adversarial.max() <= 1
        if radius == 0.0:
            np.testing.assert_array_equal(robust.numpy(), clean == labels)
        assert not (robust.numpy() & (clean != labels)).any()  # robust implies clean-correct
        rates.append(robust.float().mean().item())
    assert rates == sorted(rates, reverse=True) and rates[-1] < rates[0]
    assert all(p.grad is None for p in tiny_encoder.parameters())
    assert tiny_encoder.training  # given back in its own mode
    again = pgd_linf_probe(tiny_encoder, probe, images, labels, radius=0.03, n_steps=5, step_size=0.015, seed=7,
                           batch_size=25)
    first = pgd_linf_probe(tiny_encoder, probe, images, labels, radius=0.03, n_steps=5, step_size=0.015, seed=7,
                           batch_size=25)
    assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])


def test_the_encoder_runs_in_eval_mode(digits_small, tiny_encoder, digits_probe):
    probe, labels = digits_probe
    modes = []
    handle = tiny_encoder.register_forward_hook(lambda module, args, out: modes.append(module.training))
    tiny_encoder.train()
    pgd_linf_probe(tiny_encoder, probe, digits_small.images[:8], labels[:8], radius=0.02, n_steps=2,
                   step_size=0.01)
    handle.remove()
    assert modes and not any(modes)


def test_no_steps_gives_clean_correctness(digits_small, tiny_encoder, digits_probe):
    probe, labels = digits_probe
    base = pgd_linf_probe(tiny_encoder, probe, digits_small.images, labels, radius=0.0, n_steps=4, step_size=0.1)
    none = pgd_linf_probe(tiny_encoder, probe, digits_small.images, labels, radius=0.1, n_steps=0, step_size=0.0)
    assert torch.equal(base[1], none[1]) and torch.equal(none[0], digits_small.images)


def test_attack_robust_probes_table():
    images, labels = two_blobs()
    test_images, test_labels = two_blobs(seed=5)
    table = attack_robust_probes(nn.Flatten(), images, labels, test_images, test_labels, [0.0, 0.2, 0.5],
                                 radius=0.01, n_steps=3, step_size=0.005)
    assert list(table.columns) == ["epsilon", "accuracy", "robust_accuracy", "radius", "n_steps", "n_test"]
    assert table["epsilon"].tolist() == [0.0, 0.2, 0.5] and (table["n_test"] == 200).all()
    assert (table["accuracy"] >= table["robust_accuracy"]).all() and (table["robust_accuracy"] < 1).any()
    lda = RobustLinearProbe(0.0).fit(flat(images, True), labels)
    assert table["accuracy"][0] == lda.score(flat(test_images, True), test_labels)


@pytest.fixture
def binary_case():
    images, labels = two_blobs()
    return images, labels, RobustLinearProbe().fit(flat(images, True), labels)


@pytest.mark.parametrize("kwargs, message", [
    ({"radius": -0.1}, r"radius must be non-negative.*8/255"),
    ({"radius": float("nan")}, r"radius must be a finite number.*8/255"),
    ({"step_size": 0.0}, r"step_size must be positive.*radius / n_steps"),
    ({"step_size": -1.0}, r"step_size must be positive"),
    ({"n_steps": -1}, r"n_steps must be an integer >= 0"),
])
def test_bad_budgets(binary_case, kwargs, message):
    images, labels, probe = binary_case
    options = {"radius": 0.01, "n_steps": 2, "step_size": 0.005, **kwargs}
    with pytest.raises(ValueError, match=message):
        pgd_linf_probe(nn.Flatten(), probe, images, labels, **options)


def test_step_size_is_free_without_an_attack(binary_case):
    images, labels, probe = binary_case
    pgd_linf_probe(nn.Flatten(), probe, images, labels, radius=0.0, n_steps=3, step_size=0.0)


def test_bad_images_labels_and_probes(binary_case):
    images, labels, probe = binary_case
    attack = {"radius": 0.01, "n_steps": 1, "step_size": 0.01}
    with pytest.raises(ValueError, match=r"images must have rank 4"):
        pgd_linf_probe(nn.Flatten(), probe, images[:, 0], labels, **attack)
    nan = images.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"images contain NaN"):
        pgd_linf_probe(nn.Flatten(), probe, nan, labels, **attack)
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\].*study's images are in \[0, 1\]"):
        pgd_linf_probe(nn.Flatten(), probe, images * 2, labels, **attack)
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\].*study's images"):
        probe_logits(nn.Flatten(), probe, images - 0.5)
    with pytest.raises(ValueError, match=r"labels must have shape \(200,\) to match the images"):
        pgd_linf_probe(nn.Flatten(), probe, images, labels[:-1], **attack)
    with pytest.raises(ValueError, match=r"labels \[7\] are not among the probe's classes \[0, 1\]"):
        pgd_linf_probe(nn.Flatten(), probe, images, np.where(labels == 1, 7, 0), **attack)
    with pytest.raises(ValueError, match=r"not fitted yet; call fit"):
        pgd_linf_probe(nn.Flatten(), RobustLinearProbe(), images, labels, **attack)
    with pytest.raises(ValueError, match=r"not fitted yet; call fit"):
        probe_logits(nn.Flatten(), RobustLinearProbe(), images)
    with pytest.raises(ValueError, match=r"8-d embeddings but the probe was fitted on 16-d"):
        probe_logits(nn.Sequential(nn.Flatten(), nn.Linear(16, 8)), probe, images)


def test_attack_robust_probes_checks_its_inputs():
    images, labels = two_blobs()
    attack = {"radius": 0.01, "n_steps": 1, "step_size": 0.01}
    with pytest.raises(ValueError, match=r"test_images must have pixels in \[0, 1\].*study's images"):
        attack_robust_probes(nn.Flatten(), images, labels, images + 1, labels, [0.0], **attack)
    with pytest.raises(ValueError, match=r"test_labels must have shape \(200,\)"):
        attack_robust_probes(nn.Flatten(), images, labels, images, labels[:3], [0.0], **attack)
    with pytest.raises(ValueError, match=r"train_labels must have shape \(200,\)"):
        attack_robust_probes(nn.Flatten(), images, labels[:3], images, labels, [0.0], **attack)
    with pytest.raises(ValueError, match=r"radius must be non-negative"):
        attack_robust_probes(nn.Flatten(), images, labels, images, labels, [0.0], **{**attack, "radius": -1})
