"""Effects of a two-level factorial design, estimated per unit and summarised over seeds.

A 2^k design measures a response (e.g. the supervised-minus-self-supervised gap in median
``S_b``) in every combination of ``k`` two-level factors. With ``s_f = +1`` where factor ``f`` is
on and ``-1`` where it is off, the effect of a set of factors ``F`` is the mean response over the
cells where ``prod_{f in F} s_f = +1`` minus the mean over the cells where it is ``-1`` (the usual
"effect" convention: a main effect is the average change from switching the factor on, over the
levels of the others; a two-factor interaction is half the difference of one factor's effect at
the two levels of the other). Each effect is computed within each unit of the design (a seed and
an embedding dimension: every cell of one unit shares the encoders, the test points and the
noise of that seed), so unit-to-unit variation cancels (a paired design). The units of one seed
are averaged first, because the dimensions of one seed are not independent replicates (one draw
of test points); the interval is then the Student-t interval over seeds
(:func:`rmqm.stats.intervals.t_interval`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations, product

import numpy as np
import pandas as pd

from rmqm.stats.intervals import t_interval

__all__ = ["effect_contrasts", "factorial_effects"]


def _check(table: pd.DataFrame, response: str, factors: Sequence[str], units: Sequence[str], seed: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame; got {type(table).__name__}")
    factors, units = list(factors), list(units)
    if not factors or len(set(factors)) != len(factors):
        raise ValueError(f"give one or more distinct factors; got {factors}")
    if seed not in units:
        raise ValueError(f"the seed column {seed!r} must be one of the units {units}")
    missing = [c for c in [response, *factors, *units] if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks the columns {missing}; it has {list(table.columns)}")
    for f in factors:
        if not table[f].map(lambda v: isinstance(v, (bool, np.bool_))).all():
            raise ValueError(f"factor column {f!r} must hold booleans (on/off); got {sorted(map(repr, set(table[f])))}")
    cells = table.groupby(units)[factors].apply(lambda g: len(set(map(tuple, g.to_numpy().tolist()))))
    sizes = table.groupby(units).size()
    full = 2 ** len(factors)
    bad = cells[(cells != full) | (sizes != full)]
    if len(bad):
        raise ValueError(f"every unit {units} needs each of the {full} combinations of {factors} exactly once; "
                         f"{len(bad)} unit(s) do not (first: {bad.index[0]!r})")


def effect_contrasts(factors: Sequence[str], max_order: int = 2) -> dict[str, dict[tuple[bool, ...], int]]:
    """The +-1 contrast of each effect of a 2^k design up to ``max_order`` factors.

    Returns:
        effect name (``"a"`` for a main effect, ``"a x b"`` for an interaction) -> {cell (one bool
        per factor, in ``factors``' order) -> sign}.
    """
    factors = list(factors)
    if not 1 <= int(max_order) <= len(factors):
        raise ValueError(f"max_order must be in 1..{len(factors)}; got {max_order}")
    cells = list(product((False, True), repeat=len(factors)))
    out: dict[str, dict[tuple[bool, ...], int]] = {}
    for order in range(1, int(max_order) + 1):
        for combo in combinations(range(len(factors)), order):
            name = " x ".join(factors[i] for i in combo)
            out[name] = {c: int(np.prod([1 if c[i] else -1 for i in combo])) for c in cells}
    return out


def factorial_effects(
    table: pd.DataFrame,
    response: str,
    factors: Sequence[str],
    units: Sequence[str] = ("seed", "dim"),
    *,
    seed: str = "seed",
    max_order: int = 2,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Main effects and interactions of ``factors`` on ``response``, paired within units.

    Args:
        table: one row per unit and cell: the ``units`` columns, one boolean column per factor
            and the ``response``; every unit holds each of the ``2^k`` cells exactly once.
        response: the measured column.
        factors: the boolean factor columns.
        units: the columns that identify a unit (paired: every effect is computed within a unit).
        seed: the unit column of the independent replicates; the other units of one seed are
            averaged before the interval.
        max_order: the highest interaction order reported (1: main effects only).
        confidence: of the t-interval over seeds.

    Returns:
        one row per effect: ``effect, order, estimate, ci_low, ci_high, n_seeds``, and ``per_seed``
        (the seed-level estimates, a list); main effects first. ``estimate`` is the mean over
        seeds; with one seed the interval is NaN.

    Raises:
        TypeError: ``table`` is not a DataFrame.
        ValueError: missing columns, non-boolean factors, an incomplete or repeated design.

    Example:
        >>> t = pd.DataFrame({"seed": [0] * 4 + [1] * 4, "a": [False, True] * 4,
        ...                   "b": [False, False, True, True] * 2, "y": [0., 2., 1., 3., 0., 2., 1., 3.]})
        >>> dict(factorial_effects(t, "y", ["a", "b"], units=["seed"])[["effect", "estimate"]].to_numpy())
        {'a': 2.0, 'b': 1.0, 'a x b': 0.0}
    """
    units = list(units)
    factors = list(factors)
    _check(table, response, factors, units, seed)
    y = pd.to_numeric(table[response], errors="raise").astype(float)
    if not np.isfinite(y).all():
        raise ValueError(f"response {response!r} holds NaN or inf values")
    cell = list(map(tuple, table[factors].astype(bool).to_numpy().tolist()))
    rows = []
    for name, contrast in effect_contrasts(factors, max_order).items():
        sign = pd.Series([contrast[c] for c in cell], index=table.index, dtype=float)
        # mean over the + cells minus mean over the - cells = sum(sign * y) / (2^k / 2) per unit
        per_unit = (sign * y).groupby([table[u] for u in units]).sum() / (2 ** (len(factors) - 1))
        per_seed = per_unit.groupby(level=units.index(seed)).mean()
        m, lo, hi = t_interval(per_seed.to_numpy(), confidence=confidence)
        rows.append({"effect": name, "order": name.count(" x ") + 1, "estimate": m, "ci_low": lo, "ci_high": hi,
                     "n_seeds": int(per_seed.size), "per_seed": per_seed.round(6).tolist()})
    return pd.DataFrame(rows)
