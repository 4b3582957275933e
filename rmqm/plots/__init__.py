"""Figures of the book: every figure of the study notebooks is one function here.

- :mod:`~rmqm.plots.style`: the book's style (:func:`book_style`, :data:`BOOK_WIDTH`);
- :mod:`~rmqm.plots.figures`: distance bands, score scatter panels, one SynBench result;
- :mod:`~rmqm.plots.zoo_figures`: training and learning curves and downstream accuracy of the zoo;
- :mod:`~rmqm.plots.rmqm_figures`: RMQM per encoder, distance curves, per-point statistics,
  noise against PGD, relative-change spikes, noise schedules, attack losses;
- :mod:`~rmqm.plots.synbench_figures`: SynBench reference, curves, scores, robust probe;
- :mod:`~rmqm.plots.score_figures`: correlations with downstream accuracy, the verdict forest plot.

Each function returns the matplotlib ``Figure`` it drew (``plot_distance_bands`` and
``plot_synbench`` the ``Axes``, as they draw into a given one).
"""

from rmqm.plots.figures import plot_distance_bands, plot_score_scatter, plot_synbench
from rmqm.plots.rmqm_figures import (
    plot_attack_losses,
    plot_distance_curves,
    plot_noise_schedules,
    plot_noise_vs_pgd,
    plot_point_statistics,
    plot_relative_change_spikes,
    plot_rmqm_bars,
)
from rmqm.plots.score_figures import plot_correlations, plot_verdict_forest
from rmqm.plots.style import BOOK_WIDTH, book_style
from rmqm.plots.synbench_figures import (
    plot_detectable_gain,
    plot_direction_scores,
    plot_robust_attack,
    plot_synbench_curves,
    plot_synbench_reference,
    plot_synbench_scores,
    plot_width_penalty,
)
from rmqm.plots.zoo_figures import plot_downstream_accuracy, plot_learning_curves, plot_training_curves

__all__ = [
    'BOOK_WIDTH', 'book_style', 'plot_attack_losses', 'plot_correlations', 'plot_distance_bands',
    'plot_distance_curves', 'plot_downstream_accuracy', 'plot_learning_curves', 'plot_noise_schedules',
    'plot_noise_vs_pgd',
    'plot_point_statistics', 'plot_relative_change_spikes', 'plot_rmqm_bars', 'plot_direction_scores',
    'plot_width_penalty', 'plot_detectable_gain',
    'plot_robust_attack',
    'plot_score_scatter', 'plot_synbench', 'plot_synbench_curves', 'plot_synbench_reference', 'plot_synbench_scores',
    'plot_training_curves', 'plot_verdict_forest',
]
