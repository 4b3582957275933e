"""The alterations of RMQM as frozen, self-validating values: :class:`WhiteNoise` and :class:`PGD`.

An alteration says how each input is pushed through sequentially larger changes (the paper's
Section 3.1: white noise of growing standard deviation, PGD attacks of growing step count). It
validates itself on construction, so a bad value fails where it is written (a profile, the
CLI, a notebook) and not deep inside a measurement, and :meth:`WhiteNoise.keywords` /
:meth:`PGD.keywords` serialise it as the JSON-like entries of its cache key.
:func:`alteration_from_keywords` reads such entries back: it is the one place where flat
keywords (a profile's YAML, a stored key) become a spec.

>>> WhiteNoise(n_levels=5, sigma_max=0.5).strengths().tolist()
[0.0, 0.125, 0.25, 0.375, 0.5]
>>> PGD.for_method("cross-entropy", "reference").attack.needs_head
True
>>> alteration_from_keywords(WhiteNoise(n_levels=5).keywords()) == WhiteNoise(n_levels=5)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch

from rmqm._utils.validation import check_choice
from rmqm.metrics.rmqm.attacks import FACTORS, AttackSpec, resolve_attack
from rmqm.metrics.rmqm.perturbations import NOISE_SCHEDULES, check_n_levels, check_pgd_params, noise_levels

__all__ = ["WhiteNoise", "PGD", "Alteration", "ALTERATION_KINDS", "ALTERATION_KEYWORDS", "alteration_from_keywords",
           "OWN_LOSS_MODES", "attacked_with"]

#: The PGD modes that attack a model with its own training loss unless a loss is named.
OWN_LOSS_MODES: tuple[str, ...] = ("own-loss", "reference")


def attacked_with(method: str, mode: str | None, loss: str | None = None) -> str:
    """What PGD ascends on a model trained with ``method`` in ``mode`` (the argument of
    :func:`~rmqm.metrics.rmqm.attacks.resolve_attack`): ``loss`` when one is named, else the model's
    own ``method`` in :data:`OWN_LOSS_MODES`, else the label-free displacement.

    >>> attacked_with("nt-xent", "reference"), attacked_with("nt-xent", None)
    ('nt-xent', 'displacement')
    >>> attacked_with("nt-xent", "own-loss", loss="vicreg")
    'vicreg'
    """
    if loss is not None:
        return loss
    return method if mode in OWN_LOSS_MODES else "displacement"


def _check_bool(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{owner}.{name} must be a bool; got {value!r}")


def _check_positive(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{owner}.{name} must be a finite number > 0; got {value!r}")


@dataclass(frozen=True)
class WhiteNoise:
    """White noise of growing standard deviation (the paper's Section 3.1; the reference's
    ``generate_embeddings_noise``): level ``k`` adds ``N(0, sigma_k^2)`` per pixel with
    ``sigma_k = linspace(0, sigma_max, n_levels)[k]``, level 0 being the clean input.

    Attributes:
        n_levels: levels including the clean one (>= 3: RMQM needs two steps).
        sigma_max: largest standard deviation, pixel units (``[0, 1]`` images).
        schedule: ``"fresh"`` (a new draw per level, the reference) or ``"nested"`` (one draw
            scaled by each level's sigma).
        clip: clamp noisy images to ``[0, 1]``.

    >>> WhiteNoise(n_levels=3, sigma_max=0.2).keywords()
    {'perturbation': 'noise', 'n_levels': 3, 'sigma_max': 0.2, 'nested': False, 'clip': True}
    >>> WhiteNoise(sigma_max=-1)
    Traceback (most recent call last):
    ...
    ValueError: WhiteNoise.sigma_max must be a finite number >= 0 (pixel units); got -1
    """

    kind: ClassVar[str] = "noise"

    n_levels: int = 100
    sigma_max: float = 1.0
    schedule: str = "fresh"
    clip: bool = True

    def __post_init__(self) -> None:
        check_n_levels(self.n_levels)
        if isinstance(self.sigma_max, bool) or not isinstance(self.sigma_max, (int, float)):
            raise TypeError(f"WhiteNoise.sigma_max must be a number; got {self.sigma_max!r}")
        if not math.isfinite(self.sigma_max) or self.sigma_max < 0:
            raise ValueError(f"WhiteNoise.sigma_max must be a finite number >= 0 (pixel units); got {self.sigma_max}")
        check_choice(self.schedule, NOISE_SCHEDULES, "noise schedule")
        _check_bool("WhiteNoise", "clip", self.clip)
        object.__setattr__(self, "n_levels", int(self.n_levels))
        object.__setattr__(self, "sigma_max", float(self.sigma_max))

    @property
    def nested(self) -> bool:
        """One draw shared by every level."""
        return self.schedule == "nested"

    def strengths(self) -> torch.Tensor:
        """``(n_levels,)`` float64 noise standard deviations, pixel units."""
        return noise_levels(self.sigma_max, self.n_levels)

    def keywords(self) -> dict[str, Any]:
        """The spec as JSON-like cache-key entries (read back by :func:`alteration_from_keywords`)."""
        return {"perturbation": self.kind, "n_levels": self.n_levels, "sigma_max": self.sigma_max,
                "nested": self.nested, "clip": self.clip}


_DISPLACEMENT = AttackSpec("displacement", "displacement")


@dataclass(frozen=True)
class PGD:
    """Projected gradient ascent of growing step count (the paper's Section 3.1; the reference's
    ``src/attacks.py``): level ``k`` is the image after ``k`` signed-gradient steps of size
    ``step_size`` inside the L-infinity ball of radius ``epsilon`` around the clean image.

    Attributes:
        n_levels: levels including the clean one (>= 3), i.e. ``n_levels - 1`` steps.
        step_size: the step ``alpha``, pixel units (the reference: 1/255 CIFAR, 2/255 MNIST).
        epsilon: the L-infinity radius, pixel units. Not SynBench's budget (an L2 radius in
            feature space relative to the class mean).
        attack: which loss is ascended and how (:class:`~rmqm.metrics.rmqm.attacks.AttackSpec`,
            decided by :func:`~rmqm.metrics.rmqm.attacks.resolve_attack`; use :meth:`for_method`).
            Default: the label-free displacement attack.
        temperature, margin: NT-Xent temperature and triplet margin of the own losses (the
            reference: 0.07 and 0.5).

    >>> pgd = PGD.for_method("nt-xent", "reference", n_levels=4, step_size=2 / 255)
    >>> pgd.attack.mode, pgd.attack.loss, pgd.attack.restarts, pgd.strengths().tolist()
    ('reference', 'nt-xent', True, [0.0, 1.0, 2.0, 3.0])
    >>> PGD(n_levels=2)
    Traceback (most recent call last):
    ...
    ValueError: n_levels must be an integer >= 3 (RMQM needs two steps); got 2
    """

    kind: ClassVar[str] = "pgd"

    n_levels: int = 30
    step_size: float = 1 / 255
    epsilon: float = 0.3
    attack: AttackSpec = field(default=_DISPLACEMENT)
    temperature: float = 0.07
    margin: float = 0.5

    def __post_init__(self) -> None:
        check_n_levels(self.n_levels)
        for name in ("step_size", "epsilon", "temperature", "margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"PGD.{name} must be a number; got {value!r}")
        check_pgd_params(self.n_levels - 1, self.step_size, self.epsilon)
        _check_positive("PGD", "temperature", self.temperature)
        if not math.isfinite(self.margin) or self.margin < 0:
            raise ValueError(f"PGD.margin must be a finite number >= 0; got {self.margin}")
        if not isinstance(self.attack, AttackSpec):
            raise TypeError(f"PGD.attack must be an AttackSpec (resolve_attack(method, mode)); got {self.attack!r}")
        object.__setattr__(self, "n_levels", int(self.n_levels))
        for name in ("step_size", "epsilon", "temperature", "margin"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @classmethod
    def for_method(cls, method: str, mode: str | None = None, *, factors: Mapping[str, Any] | None = None,
                   **params: Any) -> PGD:
        """The PGD that attacks a model of ``method`` (a pretraining method or an attack loss) in
        ``mode``: ``PGD(attack=resolve_attack(method, mode, **factors), **params)``."""
        return cls(attack=resolve_attack(method, mode, **dict(factors or {})), **params)

    def with_attack(self, attack: AttackSpec) -> PGD:
        """The same levels, step and radius under another attack."""
        return replace(self, attack=attack)

    def strengths(self) -> torch.Tensor:
        """``(n_levels,)`` float64 step counts ``0, 1, ..., n_levels - 1``."""
        return torch.arange(self.n_levels, dtype=torch.float64)

    def keywords(self) -> dict[str, Any]:
        """The spec as JSON-like cache-key entries (read back by :func:`alteration_from_keywords`)."""
        return {"perturbation": self.kind, "n_levels": self.n_levels, "step_size": self.step_size,
                "epsilon": self.epsilon, **self.attack.keywords(), "raw_gradient": self.attack.raw_gradient,
                "temperature": self.temperature, "margin": self.margin}


#: An alteration of :func:`rmqm.metrics.rmqm.measure.measure_rmqm`.
Alteration = WhiteNoise | PGD

#: The alteration kinds by name, as tables and cache keys write them (``perturbation``).
ALTERATION_KINDS: dict[str, type] = {"noise": WhiteNoise, "pgd": PGD}

#: The flat keywords of each kind (besides ``perturbation``), as :func:`alteration_from_keywords` reads them.
ALTERATION_KEYWORDS: dict[str, tuple[str, ...]] = {
    "noise": ("n_levels", "sigma_max", "nested", "clip"),
    "pgd": ("n_levels", "step_size", "epsilon", "attack_loss", "pgd_mode", *FACTORS, "raw_gradient", "temperature",
            "margin"),
}


def alteration_from_keywords(keywords: Mapping[str, Any]) -> Alteration:
    """The spec that flat keywords describe: a stored cache key's entries
    (:meth:`WhiteNoise.keywords`, :meth:`PGD.keywords`) or a profile's alteration.

    ``perturbation`` picks the kind (``"noise"`` or ``"pgd"``); a missing entry takes the spec's
    default. The PGD attack is decided by :func:`~rmqm.metrics.rmqm.attacks.resolve_attack` from
    ``attack_loss`` (default ``"displacement"``), ``pgd_mode`` and the factor switches; a stored
    ``raw_gradient`` must agree with that decision.

    Raises:
        ValueError: an unknown kind or entry, or values the spec refuses (named).
    """
    kind = check_choice(keywords.get("perturbation", "noise"), tuple(ALTERATION_KINDS), "perturbation")
    allowed = ALTERATION_KEYWORDS[kind]
    unknown = sorted(set(keywords) - set(allowed) - {"perturbation"})
    if unknown:
        raise ValueError(f"unknown {kind} alteration entries {unknown}; a {kind} alteration takes {list(allowed)}")
    if kind == "noise":
        _check_bool("WhiteNoise", "nested", keywords.get("nested", False))
        schedule = "nested" if keywords.get("nested", False) else "fresh"
        return WhiteNoise(**{k: keywords[k] for k in ("n_levels", "sigma_max", "clip") if k in keywords},
                          schedule=schedule)
    factors = {k: keywords[k] for k in FACTORS if k in keywords}
    attack = resolve_attack(keywords.get("attack_loss", "displacement"), keywords.get("pgd_mode"), **factors)
    if "raw_gradient" in keywords and bool(keywords["raw_gradient"]) != attack.raw_gradient:
        raise ValueError(f"raw_gradient={keywords['raw_gradient']!r} does not match the {attack.loss} attack in mode "
                         f"{attack.mode!r} (resolve_attack decides it: {attack.raw_gradient})")
    params = {k: keywords[k] for k in ("n_levels", "step_size", "epsilon", "temperature", "margin") if k in keywords}
    return PGD(attack=attack, **params)
