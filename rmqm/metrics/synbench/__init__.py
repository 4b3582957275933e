"""SynBench (Ko et al. 2022): synthetic mixtures, the robust QCQP, curves and scores."""

from rmqm.metrics.synbench.curves import DEFAULT_S_VALUES, DEFAULT_THRESHOLDS, ACCURACY_GRID, accuracy_grid, expected_bound_curve, synbench_scores
from rmqm.metrics.synbench.evaluate import SynBenchResult, evaluate_synbench
from rmqm.metrics.synbench.mixture import mixture_direction, sample_gaussian_mixture, raw_accuracy, expected_bound
from rmqm.metrics.synbench.qcqp import MIN_POSITIVE_EPSILON, ClassStatistics, class_statistics, QCQPSolution, solve_robust_qcqp, LinearRule, robust_linear_rule, accuracy_and_bound

__all__ = ['DEFAULT_S_VALUES', 'DEFAULT_THRESHOLDS', 'ACCURACY_GRID', 'accuracy_grid', 'expected_bound_curve', 'synbench_scores', 'SynBenchResult', 'evaluate_synbench', 'mixture_direction', 'sample_gaussian_mixture', 'raw_accuracy', 'expected_bound', 'MIN_POSITIVE_EPSILON', 'ClassStatistics', 'class_statistics', 'QCQPSolution', 'solve_robust_qcqp', 'LinearRule', 'robust_linear_rule', 'accuracy_and_bound']
