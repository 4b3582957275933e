"""SynBench's synthetic data and the closed-form raw-data reference."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy import stats

from rmqm._utils.device import resolve_device
from rmqm._utils.validation import check_int

__all__ = ['mixture_direction', 'sample_gaussian_mixture', 'raw_accuracy', 'expected_bound', 'check_input_shape',
           'DIRECTION_NAMES', 'random_directions', 'pca_direction', 'named_direction']


def mixture_direction(
    input_shape: Sequence[int], direction: Any = None, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Unit mean direction ``u`` of the mixture, shaped like one input ``(C, H, W)``.

    Args:
        input_shape: ``(C, H, W)`` of one encoder input.
        direction: ``None`` for the all-ones direction of the reference, or any array
            with ``prod(input_shape)`` finite entries, not all zero (normalised here).
        device: where the result lives (``"cpu"``, ``"cuda[:N]"``, ``"auto"`` or a ``torch.device``).

    Returns:
        float32 tensor of shape ``input_shape`` with unit Euclidean norm.

    Raises:
        TypeError, ValueError: a bad shape, a direction of the wrong size, NaN/inf or zero.
    """
    shape = check_input_shape(input_shape)
    size = math.prod(shape)
    if direction is None:
        u = torch.ones(shape, dtype=torch.float64)
    else:
        if isinstance(direction, torch.Tensor):
            direction = direction.detach().cpu()
        u = torch.as_tensor(np.asarray(direction, dtype=np.float64))
        if u.numel() != size:
            raise ValueError(
                f"direction must have prod(input_shape) = {size} entries (shape {shape}); "
                f"got shape {tuple(u.shape)}"
            )
        u = u.reshape(shape)
        if not torch.isfinite(u).all():
            raise ValueError("direction contains NaN or inf")
    norm = torch.linalg.vector_norm(u)
    if norm == 0:
        raise ValueError("direction must not be the zero vector")
    return (u / norm).to(device=resolve_device(device), dtype=torch.float32)


