"""A real input-space attack on robust linear probes: L-inf PGD through the encoder.

SynBench claims that its score guides epsilon-robust linear probing (Ko et al. 2022,
arXiv 2210.02989). This module measures what such a probe is worth against a real attacker:
the composite classifier ``x -> probe(normalize(f(x)))`` (encoder ``f``, a fitted
:class:`rmqm.metrics.robust_probe.RobustLinearProbe`, optional L2 normalisation of the
embeddings) is attacked in pixel space with projected gradient descent under an
L-infinity budget (Madry et al. 2018, "Towards Deep Learning Models Resistant to Adversarial
Attacks", ICLR), maximising the Carlini-Wagner margin ``max_{j != y} s_j - s_y`` (Carlini and
Wagner 2017), which does not depend on the scale of the probe's scores.

Any fitted linear classifier with scikit-learn's conventions works as the probe
(``coef_`` ``(1, d)`` for two classes, ``(K, d)`` otherwise, ``intercept_``, sorted ``classes_``;
binary prediction ``classes_[1]`` iff the decision is ``> 0``, otherwise the argmax).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm  # plain bars: tqdm.auto warns on import in a kernel without ipywidgets

from rmqm._utils.device import resolve_device
from rmqm._utils.validation import check_image_batch, check_int, check_labels, check_real
from rmqm.metrics.probes import embed_dataset
from rmqm.metrics.robust_probe import RobustLinearProbe
from rmqm.metrics.synbench.qcqp import check_epsilons
from rmqm.models.encoder import check_embeddings, encoder_dtype, evaluating_on

__all__ = ['probe_logits', 'pgd_linf_probe', 'attack_robust_probes']

EncoderLike = Callable[[torch.Tensor], torch.Tensor]
_IMAGES_HINT = ("the study's images are in [0, 1]: pass them before any mean/std normalisation "
                "(the encoder applies its own)")


def _check_images(images: Any, name: str = "images") -> torch.Tensor:
    """``images`` checked as a finite floating ``(B, C, H, W)`` batch in ``[0, 1]`` (hint on range errors)."""
    try:
        return check_image_batch(images, name, dtypes=None)
    except ValueError as error:
        if "[0, 1]" in str(error):
            raise ValueError(f"{error}; {_IMAGES_HINT}") from None
        raise


def _check_budget(value: Any, name: str, hint: str, *, positive: bool = False) -> float:
    """``value`` as a finite float ``>= 0`` (``> 0`` with ``positive``); the error ends with ``hint``."""
    try:
        return check_real(value, name, low=0.0, low_open=positive)
    except ValueError as error:
        raise ValueError(f"{error}; {hint}") from None


def _probe_tensors(probe: Any, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The probe's ``(K', d)`` weights and ``(K',)`` biases as tensors (``K' = 1`` for two classes).

    Raises:
        TypeError: ``probe`` is not a linear classifier with ``coef_``/``intercept_``/``classes_``.
        ValueError: the probe is not fitted (its own error when it has one).
    """
    if not hasattr(probe, "decision_function"):
        raise TypeError(f"probe must be a fitted linear classifier (a RobustLinearProbe); got {type(probe).__name__}")
    if not all(hasattr(probe, a) for a in ("coef_", "intercept_", "classes_")):
        probe.decision_function(np.zeros((1, 1)))  # raises the probe's own "not fitted" error
        raise ValueError(f"this {type(probe).__name__} is not fitted yet; call fit(features, labels) first")
    coef = np.atleast_2d(np.asarray(probe.coef_, dtype=np.float64))
    bias = np.atleast_1d(np.asarray(probe.intercept_, dtype=np.float64))
    return (torch.as_tensor(coef, dtype=dtype, device=device), torch.as_tensor(bias, dtype=dtype, device=device))


