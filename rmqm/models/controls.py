"""Reference encoders whose SynBench score is known in advance (validity controls).

SynBench (Ko et al. 2022) draws ``x = 0.5 + (2y - 1) s u + N(0, I_D)`` with unit mean direction
``u`` (all-ones ``1 / sqrt(D)`` in the reference). For a linear encoder ``h = A x`` LDA on ``h`` is
the Bayes rule of a mixture of separation ``rho s`` with ``rho = ||P u||``, ``P`` the orthogonal
projector onto the row space of ``A``: the score is a known function of ``rho``
(``rmqm.metrics.synbench.directions.linear_encoder_scores``; ``rho = 1`` gives 1, ``rho = 0`` gives 0).
Each control's ``separation(direction)`` returns its ``rho``. Identity and the invertible map need
``n_train >= D + 2`` samples (the covariance of ``D`` features), so use them on small inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ['IdentityControl', 'InvertibleLinearControl', 'MeanPixelControl', 'RandomProjectionControl',
           'ConstantNoiseControl', 'CONTROL_ENCODERS', 'build_control']


def _shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """``input_shape`` as a tuple of positive ints (ValueError otherwise)."""
    shape = tuple(int(v) for v in input_shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"input_shape must be positive integers such as (C, H, W); got {tuple(input_shape)}")
    return shape


def _unit(direction: Any, size: int) -> torch.Tensor:
    """``direction`` flattened to a float64 unit vector of ``size`` entries."""
    u = torch.as_tensor(direction, dtype=torch.float64).reshape(-1)
    if u.numel() != size:
        raise ValueError(f"direction needs {size} entries; got {u.numel()}")
    return u / torch.linalg.vector_norm(u)


class _Control(nn.Module):
    """Common part: the input shape, its size ``D``, the name and ``feature_dim``."""

    def __init__(self, input_shape: Sequence[int], feature_dim: int, name: str) -> None:
        super().__init__()
        self.input_shape = _shape(input_shape)
        self.input_dim = math.prod(self.input_shape)
        self.feature_dim = feature_dim
        self.name = name

    def separation(self, direction: Any = None) -> float:
        """``rho = ||P u||`` for unit direction ``u`` (default all-ones): the fraction of the
        mixture's separation the features keep."""
        raise NotImplementedError


class IdentityControl(_Control):
    """``h(x) = flatten(x)``, ``(B, *input_shape) -> (B, D)``.

    Expected SynBench score: 1 (``rho = 1``) for every direction and epsilon: the features are the
    raw data, LDA on them is the Bayes rule, and the covariance is isotropic so the robust rule is
    LDA too. Measured scores fall short of 1 only by estimation error (``n_train`` vs ``D``).
    """

    def __init__(self, input_shape: Sequence[int], seed: int = 0) -> None:
        shape = _shape(input_shape)
        super().__init__(shape, math.prod(shape), "identity")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)

    def separation(self, direction: Any = None) -> float:
        return 1.0


