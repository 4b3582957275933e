"""Chapter 4's calibration: SynBench of encoders whose score is known in advance, along every mean
direction the chapter scores the zoo under: the reference's all-ones direction, random unit
directions orthogonal to all-ones (zero-mean: no mean-pixel shortcut) and isotropic random ones."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rmqm._utils.progress import progress
from rmqm.metrics.synbench.directions import linear_encoder_scores, synbench_over_directions
from rmqm.metrics.synbench.mixture import named_direction
from rmqm.models.controls import CONTROL_ENCODERS

__all__ = ['ALL_ONES', 'ZERO_MEAN', 'RANDOM', 'CONTROL_SHAPE', 'synbench_controls', 'control_table', 'control_lines']

#: The mean-direction choices: the reference's all-ones direction, random unit directions orthogonal to
#: all-ones, and isotropic random unit directions.
ALL_ONES, ZERO_MEAN, RANDOM = ("all-ones (reference)", "random zero-mean (mean over directions)",
                               "random (mean over directions)")
_CHOICE = {"all-ones": ALL_ONES, "random-zero-mean": ZERO_MEAN, "random": RANDOM}
#: The input shape the book's controls run on: small, since the identity's feature covariance is D x D.
CONTROL_SHAPE: tuple[int, int, int] = (1, 8, 8)


def synbench_controls(
    input_shape: Sequence[int],
    s_values: Sequence[float],
    epsilons: Sequence[float],
    n_samples: int,
    *,
    n_directions: int = 10,
    threshold: float = 0.7,
    batch_size: int = 512,
    seed: int = 0,
    device: str = "cpu",
) -> pd.DataFrame:
    """SynBench of every control encoder (:data:`rmqm.models.controls.CONTROL_ENCODERS`) under the
    all-ones mean direction, under ``n_directions`` seeded random unit directions orthogonal to
    all-ones and under as many isotropic ones, beside the score each is expected to get
    (:func:`rmqm.metrics.synbench.directions.linear_encoder_scores` of the separation it keeps; the
    constant-plus-noise control keeps none).

    Args:
        input_shape: ``(C, H, W)`` of the zoo's inputs.
        s_values, epsilons, n_samples: the mixture grid, robustness budgets and train/test samples
            per scale, as the zoo's SynBench (no bootstrap: the spread over directions is shown); at
            least ``D + 2`` samples are drawn (``D = C H W``) so that the identity's feature covariance
            can be inverted.
        n_directions: random directions (seeds ``0 .. n_directions - 1``), at least 1.
        threshold: the threshold accuracy ``t`` of the score.

    Returns:
        One row per control, direction and epsilon: ``control, choice`` (:data:`ALL_ONES`,
        :data:`ZERO_MEAN` or :data:`RANDOM`), ``direction, epsilon, score, corrected, expected``
        (``corrected``: the width-corrected score, :mod:`rmqm.metrics.synbench.width`).

    Raises:
        ValueError: ``n_directions < 1``, or ``input_shape`` is not ``(C, H, W)``.
    """
    if int(n_directions) < 1:
        raise ValueError(f"n_directions must be at least 1; got {n_directions}")
    channels, height, width = (int(v) for v in input_shape)
    shape = (channels, height, width)
    n_samples = max(int(n_samples), channels * height * width + 2)  # the identity's covariance must be invertible
    directions = {"all-ones": named_direction(shape, "all-ones")}
    for kind in ("random-zero-mean", "random"):
        directions.update({f"{kind}-{i}": named_direction(shape, kind, seed=i) for i in range(int(n_directions))})
    rows = []
    for name in progress(CONTROL_ENCODERS, "SynBench controls", label=str, unit="encoder"):
        encoder = CONTROL_ENCODERS[name](shape, seed)
        per, _ = synbench_over_directions(
            encoder, shape, directions, thresholds=[threshold], epsilons=list(epsilons), s_values=list(s_values),
            n_train=n_samples, n_test=n_samples, n_bootstrap=0, batch_size=batch_size, seed=seed, device=device,
            progress=False)
        expected = {label: float(linear_encoder_scores(encoder.separation(None if label == "all-ones" else d),
                                                       s_values, [threshold])[0])
                    for label, d in directions.items()}
        kinds = per["direction"].str.replace(r"-\d+$", "", regex=True)
        rows.append(per.assign(control=name, expected=per["direction"].map(expected), choice=kinds.map(_CHOICE)))
    table = pd.concat(rows, ignore_index=True)
    return table[["control", "choice", "direction", "epsilon", "score", "corrected", "expected"]]


def control_table(controls: pd.DataFrame) -> pd.DataFrame:
    """Per control, direction choice and epsilon: the measured score (mean over directions,
    with their standard deviation and range for the random ones), the width-corrected score
    (mean over directions) and the expected one, rounded to 3 digits."""
    g = controls.groupby(["control", "choice", "epsilon"], sort=False)
    table = g.agg(score=("score", "mean"), spread_sd=("score", "std"), lowest=("score", "min"),
                  highest=("score", "max"), corrected=("corrected", "mean"), expected=("expected", "mean"),
                  directions=("score", "size"))
    table["spread_sd"] = table["spread_sd"].fillna(0.0)  # one direction: no spread
    return table.round(3)


def control_lines(controls: pd.DataFrame, epsilon: float = 0.0) -> list[str]:
    """How far each control's measured score is from its expected one, and the mean-pixel flaw
    in one sentence (at ``epsilon``)."""
    sub = controls[np.isclose(controls["epsilon"], epsilon)]
    means = sub.groupby(["control", "choice"])[["score", "expected"]].mean()
    worst = float((means["score"] - means["expected"]).abs().max())
    lines = [f"largest gap between a control's measured and expected score (epsilon {epsilon:g}): {worst:.3f}"]
    if ("mean-pixel", ALL_ONES) in means.index and ("mean-pixel", RANDOM) in means.index:
        ones, rand = means.loc[("mean-pixel", ALL_ONES), "score"], means.loc[("mean-pixel", RANDOM), "score"]
        zero = (f", {means.loc[('mean-pixel', ZERO_MEAN), 'score']:.3f} along random directions orthogonal to "
                "all-ones" if ("mean-pixel", ZERO_MEAN) in means.index else "")
        lines.append(f"the mean-pixel map, useless downstream, scores {ones:.3f} under the all-ones direction{zero} "
                     f"and {rand:.3f} averaged over isotropic random directions: under the reference's direction a "
                     "high SynBench score does not show that a representation is useful")
    return lines
