"""Factorial effects: analytic designs, pairing within units, errors."""

from itertools import product

import numpy as np
import pandas as pd
import pytest

from rmqm.stats.factorial import effect_contrasts, factorial_effects


def design(response, seeds=(0, 1, 2), dims=(16, 32), noise=0.0, unit_shift=0.0):
    rng = np.random.default_rng(0)
    rows = []
    for seed, dim in product(seeds, dims):
        shift = unit_shift * rng.normal()  # shared by every cell of a unit: must cancel
        for a, b, c in product((False, True), repeat=3):
            rows.append({"seed": seed, "dim": dim, "a": a, "b": b, "c": c,
                         "y": response(a, b, c) + shift + noise * rng.normal()})
    return pd.DataFrame(rows)


def test_additive_response_gives_its_coefficients_and_no_interaction():
    t = design(lambda a, b, c: 1.0 + 0.5 * a - 0.2 * b + 0.0 * c)
    e = factorial_effects(t, "y", ["a", "b", "c"]).set_index("effect")
    assert e.loc["a", "estimate"] == pytest.approx(0.5) and e.loc["b", "estimate"] == pytest.approx(-0.2)
    assert e.loc["c", "estimate"] == pytest.approx(0.0, abs=1e-12)
    for name in ("a x b", "a x c", "b x c"):
        assert e.loc[name, "estimate"] == pytest.approx(0.0, abs=1e-12)
    assert list(e["order"]) == [1, 1, 1, 2, 2, 2] and set(e["n_seeds"]) == {3}


def test_interaction_is_half_the_change_of_one_effect_across_the_other():
    # a's effect is 1 with b off and 3 with b on: main effect 2, interaction (3 - 1) / 2 = 1
    t = design(lambda a, b, c: 1.0 * a + 2.0 * (a and b))
    e = factorial_effects(t, "y", ["a", "b", "c"]).set_index("effect")
    assert e.loc["a", "estimate"] == pytest.approx(2.0)
    assert e.loc["b", "estimate"] == pytest.approx(1.0)
    assert e.loc["a x b", "estimate"] == pytest.approx(1.0)


def test_unit_shifts_cancel_by_pairing():
    # huge unit-to-unit shifts, no noise inside a unit: the interval is exactly the point
    t = design(lambda a, b, c: 0.3 * a, unit_shift=100.0)
    e = factorial_effects(t, "y", ["a", "b", "c"], max_order=1).set_index("effect")
    assert e.loc["a", "estimate"] == pytest.approx(0.3)
    assert e.loc["a", "ci_high"] - e.loc["a", "ci_low"] == pytest.approx(0.0, abs=1e-9)


def test_noise_gives_an_interval_that_covers_the_truth_over_seeds():
    t = design(lambda a, b, c: 0.3 * a, seeds=range(12), noise=0.1)
    e = factorial_effects(t, "y", ["a", "b", "c"], max_order=1).set_index("effect")
    assert e.loc["a", "ci_low"] < 0.3 < e.loc["a", "ci_high"] and e.loc["a", "ci_low"] > 0
    assert len(e.loc["a", "per_seed"]) == 12


def test_contrasts_are_balanced():
    for signs in effect_contrasts(["a", "b", "c"]).values():
        assert sum(signs.values()) == 0 and len(signs) == 8


def test_bad_designs_are_named():
    t = design(lambda a, b, c: 0.0)
    with pytest.raises(ValueError, match="exactly once"):
        factorial_effects(t.iloc[1:], "y", ["a", "b", "c"])
    with pytest.raises(ValueError, match="exactly once"):
        factorial_effects(pd.concat([t, t.iloc[:1]]), "y", ["a", "b", "c"])
    with pytest.raises(ValueError, match="lacks the columns"):
        factorial_effects(t, "z", ["a"])
    with pytest.raises(ValueError, match="booleans"):
        factorial_effects(t.assign(a=t["a"].astype(int)), "y", ["a", "b", "c"])
    with pytest.raises(ValueError, match="seed column"):
        factorial_effects(t, "y", ["a", "b", "c"], units=["dim"])
    with pytest.raises(ValueError, match="NaN"):
        factorial_effects(t.assign(y=np.nan), "y", ["a", "b", "c"])
    with pytest.raises(TypeError, match="DataFrame"):
        factorial_effects([1, 2], "y", ["a"])
