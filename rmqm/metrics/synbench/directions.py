"""SynBench over several mean directions (``rmqm.metrics.synbench.mixture.random_directions``,
``pca_direction``), and the score a linear encoder gets in closed form.

Why: with the all-ones direction ``u = 1 / sqrt(D)`` the mean pixel is a sufficient statistic of
the raw mixture, so an encoder that outputs only the mean brightness scores about 1 (see
``rmqm.models.controls``). Random unit directions (isotropic, optionally orthogonal to the all-ones
vector) and the first principal component of real images show how much of a score is this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike
from torch import nn

from rmqm.metrics.synbench.curves import (
    DEFAULT_S_VALUES,
    DEFAULT_THRESHOLDS,
    accuracy_grid,
    check_thresholds,
    expected_bound_curve,
    synbench_scores,
)
from rmqm.metrics.synbench.evaluate import evaluate_synbench
from rmqm.metrics.synbench.mixture import expected_bound, raw_accuracy

__all__ = ['linear_encoder_scores', 'synbench_over_directions']

def linear_encoder_scores(
    separation: float, s_values: ArrayLike | None = None, thresholds: ArrayLike | None = None,
) -> np.ndarray:
    """Large-sample SynBench score of an encoder whose features carry a fraction ``rho`` of the
    mixture's separation, per threshold.

    For a linear encoder ``h = A x`` (plus input-independent noise it is not), LDA on ``h`` is the
    Bayes rule of a mixture with ``||mu||_eff = rho s``, ``rho = ||P u||``, ``P`` the orthogonal
    projector onto the row space of ``A``: its accuracy is ``Phi(rho s)`` and the normalised bound
    of its correct points ``E(Phi(rho s))``, the raw data's closed form at that accuracy. ``rho = 1``
    (identity, any invertible map) gives score 1; ``rho = 0`` (features independent of the
    input) gives 0. Finite ``n_train`` lowers a measured score a little (estimated LDA).

    Args:
        separation: ``rho`` in ``[0, 1]``.
        s_values: mean scales (default the reference's 0.1, ..., 4.9).
        thresholds: threshold accuracies (default 0.6, 0.65, ..., 0.95, 0.99).

    Returns:
        ``(T,)`` scores.
    """
    if not 0 <= separation <= 1 + 1e-9:
        raise ValueError(f"separation must lie in [0, 1]; got {separation}")
    s = np.asarray(DEFAULT_S_VALUES if s_values is None else s_values, dtype=np.float64)
    ts = check_thresholds(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
    grid = accuracy_grid(ts)
    raw_acc = raw_accuracy(s)
    raw_curve = expected_bound_curve(raw_acc, expected_bound(raw_acc), grid)
    acc = raw_accuracy(min(float(separation), 1.0) * s)
    bound = np.where(acc > 0.5, expected_bound(np.maximum(acc, 0.5 + 1e-12)), 0.0)
    return synbench_scores(expected_bound_curve(acc, bound, grid), raw_curve, grid, ts)


def synbench_over_directions(
    encoder: nn.Module,
    input_shape: tuple[int, int, int],
    directions: Mapping[str, Any] | Sequence[Any] | torch.Tensor,
    *,
    thresholds: ArrayLike | None = None,
    epsilons: Sequence[float] = (0.0,),
    **kwargs: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SynBench of one encoder under several mean directions, and the spread over directions.

    Args:
        encoder, input_shape: as :func:`evaluate_synbench`.
        directions: ``{label: direction}``, a sequence, or a ``(k, C, H, W)`` tensor (labels
            ``"0", "1", ...``); each direction an array of ``C*H*W`` entries or a name of
            :data:`DIRECTION_NAMES`.
        thresholds, epsilons: as :func:`evaluate_synbench`.
        **kwargs: passed on to :func:`evaluate_synbench` (``s_values``, ``n_train``, ``seed`` ...);
            the same ``seed`` for every direction (common random numbers: the noise draws are
            shared, only the direction changes).

    Returns:
        ``(per_direction, summary)``: ``per_direction`` one row per direction, threshold and
        epsilon (``direction, threshold, epsilon, score, ci_low, ci_high, corrected``, the last the
        width-corrected score of :mod:`rmqm.metrics.synbench.width`); ``summary`` one row
        per threshold and epsilon over directions (``n_directions, mean, std, min, max``; ``std``
        with ``ddof=1``, NaN for one direction).
    """
    if isinstance(directions, torch.Tensor):
        items: list[tuple[str, Any]] = [(str(i), d) for i, d in enumerate(directions)]
    elif isinstance(directions, Mapping):
        items = [(str(label), d) for label, d in directions.items()]
    else:
        items = [(d if isinstance(d, str) else str(i), d) for i, d in enumerate(directions)]
    if not items:
        raise ValueError("directions must not be empty")
    rows = []
    for label, direction in items:
        result = evaluate_synbench(encoder, input_shape, thresholds=thresholds, epsilons=epsilons,
                                   direction=direction, **kwargs)
        rows.append(result.scores.assign(direction=label))
    per_direction = pd.concat(rows, ignore_index=True)[
        ["direction", "threshold", "epsilon", "score", "ci_low", "ci_high", "corrected"]]
    summary = (per_direction.groupby(["threshold", "epsilon"])["score"]
               .agg(n_directions="count", mean="mean", std="std", min="min", max="max").reset_index())
    return per_direction, summary
