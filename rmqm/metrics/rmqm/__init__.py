"""RMQM (van der Merwe et al. 2022): alterations, trajectory statistics, the score."""

from rmqm.metrics.rmqm.manifold import (
    distance_series,
    point_statistics,
    relative_changes,
    rmqm_score,
    summarize,
)
from rmqm.metrics.rmqm.measure import (
    DEFAULT_LEVELS,
    PERTURBATIONS,
    RMQMResult,
    measure_rmqm,
    summary_table,
)
from rmqm.metrics.rmqm.perturbations import (
    ATTACK_LOSSES,
    AttackLoss,
    check_images,
    check_n_levels,
    check_pgd_params,
    make_attack_loss,
    noise_levels,
    pgd_attack,
    pgd_trajectory,
    white_noise_levels,
)

__all__ = [
    "distance_series", "relative_changes", "point_statistics", "rmqm_score", "summarize", "PERTURBATIONS",
    "DEFAULT_LEVELS", "RMQMResult", "measure_rmqm", "summary_table", "AttackLoss", "ATTACK_LOSSES", "check_images",
    "check_n_levels", "noise_levels", "white_noise_levels", "make_attack_loss", "check_pgd_params",
    "pgd_trajectory", "pgd_attack",
]
