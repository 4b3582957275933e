"""Chapter 4, SynBench: each encoder's scores on the synthetic mixture, drawn in its own input
space (:func:`rmqm.study.chapters.external.native_input_shape`). The mean directions and the
paper's two claims: :mod:`rmqm.study.chapters.synbench_claims`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from rmqm._utils.progress import progress
from rmqm.data.dataset import DatasetNotFoundError
from rmqm.data.registry import transfer_tasks
from rmqm.experiments.cache import cached_synbench
from rmqm.experiments.store import ResultsStore
from rmqm.metrics.synbench.mixture import raw_accuracy
from rmqm.metrics.synbench.width import SAMPLE_SIZES, WIDTHS, width_penalty
from rmqm.models.pretrained import GATE_SIZES, imagenet_gate, load_pretrained
from rmqm.stats.intervals import summarize_seeds
from rmqm.study.chapters.common import interval_pivot, model_meta
from rmqm.study.chapters.external import load_external, native_input_shape, zoo_model

__all__ = ['S_MAX', 'mean_scales', 'synbench_headline', 'synbench_zoo', 'largest_scale_lines', 'synbench_intervals',
           'synbench_score_table', 'probe_task', 'lossless_penalty', 'lossless_lines', 'gate_survey']

#: Largest mean scale ``s`` of the synthetic mixtures (the reference's).
S_MAX = 4.9
#: Datasets that have no separate test split: the robust probe subsamples all of them.
_NO_TEST_SPLIT = ("digits", "faces", "textures")
_LOST, _GAINED = "accuracy lost (eps max vs 0)", "margin gained (eps max vs 0)"


def mean_scales(step: float, s_max: float = S_MAX) -> list[float]:
    """The mean scales ``s = step, 2 step, ...`` up to ``s_max`` (inclusive, to 1e-9), rounded to 6 digits.

    Raises:
        ValueError: ``step`` is not a positive number or exceeds ``s_max``.
    """
    if not np.isfinite(step) or not 0 < step <= s_max:
        raise ValueError(f"syn_s_step must be in (0, {s_max}]; got {step!r}")
    return [round(float(s), 6) for s in np.arange(step, s_max + 1e-9, step)]


def synbench_headline(zoo: pd.DataFrame, s_values: Sequence[float], n_samples: int) -> str:
    """One line: how many models and seeds are scored, on which mean scales, with how many samples."""
    return (f"{len(zoo)} models ({zoo['seed'].nunique()} seeds), {len(s_values)} mean scales s from {s_values[0]} "
            f"to {s_values[-1]}, {n_samples} train + {n_samples} test samples each")


def synbench_zoo(
    zoo: pd.DataFrame,
    results: str | os.PathLike,
    s_values: Sequence[float],
    epsilons: Sequence[float],
    n_samples: int,
    n_bootstrap: int,
    batch_size: int,
    device: str = "cpu",
) -> dict[str, pd.DataFrame]:
    """SynBench of every zoo model (checkpoints in ``results/zoo``, cached in the store
    ``results/store``), each with its own seed, on mixtures drawn in the encoder's own input
    space (a built-in pretrained encoder: 3 x its input size); writes the scores to
    ``results/synbench_scores.parquet``.

    Args:
        n_samples: train and test samples per mean scale.

    Returns:
        ``{"curves", "scores", "table"}`` of all models stacked, each row with ``name, method,
        family, dim, optimizer, seed`` (see :func:`rmqm.experiments.cache.cached_synbench`).
    """
    results = Path(results)
    store = ResultsStore(results / "store")
    parts: dict[str, list[pd.DataFrame]] = {"curves": [], "scores": [], "table": []}
    external = load_external(results, device)  # the user encoders of the study, measured beside the zoo
    for row in progress(zoo.itertuples(), "SynBench", total=len(zoo), label=lambda r: r.name, unit="encoder"):
        model = zoo_model(row.name, results, external, device)
        t = cached_synbench(store, row.name, model.encoder, native_input_shape(model), s_values=s_values,
                            epsilons=epsilons, n_train=n_samples, n_test=n_samples, n_bootstrap=n_bootstrap,
                            batch_size=batch_size, seed=int(row.seed), device=device,
                            allow_rank_deficient=True)  # as the reference: a wide encoder relies on the eigenvalue cut
        for key, tables in parts.items():
            tables.append(t[key].assign(**model_meta(row)))
    out = {key: pd.concat(tables, ignore_index=True) for key, tables in parts.items()}
    out["scores"].to_parquet(results / "synbench_scores.parquet")
    return out


def largest_scale_lines(table: pd.DataFrame, epsilon: float = 0.0) -> list[str]:
    """What the linear probe keeps at the largest mean scale ``s`` (where the raw Bayes
    accuracy ``Phi(s)`` is highest): one line naming that accuracy and each encoder's mean test
    accuracy over seeds there, lowest first (a score near 0 means the probe on the features
    never reaches the thresholds). ``table``: the ``"table"`` of :func:`synbench_zoo`."""
    s_max = float(table["s"].max())
    at = table[np.isclose(table["s"], s_max) & np.isclose(table["epsilon"], epsilon)]
    means = at.groupby(["method", "dim"])["accuracy"].mean().sort_values()
    raw = float(raw_accuracy(s_max))
    parts = ", ".join(f"{m} d={d} {a:.3f}" for (m, d), a in means.items())
    return [f"at the largest mean scale s = {s_max:g} (raw Bayes accuracy {raw:.4f}), the probe's test accuracy on "
            f"the features (epsilon {epsilon:g}, mean over seeds), lowest first: {parts}"]


def synbench_intervals(scores: pd.DataFrame) -> pd.DataFrame:
    """SynBench score of each encoder per epsilon and threshold: the mean over seeds with a
    95 % t-interval (clipped at 0: a ratio of areas), as :func:`summarize_seeds` gives it."""
    return summarize_seeds(scores, "score", by=["method", "dim", "optimizer", "epsilon", "threshold"],
                           bounds=(0, np.inf))


def synbench_score_table(score_ci: pd.DataFrame, thresholds: Sequence[float] = (0.6, 0.7, 0.8, 0.9)) -> pd.DataFrame:
    """:func:`synbench_intervals` at ``thresholds`` as text ``"mean [low, high]"``, one row
    per encoder and one column per (epsilon, threshold)."""
    shown = score_ci[score_ci["threshold"].round(2).isin(list(thresholds))]
    return interval_pivot(shown, ["method", "dim", "optimizer"], ["epsilon", "threshold"])


def probe_task(pretraining: str) -> tuple[str, str]:
    """The real task of the robust probe, the first transfer task of ``pretraining``, and the
    split it is drawn from (``"all"`` for datasets without a test split)."""
    task = transfer_tasks(pretraining)[0]
    return task, "all" if task in _NO_TEST_SPLIT else "test"


def lossless_penalty(s_values: Sequence[float], threshold: float, n_study: int | Sequence[int],
                     seed: int = 0) -> pd.DataFrame:
    """:func:`rmqm.metrics.synbench.width.width_penalty` of lossless encoders at
    :data:`~rmqm.metrics.synbench.width.WIDTHS` and the train sample sizes
    :data:`~rmqm.metrics.synbench.width.SAMPLE_SIZES` plus the study's ``n_study`` (one or several),
    on the study's mean scales, at ``threshold`` and epsilon 0 (seconds: no encoder pass)."""
    study = [int(n_study)] if isinstance(n_study, (int, np.integer)) else [int(n) for n in n_study]
    return width_penalty(WIDTHS, sorted({*SAMPLE_SIZES, *study}), s_values, thresholds=[threshold], seed=seed)


