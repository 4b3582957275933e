"""Claim 2's input-space attacks on the epsilon-robust probes, cached in a results store."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from torch import nn

from rmqm._utils.hashing import module_digest
from rmqm.experiments.cache import cached_table
from rmqm.metrics.robust_attack import attack_robust_probes

__all__ = ["ROBUST_ATTACK_MODULES", "cached_robust_attack"]


#: The module whose code computes :func:`cached_robust_attack`'s table (with what it imports).
ROBUST_ATTACK_MODULES: tuple[str, ...] = ("rmqm.metrics.robust_attack",)


def cached_robust_attack(
    store: Any, model: str, encoder: nn.Module, train: Any, test: Any, data_config: Mapping[str, Any], *,
    attack_n: int, epsilons: Sequence[float], radius: float, n_steps: int, seed: int, batch_size: int = 64,
    device: str = "cpu",
) -> pd.DataFrame:
    """:func:`rmqm.metrics.robust_attack.attack_robust_probes` of one encoder at one L-inf
    ``radius`` (SynBench's claim 2, checked in input space), cached in a results store: the
    probes are fitted on ``train`` and the first ``attack_n`` images of ``test`` are attacked
    with ``n_steps`` PGD steps of ``2.5 radius / n_steps``.

    The key holds ``model``, ``data_config`` (e.g. the task, split and subsample size), the
    attack's parameters, the encoder's :func:`~rmqm._utils.hashing.module_digest`, the
    fingerprints of ``train`` and ``test`` and the code fingerprint of
    :data:`ROBUST_ATTACK_MODULES` only: a change to a chapter does not recompute the attacks.

    Raises:
        ValueError: ``radius`` outside ``(0, 1]`` (pixel units).
    """
    radius = float(radius)
    if not 0 < radius <= 1:
        raise ValueError(f"radius must be an L-inf radius in (0, 1] (pixel units); got {radius}")
    config = {"kind": "robust-attack", "model": model, **dict(data_config), "attack_n": int(attack_n),
              "epsilons": [float(e) for e in epsilons], "radius": radius, "n_steps": int(n_steps), "seed": int(seed),
              "encoder": module_digest(encoder), "data": [train.fingerprint(), test.fingerprint()]}
    compute = functools.partial(  # a partial names no rmqm module: the key's code is the attack's alone
        attack_robust_probes, encoder, train.images, train.labels, test.images[:attack_n], test.labels[:attack_n],
        list(epsilons), radius=radius, n_steps=int(n_steps), step_size=2.5 * radius / max(int(n_steps), 1),
        seed=int(seed), batch_size=batch_size, device=device)
    return cached_table(store, config, compute, code=ROBUST_ATTACK_MODULES)
