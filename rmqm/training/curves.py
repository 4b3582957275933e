"""Learning curves of a checkpointed zoo, and whether each model family has reached a plateau.

A zoo trained with ``checkpoints`` (:func:`rmqm.training.zoo.train_zoo`) has one row per model
and checkpoint epoch. :func:`learning_curves` averages its scores over seeds per epoch;
:func:`plateau_table` asks, per (method, dim, optimizer), whether the last doubling of training
(the previous checkpoint to the final one, e.g. 12 -> 25 epochs) still moved a score by at least
``tolerance``. The reference trains 25 epochs once per configuration
(its MNIST training scripts in the reference repository ByteFuse/representation-manifold-quality-metric);
this is how one checks that its encoders are trained out.
"""

from __future__ import annotations

import pandas as pd

from rmqm._utils.validation import check_columns, check_real

__all__ = ['CURVE_KEYS', 'score_columns', 'learning_curves', 'plateau_table']


#: The columns that identify a curve of the zoo table (one per (method, dim, optimizer)).
CURVE_KEYS: tuple[str, ...] = ("method", "family", "dim", "optimizer")

_NOT_SCORES = {"dim", "seed", "epoch", "epochs_completed", "stopped_early", "train_time_s", "final_loss"}


def score_columns(zoo: pd.DataFrame) -> list[str]:
    """The numeric score columns of a zoo table (transfer and in-distribution accuracies,
    ``rankme``, ``alpha_req``), in table order; ids, epochs and training facts left out."""
    return [c for c in zoo.columns if c not in _NOT_SCORES and pd.api.types.is_numeric_dtype(zoo[c])
            and not pd.api.types.is_bool_dtype(zoo[c])]


def learning_curves(zoo: pd.DataFrame) -> pd.DataFrame:
    """Each score of ``zoo`` per (method, family, dim, optimizer, epoch), over seeds, long format.

    Args:
        zoo: a :func:`rmqm.training.zoo.train_zoo` table (columns ``method``, ``family``, ``dim``,
            ``optimizer``, ``seed``, ``epoch`` and score columns).

    Returns:
        Columns ``method, family, dim, optimizer, epoch, metric, mean, std, n_seeds`` (``std``:
        sample standard deviation over seeds, NaN for one seed), sorted by curve, metric, epoch.

    Raises:
        ValueError: a missing column, or no score column.
    """
    check_columns(zoo, (*CURVE_KEYS, "seed", "epoch"), "zoo table")
    scores = score_columns(zoo)
    if not scores:
        raise ValueError("the zoo table has no score column (e.g. indist_knn, rankme); pass a train_zoo table")
    long = zoo.melt(id_vars=[*CURVE_KEYS, "seed", "epoch"], value_vars=scores, var_name="metric")
    grouped = long.groupby([*CURVE_KEYS, "epoch", "metric"], sort=False)["value"]
    out = grouped.agg(mean="mean", std="std", n_seeds="count").reset_index()
    out = out[[*CURVE_KEYS, "epoch", "metric", "mean", "std", "n_seeds"]]
    return out.sort_values([*CURVE_KEYS, "metric", "epoch"], kind="stable").reset_index(drop=True)


def plateau_table(zoo: pd.DataFrame, metric: str = "indist_knn", tolerance: float = 0.01) -> pd.DataFrame:
    """Per (method, dim, optimizer): the gain of ``metric`` over the last stretch of training,
    and whether it is below ``tolerance`` (a plateau).

    The gain is ``metric`` at the final (largest) checkpoint epoch minus ``metric`` at the previous
    checkpoint, per seed, then averaged over the seeds that have both (with checkpoints 1, 2, 4, ...,
    this is the gain of the last doubling of training). ``plateau`` is ``gain < tolerance``
    (accuracies are fractions, so 0.01 is one percentage point). A random init never trains: it
    is on a plateau by definition. A curve with one checkpoint has no gain (NaN) and is not
    called a plateau.

    Args:
        zoo: a :func:`rmqm.training.zoo.train_zoo` table.
        metric: the score column to follow.
        tolerance: the smallest gain that counts as still improving (>= 0).

    Returns:
        One row per curve: ``method, family, dim, optimizer, final_epoch, previous_epoch,
        final, previous`` (seed means of ``metric``), ``gain``, ``n_seeds``, ``plateau``, then
        ``gain_s<seed>`` for each seed.

    Raises:
        ValueError: a missing column, or a negative ``tolerance``.
    """
    check_columns(zoo, (*CURVE_KEYS, "seed", "epoch", metric), "zoo table")
    tolerance = check_real(tolerance, "tolerance", low=0.0)
    seeds = sorted(zoo["seed"].unique())
    rows = []
    for key, curve in zoo.groupby(list(CURVE_KEYS), sort=False):
        epochs = sorted(curve["epoch"].unique())
        final_epoch = epochs[-1]
        previous_epoch = epochs[-2] if len(epochs) > 1 else None
        by_seed = curve.pivot_table(index="seed", columns="epoch", values=metric, aggfunc="mean")
        final = by_seed[final_epoch]
        if previous_epoch is None:
            per_seed = pd.Series(float("nan"), index=by_seed.index)
            previous = float("nan")
        else:
            per_seed = final - by_seed[previous_epoch]
            previous = float(by_seed[previous_epoch].mean())
        gain = float(per_seed.mean()) if per_seed.notna().any() else float("nan")
        random = key[0] == "random-init"
        row = dict(zip(CURVE_KEYS, key, strict=True))
        row.update({
            "final_epoch": int(final_epoch), "previous_epoch": None if previous_epoch is None else int(previous_epoch),
            "final": float(final.mean()), "previous": previous, "gain": gain,
            "n_seeds": int(per_seed.notna().sum()) if previous_epoch is not None else int(final.notna().sum()),
            "plateau": bool(random or (gain == gain and gain < tolerance)),
        })
        row.update({f"gain_s{s}": float(per_seed.get(s, float("nan"))) for s in seeds})
        rows.append(row)
    return pd.DataFrame(rows)