def lossless_lines(penalty: pd.DataFrame, n_study: int | Sequence[int]) -> list[str]:
    """One line per distinct sample size of ``n_study``: each width's reference and corrected
    score of a lossless encoder there (what the claims' corrected score removes; ``nan``: the
    corrected score is undefined, ``n <= d + 3``)."""
    sizes = [int(n_study)] if isinstance(n_study, (int, np.integer)) else list(dict.fromkeys(int(n) for n in n_study))
    lines = []
    for n in sizes:
        at = penalty[(penalty["n_train"] == n) & np.isclose(penalty["epsilon"], 0.0)]
        parts = ", ".join(f"d = {r.width}: {r.reference:.3f} -> {r.corrected:.3f}" for r in at.itertuples())
        t = float(at["threshold"].iloc[0]) if len(at) else float("nan")
        lines.append(f"lossless encoder at n = {n} train samples per scale, t = {t:g}, reference -> corrected "
                     f"score (1 is right): {parts}")
    return lines


def gate_survey(names: Sequence[str] = ("efficientnet-lite0",), sizes: Sequence[int] = GATE_SIZES[:7]) -> pd.DataFrame:
    """The ImageNet sanity gate (:func:`rmqm.models.pretrained.imagenet_gate`) of each pretrained
    built-in of ``names`` at each input size of ``sizes``: ``encoder, input_size, top-1 (of 20),
    dead features, passes``. Empty, with a ``note``, when the weights or the sample files are not
    installed."""
    rows = []
    try:
        for name in names:
            encoder = load_pretrained(name)
            for size in sizes:
                gate = imagenet_gate(encoder, int(size))
                rows.append({"encoder": name, "input_size": int(size), "top-1": f"{gate.hits}/{gate.n}",
                             "dead features": round(gate.dead_share, 3), "passes": gate.passed})
    except (ImportError, DatasetNotFoundError) as error:
        return pd.DataFrame({"note": [f"gate not measured: {error}"]})
    return pd.DataFrame(rows)
