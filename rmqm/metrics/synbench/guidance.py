"""SynBench's second claim (Ko et al. 2022, Sec. 4: "SynBench guides robust linear probing"), per
encoder: the epsilon its score favours against the epsilon that resists a real attack best, with
ties handled as a uniform choice among the tied epsilons.

SynBench's ``epsilon`` is an L2 budget on the *features*, relative to the class-mean norm
(the reference's QCQP, ``evaluate_synbench.py``); the attack that judges it here is an L-infinity
PGD on the *pixels* (:mod:`rmqm.metrics.robust_attack`). The two threat models differ: the claim is
tested across them, as the paper uses it (pick the probe's epsilon from SynBench, deploy against
input attacks).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["THREAT_MODELS", "tied_argmax", "uniform_tie_outcome"]

#: The two threat models claim 2 puts side by side.
THREAT_MODELS: dict[str, str] = {
    "synbench": "L2 shift of the features of norm <= epsilon ||mu|| (the probe's QCQP budget; no attack)",
    "attack": "L-infinity PGD on the input pixels through encoder and probe (pixel units)",
}


def tied_argmax(values: pd.Series, rtol: float = 1e-9, atol: float = 1e-12) -> list[float]:
    """The index labels (epsilons) at which ``values`` reaches its maximum, all of them on a tie
    (``numpy.isclose`` with ``rtol``, ``atol``), in index order.

    Raises:
        ValueError: empty, or NaN values.
    """
    v = values.to_numpy(dtype=np.float64)
    if v.size == 0 or not np.isfinite(v).all():
        raise ValueError(f"values must be non-empty and finite; got {values.tolist()}")
    best = v.max()
    return [float(e) for e, x in zip(values.index, v, strict=True) if np.isclose(x, best, rtol=rtol, atol=atol)]


def uniform_tie_outcome(scores: pd.Series, robust: pd.Series) -> dict[str, float]:
    """What following SynBench gets when its favoured epsilon is drawn uniformly among its ties.

    Args:
        scores: SynBench score per epsilon (index: epsilon).
        robust: robust accuracy under the attack per epsilon (index: epsilon; must cover ``scores``).

    Returns:
        ``synbench_epsilon`` (the smallest tied one, for display), ``n_tied`` (how many epsilons tie
        for SynBench's maximum), ``best_epsilon`` (smallest of the attack's best), ``robust_synbench``
        (expected robust accuracy of the uniform choice: the mean over SynBench's ties), ``agree``
        (probability that the uniform choice is one of the attack's best), ``robust_best``,
        ``robust_random`` (mean over all epsilons) and ``robust_plain`` (epsilon 0; NaN if absent).

    Raises:
        ValueError: an epsilon of ``scores`` missing from ``robust``.
    """
    missing = [e for e in scores.index if e not in robust.index]
    if missing:
        raise ValueError(f"no robust accuracy for epsilons {missing}")
    favoured = tied_argmax(scores)
    best = tied_argmax(robust)
    return {
        "synbench_epsilon": min(favoured), "n_tied": float(len(favoured)), "best_epsilon": min(best),
        "robust_synbench": float(robust.loc[favoured].mean()),
        "agree": float(np.mean([any(np.isclose(e, b) for b in best) for e in favoured])),
        "robust_best": float(robust.max()), "robust_random": float(robust.mean()),
        "robust_plain": float(robust.get(0.0, np.nan)),
    }