def sample_gaussian_mixture(
    n: int,
    s: float,
    input_shape: Sequence[int],
    *,
    direction: Any = None,
    prior: float = 0.5,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` samples of the SynBench mixture in one vectorised call.

    ``y ~ Bernoulli(prior)`` and ``x = 0.5 + (2y - 1) s u + N(0, I)``, so ``||mu|| = s``.

    Args:
        n: number of samples.
        s: mean scale ``||mu||`` (>= 0).
        input_shape: ``(C, H, W)``.
        direction: mean direction (default all-ones); normalised to unit length.
        prior: class prior ``P(y = 1)``.
        generator: a ``torch.Generator`` on ``device`` (seeds the draw).
        device: ``"cpu"``, ``"cuda[:N]"``, ``"auto"`` or a ``torch.device``.

    Returns:
        ``x`` float32 ``(n, C, H, W)`` (not clipped) and ``y`` int64 ``(n,)`` in {0, 1}.

    Raises:
        ValueError: a bad shape, ``n``, ``s`` or ``prior``.
    """
    shape = check_input_shape(input_shape)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    if not (math.isfinite(s) and s >= 0):
        raise ValueError(f"s must be finite and >= 0; got {s}")
    if not 0 < prior < 1:
        raise ValueError(f"prior must lie in (0, 1); got {prior}")
    device = resolve_device(device)
    u = mixture_direction(shape, direction, device=device)
    y = torch.bernoulli(torch.full((int(n),), float(prior), device=device), generator=generator)
    x = torch.randn((int(n), *shape), generator=generator, device=device)
    sign = (2.0 * y - 1.0).reshape(-1, *([1] * len(shape)))
    x = x.addcmul_(sign, float(s) * u).add_(0.5)  # fused: no (n, D) temporary; sign is +-1, so exact
    return x, y.long()


def raw_accuracy(s: Any) -> np.ndarray:
    """Bayes accuracy ``Phi(s)`` (same shape as ``s``) of the raw mixture with ``||mu|| = s``."""
    return stats.norm.cdf(np.asarray(s, dtype=np.float64))


def expected_bound(a: Any) -> np.ndarray:
    """Closed-form expected normalised radius of correct raw points at accuracy ``a``.

    ``E(a) = 1 + phi(q) / (a q)`` with ``q = Phi^-1(a)``: the mean of ``N(s, 1)``
    truncated to ``> 0``, divided by ``s = q`` (SynBench, Sec. 3). ``E(1) = 1``.

    Args:
        a: accuracies in ``(0.5, 1]`` (any shape).

    Returns:
        ``E(a)``, the shape of ``a``.

    Raises:
        ValueError: an accuracy outside ``(0.5, 1]``.
    """
    a = np.asarray(a, dtype=np.float64)
    if not np.all((a > 0.5) & (a <= 1.0)):
        raise ValueError("expected_bound needs accuracies in (0.5, 1]")
    q = stats.norm.ppf(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = 1.0 + stats.norm.pdf(q) / (a * q)
    return np.where(np.isinf(q), 1.0, out)


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """``input_shape`` as a ``(C, H, W)`` tuple of positive ints.

    Raises:
        TypeError: not a sequence.
        ValueError: not three positive integers.
    """
    try:
        shape = tuple(int(v) for v in input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be a tuple (C, H, W); got {input_shape!r}") from None
    if len(shape) != 3 or min(shape) < 1 or any(int(v) != v for v in input_shape):
        raise ValueError(f"input_shape must be (C, H, W) with positive integers; got {tuple(input_shape)}")
    return shape


#: Names :func:`named_direction` (and ``evaluate_synbench(direction=...)``) accepts.
DIRECTION_NAMES: tuple[str, ...] = ("all-ones", "random", "random-zero-mean")


def random_directions(input_shape: Sequence[int], k: int, seed: int, *, zero_mean: bool = False) -> torch.Tensor:
    """``k`` seeded random unit directions, uniform on the sphere (normalised Gaussians).

    Args:
        input_shape: ``(C, H, W)``.
        k: how many.
        seed: seeds a private ``torch.Generator`` (the same seed gives the same directions; the
            first ``j`` of ``k`` do not depend on ``k``).
        zero_mean: project out the all-ones vector first (each direction's pixels sum to 0), which
            removes the mean-pixel shortcut exactly; otherwise its all-ones component is
            ``N(0, 1/D)``, negligible for images but not for a tiny ``D``.

    Returns:
        float32 ``(k, C, H, W)``, each slice of unit Euclidean norm.

    Raises:
        ValueError: bad shape or ``k``; ``zero_mean`` with ``D = 1``.
    """
    shape = check_input_shape(input_shape)
    check_int(k, "k", low=1)
    size = math.prod(shape)
    if zero_mean and size < 2:
        raise ValueError("zero_mean directions need at least 2 input entries")
    generator = torch.Generator().manual_seed(int(seed))
    g = torch.randn((int(k), size), generator=generator, dtype=torch.float64)
    if zero_mean:
        g = g - g.mean(dim=1, keepdim=True)
    g = g / torch.linalg.vector_norm(g, dim=1, keepdim=True)
    return g.reshape(int(k), *shape).to(torch.float32)


def pca_direction(images: Any) -> torch.Tensor:
    """First principal component of real images (the direction of their largest variance).

    Args:
        images: ``(N, C, H, W)`` array or tensor, ``N >= 2``, not all equal.

    Returns:
        float32 ``(C, H, W)`` of unit norm, sign fixed so that its entries sum to a positive
        number (its largest-magnitude entry positive if they sum to 0).

    Raises:
        ValueError: not 4-D, fewer than 2 images, NaN/inf, or zero variance.
    """
    x = torch.as_tensor(np.asarray(images.detach().cpu() if isinstance(images, torch.Tensor) else images,
                                   dtype=np.float64))
    if x.ndim != 4 or x.shape[0] < 2:
        raise ValueError(f"images must be (N, C, H, W) with N >= 2; got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or inf")
    flat = x.reshape(x.shape[0], -1)
    centred = flat - flat.mean(dim=0, keepdim=True)
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)  # rows of vh: principal axes
    if not singular[0] > 0:
        raise ValueError("images have zero variance: no principal direction")
    v = vh[0]
    total = float(v.sum())
    if total < 0 or (total == 0 and float(v[v.abs().argmax()]) < 0):
        v = -v
    return (v / torch.linalg.vector_norm(v)).reshape(x.shape[1:]).to(torch.float32)


def named_direction(input_shape: Sequence[int], name: str, seed: int = 0) -> torch.Tensor:
    """A direction by name: ``"all-ones"``, ``"random"`` or ``"random-zero-mean"`` (the first of
    :func:`random_directions` with ``seed``). Returns float32 ``input_shape``, unit norm.

    Raises:
        ValueError: an unknown name.
    """
    if name == "all-ones":
        return mixture_direction(input_shape, None)
    if name in ("random", "random-zero-mean"):
        return random_directions(input_shape, 1, seed, zero_mean=name == "random-zero-mean")[0]
    raise ValueError(f"unknown direction name {name!r}; choose one of {DIRECTION_NAMES} or pass an array")
