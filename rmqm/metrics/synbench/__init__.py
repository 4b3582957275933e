"""SynBench (Ko et al. 2022): synthetic mixtures, the robust QCQP, curves and scores."""

from rmqm.metrics.synbench.curves import (
    ACCURACY_GRID,
    DEFAULT_S_VALUES,
    DEFAULT_THRESHOLDS,
    accuracy_grid,
    expected_bound_curve,
    synbench_scores,
)
from rmqm.metrics.synbench.directions import linear_encoder_scores, synbench_over_directions
from rmqm.metrics.synbench.evaluate import SynBenchResult, evaluate_synbench
from rmqm.metrics.synbench.mixture import (
    DIRECTION_NAMES,
    expected_bound,
    mixture_direction,
    named_direction,
    pca_direction,
    random_directions,
    raw_accuracy,
    sample_gaussian_mixture,
)
from rmqm.metrics.synbench.qcqp import (
    MIN_POSITIVE_EPSILON,
    ClassStatistics,
    LinearRule,
    QCQPSolution,
    accuracy_and_bound,
    class_statistics,
    robust_linear_rule,
    solve_robust_qcqp,
)
from rmqm.metrics.synbench.width import (
    corrected_scores,
    effective_scale,
    lossless_probe,
    separation_estimate,
    width_penalty,
)

__all__ = [
    "DEFAULT_S_VALUES", "DEFAULT_THRESHOLDS", "ACCURACY_GRID", "accuracy_grid", "expected_bound_curve",
    "synbench_scores", "SynBenchResult", "evaluate_synbench", "mixture_direction", "sample_gaussian_mixture",
    "raw_accuracy", "expected_bound", "MIN_POSITIVE_EPSILON", "ClassStatistics", "class_statistics", "QCQPSolution",
    "solve_robust_qcqp", "LinearRule", "robust_linear_rule", "accuracy_and_bound", "DIRECTION_NAMES",
    "random_directions", "pca_direction", "named_direction", "linear_encoder_scores", "synbench_over_directions",
    "separation_estimate", "effective_scale", "corrected_scores", "lossless_probe", "width_penalty",
]