class InvertibleLinearControl(_Control):
    """``h(x) = A flatten(x) + b`` with ``A = Q diag(d)``, ``Q`` a seeded random orthogonal matrix,
    ``d`` evenly spaced in ``[0.5, 2]`` (condition number 4), ``b`` a seeded Gaussian offset.

    Expected SynBench score at epsilon = 0: 1 (``rho = 1``): LDA's normalised margins are invariant
    under an invertible affine map. At epsilon > 0 the robust rule is not affine-invariant (the
    features' covariance ``A A^T`` is anisotropic), so the score may differ a little from 1.
    """

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, input_shape: Sequence[int], seed: int = 0) -> None:
        shape = _shape(input_shape)
        size = math.prod(shape)
        super().__init__(shape, size, "invertible-linear")
        generator = torch.Generator().manual_seed(int(seed))
        q, r = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
        q = q * torch.sign(torch.diagonal(r))  # Haar-distributed orthogonal matrix
        scales = torch.linspace(0.5, 2.0, size, dtype=torch.float64) if size > 1 else torch.ones(1, dtype=torch.float64)
        self.register_buffer("weight", (q * scales).to(torch.float32))  # (D, D): columns of Q scaled
        self.register_buffer("bias", torch.randn(size, generator=generator).to(torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias

    def separation(self, direction: Any = None) -> float:
        return 1.0


class MeanPixelControl(_Control):
    """``h(x) = mean(x)`` over all input entries, ``(B, *input_shape) -> (B, 1)``: useless downstream.

    Expected SynBench score: about 1 under the all-ones direction (``rho = 1``: ``sqrt(D)(h - 0.5)``
    is ``N(+-s, 1)``, the raw mixture's sufficient statistic: the flaw of that direction); under a
    random direction ``rho = |sum(u)| / sqrt(D)``, about ``N(0, 1/D)`` in size, score about 0
    (exactly ``rho = 0`` for a zero-mean direction).
    """

    def __init__(self, input_shape: Sequence[int], seed: int = 0) -> None:
        super().__init__(input_shape, 1, "mean-pixel")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).mean(dim=1, keepdim=True)

    def separation(self, direction: Any = None) -> float:
        if direction is None:
            return 1.0
        return float(_unit(direction, self.input_dim).sum().abs() / math.sqrt(self.input_dim))


class RandomProjectionControl(_Control):
    """``h(x) = G^T flatten(x)`` with ``G`` a seeded ``(D, dim)`` Gaussian matrix over ``sqrt(D)``.

    Expected SynBench score: between 0 and 1, set by ``rho = ||P u||`` (``P`` the projector onto
    ``G``'s columns), about ``sqrt(dim / D)`` for any fixed direction. ``dim`` defaults to ``D // 4``
    (``rho`` about 0.5); on a 224-px image (``D = 150528``) a 1280-d projection keeps ``rho`` about
    0.09 and scores about 0.
    """

    weight: torch.Tensor

    def __init__(self, input_shape: Sequence[int], seed: int = 0, dim: int | None = None) -> None:
        shape = _shape(input_shape)
        size = math.prod(shape)
        dim = max(1, size // 4) if dim is None else int(dim)
        if not 1 <= dim <= size:
            raise ValueError(f"dim must lie in [1, D = {size}]; got {dim}")
        super().__init__(shape, dim, "random-projection")
        generator = torch.Generator().manual_seed(int(seed))
        self.register_buffer("weight", torch.randn(size, dim, generator=generator) / math.sqrt(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight

    def separation(self, direction: Any = None) -> float:
        u = _unit(torch.ones(self.input_dim) if direction is None else direction, self.input_dim)
        basis, _ = torch.linalg.qr(self.weight.to(torch.float64))  # orthonormal columns spanning G
        return float(torch.linalg.vector_norm(basis.T @ u))


class ConstantNoiseControl(_Control):
    """``h(x) = c + noise``, ``(B, *input_shape) -> (B, dim)``: independent of the input.

    ``c`` is a seeded constant vector; the noise is ``N(0, I_dim)`` drawn from ``generator`` if one is
    passed to ``forward``, else from the module's own generator seeded with ``seed`` (so a fresh
    module, or one after :meth:`reset`, repeats its sequence of calls exactly).

    Expected SynBench score: about 0 (``rho = 0``): test accuracy is 0.5 up to sampling noise
    (``+- 1/sqrt(n_test)``) so no mean scale reaches a threshold of 0.6 or more.
    """

    constant: torch.Tensor

    def __init__(self, input_shape: Sequence[int], seed: int = 0, dim: int = 8) -> None:
        if int(dim) < 1:
            raise ValueError(f"dim must be >= 1; got {dim}")
        super().__init__(input_shape, int(dim), "constant-noise")
        self.seed = int(seed)
        self.register_buffer("constant", torch.randn(int(dim), generator=torch.Generator().manual_seed(self.seed)))
        self.reset()

    def reset(self) -> None:
        """Restart the module's own noise sequence."""
        self.generator = torch.Generator().manual_seed(self.seed + 1)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn((x.shape[0], self.feature_dim), generator=generator or self.generator)
        return self.constant + noise.to(device=self.constant.device, dtype=self.constant.dtype)

    def separation(self, direction: Any = None) -> float:
        return 0.0


#: ``name -> constructor(input_shape, seed)`` of each control encoder.
CONTROL_ENCODERS: dict[str, Callable[..., _Control]] = {
    "identity": IdentityControl,
    "invertible-linear": InvertibleLinearControl,
    "mean-pixel": MeanPixelControl,
    "random-projection": RandomProjectionControl,
    "constant-noise": ConstantNoiseControl,
}


def build_control(name: str, input_shape: Sequence[int], seed: int = 0, **kwargs: Any) -> nn.Module:
    """The control encoder ``name`` of :data:`CONTROL_ENCODERS` (ValueError naming the choices otherwise)."""
    if name not in CONTROL_ENCODERS:
        raise ValueError(f"unknown control encoder {name!r}; choose one of {tuple(CONTROL_ENCODERS)}")
    return CONTROL_ENCODERS[name](input_shape, seed, **kwargs)