def _scores(encoder: EncoderLike, weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor,
            normalize: bool) -> torch.Tensor:
    """``(B, K)`` composite scores of images ``x``: ``[0, decision]`` for a one-row (binary) probe."""
    z = check_embeddings(encoder(x), x.shape[0])
    if z.shape[1] != weight.shape[1]:
        raise ValueError(
            f"the encoder gives {z.shape[1]}-d embeddings but the probe was fitted on {weight.shape[1]}-d features; "
            "fit the probe on this encoder's embeddings"
        )
    if normalize:
        z = nn.functional.normalize(z, dim=1, eps=1e-12)  # as rmqm.metrics.probes: a zero row stays zero
    decision = z.to(weight.dtype) @ weight.T + bias
    if weight.shape[0] == 1:
        return torch.cat([torch.zeros_like(decision), decision], dim=1)
    return decision


def probe_logits(encoder: EncoderLike, probe: Any, images: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
    """Scores ``(B, K)`` of the composite classifier ``x -> probe(normalize(f(x)))``, differentiable in ``images``.

    The encoder runs in its own dtype (:func:`rmqm.models.encoder.encoder_dtype`: float32 unless its
    parameters are another floating type) and in its current train/eval mode; the probe's
    ``coef_``/``intercept_`` become tensors of that dtype on the images' device. For two classes the
    columns are ``[0, decision]``, so ``argmax`` (first index on ties) equals ``probe.predict``.

    Args:
        encoder: a module or function mapping ``(B, C, H, W)`` images in ``[0, 1]`` to ``(B, d)``.
        probe: a fitted linear probe (e.g. :class:`rmqm.metrics.robust_probe.RobustLinearProbe`).
        images: ``(B, C, H, W)`` floating tensor with pixels in ``[0, 1]``.
        normalize: L2-normalise the embeddings first (as the probe was fitted); ``False`` uses them as they are.

    Returns:
        ``(B, K)`` scores on the images' device, ``K`` the number of classes.

    Raises:
        TypeError: not a tensor, not floating, or not a linear probe.
        ValueError: bad images (rank, NaN, outside ``[0, 1]``), an unfitted probe, embeddings of the
            wrong dimension.
    """
    x = _check_images(images).to(encoder_dtype(encoder))
    weight, bias = _probe_tensors(probe, x.dtype, x.device)
    return _scores(encoder, weight, bias, x, normalize)


def _label_indices(probe: Any, labels: Any, n: int) -> np.ndarray:
    """``(n,)`` column indices of ``labels`` in ``probe.classes_``.

    Raises:
        ValueError: wrong count, or labels that are not among the probe's classes.
    """
    y = check_labels(labels, n, "labels", of="images")
    classes = np.asarray(probe.classes_)
    index = np.clip(np.searchsorted(classes, y), 0, classes.size - 1)
    unknown = classes[index] != y
    if unknown.any():
        raise ValueError(
            f"labels {np.unique(y[unknown]).tolist()[:10]} are not among the probe's classes {classes.tolist()}; "
            "pass the labels the probe was fitted with"
        )
    return index


def _margin(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(B,)`` Carlini-Wagner margin ``max_{j != y} s_j - s_y`` (> 0: misclassified)."""
    own = scores.gather(1, y[:, None])[:, 0]
    others = scores.scatter(1, y[:, None], float("-inf"))
    return others.max(dim=1).values - own


def _attack_batch(score: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, y: torch.Tensor,
                  start: torch.Tensor | None, radius: float, n_steps: int,
                  step_size: float) -> tuple[torch.Tensor, torch.Tensor]:
    """PGD on one batch: ``(adversarial (B, C, H, W), robust (B,))``.

    Every iterate (the random start included) is checked; a point stays robust only while all of
    them are classified correctly. The returned image is the first misclassified iterate, or the
    iterate of largest margin loss for a robust point.
    """
    with torch.no_grad():
        clean = score(x0)
    best, best_loss, robust = x0.clone(), _margin(clean, y), clean.argmax(dim=1) == y
    if radius == 0.0 or n_steps == 0:
        return best, robust
    low, high = (x0 - radius).clamp(0.0, 1.0), (x0 + radius).clamp(0.0, 1.0)
    x = x0 if start is None else torch.min(torch.max(x0 + start, low), high)

    def record(x: torch.Tensor, scores: torch.Tensor) -> None:
        nonlocal best, best_loss, robust
        loss = _margin(scores.detach(), y)
        wrong = scores.detach().argmax(dim=1) != y
        take = robust & (wrong | (loss > best_loss))
        best = torch.where(take[:, None, None, None], x.detach(), best)
        best_loss = torch.where(take, loss, best_loss)
        robust = robust & ~wrong

    for _ in range(n_steps):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            scores = score(x)
            (grad,) = torch.autograd.grad(_margin(scores, y).sum(), x)  # input only: parameters get no .grad
        record(x, scores)
        x = torch.min(torch.max(x.detach() + step_size * grad.sign(), low), high)
    with torch.no_grad():
        record(x, score(x))
    return best, robust


def pgd_linf_probe(
    encoder: EncoderLike,
    probe: Any,
    images: torch.Tensor,
    labels: Any,
    *,
    radius: float,
    n_steps: int,
    step_size: float,
    normalize: bool = True,
    random_start: bool = True,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L-inf PGD (Madry et al. 2018) on the composite classifier ``x -> probe(normalize(f(x)))``.

    Each step moves ``x`` by ``step_size * sign(grad)`` of the Carlini-Wagner margin
    ``max_{j != y} s_j - s_y`` and projects onto the ``radius`` ball around the clean image and onto
    ``[0, 1]``. The random start is uniform in the ball, drawn on the CPU from a
    ``torch.Generator`` seeded with ``seed`` (batch after batch; no global RNG). A point is robust when
    the clean image and every iterate (the start included) are classified correctly, so an attack
    whose loss does not rise monotonically never overstates robustness. The encoder runs in eval
    mode on ``device`` (given back on its devices and in its mode afterwards) and in its dtype
    (float32 in general); gradients are taken w.r.t. the input only, so its parameters' ``.grad``
    is untouched.

    Args:
        encoder: module or function ``(B, C, H, W) -> (B, d)`` on ``[0, 1]`` images.
        probe: fitted linear probe on the (normalised) embeddings.
        images: ``(N, C, H, W)`` clean images in ``[0, 1]``.
        labels: ``(N,)`` true labels, values of ``probe.classes_``.
        radius: L-inf budget in pixel units (e.g. ``8 / 255``); 0 measures clean correctness.
        n_steps: PGD steps; 0 measures clean correctness.
        step_size: pixel step per iteration (``> 0`` when attacking; e.g. ``2.5 * radius / n_steps``).
        normalize: L2-normalise the embeddings before the probe (as it was fitted).
        random_start: start from a uniform point in the ball instead of the clean image.
        seed: seed of the random start.
        batch_size: images per attacked batch.
        device: ``"cpu"``, ``"cuda[:N]"``, ``"auto"`` or a ``torch.device``.
        progress: show a tqdm bar over batches.

    Returns:
        ``(adversarial, robust)``: ``(N, C, H, W)`` images in the encoder's dtype (the first
        misclassified iterate of a non-robust point, the iterate of largest margin of a robust one)
        and an ``(N,)`` bool tensor, both on the images' device.

    Raises:
        TypeError: non-tensor or non-floating images, non-numeric budgets, a non-linear probe.
        ValueError: negative/NaN ``radius``, ``step_size <= 0`` with an attack to run, negative
            ``n_steps``, bad images, a label count or label values that do not match, an
            unfitted probe, embeddings of the wrong dimension.
    """
    radius = _check_budget(radius, "radius", "give the L-inf budget in pixel units, e.g. 8/255 (0: no attack)")
    n_steps = check_int(n_steps, "n_steps", low=0)
    batch_size = check_int(batch_size, "batch_size", low=1)
    attack = radius > 0.0 and n_steps > 0
    if attack:
        step_size = _check_budget(step_size, "step_size", "give a positive pixel step, e.g. 2.5 * radius / n_steps",
                                  positive=True)
    _check_images(images)
    dtype = encoder_dtype(encoder)
    device_t = torch.device(resolve_device(device))
    weight, bias = _probe_tensors(probe, dtype, device_t)
    targets = torch.as_tensor(_label_indices(probe, labels, images.shape[0]), dtype=torch.long)
    generator = torch.Generator().manual_seed(check_int(seed, "seed"))
    adversarial, robust = [], []
    lend = evaluating_on(encoder, device_t) if isinstance(encoder, nn.Module) else nullcontext()
    starts = range(0, images.shape[0], batch_size)
    with lend:
        for i in tqdm(starts, desc="PGD", unit="batch", disable=not progress):
            x0 = images[i:i + batch_size].to(device=device_t, dtype=dtype)
            start = None
            if attack and random_start:
                start = ((torch.rand(x0.shape, generator=generator, dtype=dtype) * 2 - 1) * radius).to(device_t)
            adv, ok = _attack_batch(lambda x: _scores(encoder, weight, bias, x, normalize), x0,
                                    targets[i:i + batch_size].to(device_t), start, radius, n_steps, step_size)
            adversarial.append(adv.detach().to(images.device))
            robust.append(ok.to(images.device))
    return torch.cat(adversarial), torch.cat(robust)


def attack_robust_probes(
    encoder: EncoderLike,
    train_images: torch.Tensor,
    train_labels: Any,
    test_images: torch.Tensor,
    test_labels: Any,
    epsilons: Sequence[float],
    *,
    radius: float,
    n_steps: int,
    step_size: float,
    normalize: bool = True,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    allow_rank_deficient: bool = True,
) -> pd.DataFrame:
    """Fit one :class:`RobustLinearProbe` per SynBench epsilon and attack each with :func:`pgd_linf_probe`.

    Train and test images are embedded once (no gradient; L2-normalised float64 features when
    ``normalize``). Every epsilon is attacked with the same ``seed`` (common random numbers: the same
    random start), so differences between rows come from the probes. A test point counts as robust
    only if it is also correct under the float64 ``probe.predict`` used for ``accuracy``, so
    ``robust_accuracy <= accuracy`` holds exactly.

    Args:
        encoder: module or function ``(B, C, H, W) -> (B, d)`` on ``[0, 1]`` images.
        train_images, test_images: ``(N, C, H, W)`` and ``(M, C, H, W)`` images in ``[0, 1]``
            in the encoder's dtype.
        train_labels, test_labels: ``(N,)`` and ``(M,)`` labels.
        epsilons: SynBench budgets in ``[0, 1)`` (relative to the class means; 0 = LDA).
        radius, n_steps, step_size: the attack, as in :func:`pgd_linf_probe`.
        normalize: L2-normalise embeddings (probe fitting and attack alike).
        seed, batch_size, device: as in :func:`pgd_linf_probe`.
        allow_rank_deficient: passed to :class:`RobustLinearProbe`.

    Returns:
        one row per epsilon: ``epsilon, accuracy`` (clean, test), ``robust_accuracy, radius, n_steps, n_test``.

    Raises:
        TypeError, ValueError: as :func:`pgd_linf_probe`, :func:`rmqm.metrics.probes.embed_dataset`
            and :class:`RobustLinearProbe`; bad epsilons.
    """
    eps_list = check_epsilons(epsilons)
    _check_images(train_images, "train_images")
    _check_images(test_images, "test_images")
    train_h, test_h = (embed_dataset(encoder, x, batch_size, device).double().numpy()
                       for x in (train_images, test_images))
    if normalize:
        train_h, test_h = (h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12) for h in (train_h, test_h))
    check_labels(train_labels, train_h.shape[0], "train_labels", of="train_images")
    y_test = check_labels(test_labels, test_h.shape[0], "test_labels", of="test_images")
    rows = []
    for eps in eps_list:
        probe = RobustLinearProbe(epsilon=eps, allow_rank_deficient=allow_rank_deficient).fit(train_h, train_labels)
        correct = probe.predict(test_h) == y_test
        _, robust = pgd_linf_probe(encoder, probe, test_images, y_test, radius=radius, n_steps=n_steps,
                                   step_size=step_size, normalize=normalize, seed=seed, batch_size=batch_size,
                                   device=device)
        rows.append({
            "epsilon": eps,
            "accuracy": float(correct.mean()),
            "robust_accuracy": float((robust.cpu().numpy() & correct).mean()),
            "radius": float(radius),
            "n_steps": int(n_steps),
            "n_test": int(test_h.shape[0]),
        })
    return pd.DataFrame(rows)
