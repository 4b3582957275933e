"""Learning curves and the plateau flag on a hand-made zoo table."""

import math

import pandas as pd
import pytest

from rmqm.training.curves import learning_curves, plateau_table, score_columns


def zoo_table():
    """Two methods at d=8, seeds 0 and 1, checkpoints 1, 2, 4 (+ a random init)."""
    rows = []
    knn = {  # (method, seed) -> accuracy at epochs 1, 2, 4
        ("cross-entropy", 0): (0.80, 0.90, 0.905),  # last doubling +0.005
        ("cross-entropy", 1): (0.70, 0.88, 0.893),  # +0.013 -> mean gain 0.009 < 0.01: plateau
        ("nt-xent", 0): (0.50, 0.60, 0.65),  # +0.05
        ("nt-xent", 1): (0.55, 0.62, 0.64),  # +0.02 -> mean 0.035: still improving
        ("random-init", 0): (0.30, 0.30, 0.30),
        ("random-init", 1): (0.32, 0.32, 0.32),
    }
    family = {"cross-entropy": "supervised", "nt-xent": "self-supervised", "random-init": "random"}
    for (method, seed), accs in knn.items():
        for epoch, acc in zip((1, 2, 4), accs, strict=True):
            rows.append({"name": f"{method}_s{seed}_e{epoch}", "method": method, "family": family[method], "dim": 8,
                         "optimizer": "adam", "seed": seed, "epoch": epoch, "train_time_s": 1.0,
                         "stopped_early": False, "final_loss": 0.1, "indist_knn": acc, "rankme": 4.0 + epoch})
    return pd.DataFrame(rows)


def test_score_columns_leave_out_ids_and_training_facts():
    assert score_columns(zoo_table()) == ["indist_knn", "rankme"]


def test_learning_curves_average_over_seeds():
    curves = learning_curves(zoo_table())
    assert list(curves.columns) == ["method", "family", "dim", "optimizer", "epoch", "metric", "mean", "std", "n_seeds"]
    assert len(curves) == 3 * 3 * 2  # methods x epochs x metrics
    ce = curves[(curves["method"] == "cross-entropy") & (curves["metric"] == "indist_knn")]
    assert ce["epoch"].tolist() == [1, 2, 4]
    assert ce["mean"].tolist() == pytest.approx([0.75, 0.89, 0.899])
    assert ce["std"].iloc[0] == pytest.approx(math.sqrt(2) * 0.05)  # two seeds 0.1 apart
    assert ce["n_seeds"].eq(2).all()
    rankme = curves[(curves["method"] == "nt-xent") & (curves["metric"] == "rankme")]
    assert rankme["mean"].tolist() == [5.0, 6.0, 8.0] and rankme["std"].eq(0).all()


def test_plateau_gain_of_the_last_doubling_by_hand():
    table = plateau_table(zoo_table(), "indist_knn", tolerance=0.01).set_index("method")
    assert table.loc["cross-entropy", "final_epoch"] == 4 and table.loc["cross-entropy", "previous_epoch"] == 2
    assert table.loc["cross-entropy", "gain_s0"] == pytest.approx(0.005)
    assert table.loc["cross-entropy", "gain_s1"] == pytest.approx(0.013)
    assert table.loc["cross-entropy", "gain"] == pytest.approx(0.009)
    assert table.loc["cross-entropy", "final"] == pytest.approx(0.899)
    assert table.loc["cross-entropy", "previous"] == pytest.approx(0.89)
    assert bool(table.loc["cross-entropy", "plateau"])
    assert table.loc["nt-xent", "gain"] == pytest.approx(0.035) and not table.loc["nt-xent", "plateau"]
    assert table.loc["random-init", "gain"] == pytest.approx(0.0) and table.loc["random-init", "plateau"]
    assert table["n_seeds"].eq(2).all()
    # a looser tolerance turns NT-Xent into a plateau; a negative gain is a plateau too
    assert plateau_table(zoo_table(), tolerance=0.04).set_index("method").loc["nt-xent", "plateau"]
    worse = zoo_table()
    worse.loc[(worse["method"] == "nt-xent") & (worse["epoch"] == 4), "indist_knn"] = 0.1
    assert plateau_table(worse).set_index("method").loc["nt-xent", "plateau"]


def test_one_checkpoint_has_no_gain_and_random_init_is_still_a_plateau():
    one = zoo_table()
    one = one[one["epoch"] == 4]
    table = plateau_table(one).set_index("method")
    assert table["gain"].isna().all() and table["previous_epoch"].isna().all()
    assert not table.loc["cross-entropy", "plateau"] and table.loc["random-init", "plateau"]


def test_missing_columns_and_bad_tolerance_are_named():
    with pytest.raises(ValueError, match="indist_linear"):
        plateau_table(zoo_table(), metric="indist_linear")
    with pytest.raises(ValueError, match="tolerance must be non-negative"):
        plateau_table(zoo_table(), tolerance=-0.1)
    with pytest.raises(ValueError, match="epoch"):
        learning_curves(zoo_table().drop(columns="epoch"))
