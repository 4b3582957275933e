"""RMQM (van der Merwe et al. 2022): alterations, trajectory statistics, the score."""

from rmqm.metrics.rmqm.alterations import (
    ALTERATION_KEYWORDS,
    ALTERATION_KINDS,
    PGD,
    Alteration,
    WhiteNoise,
    alteration_from_keywords,
)
from rmqm.metrics.rmqm.attacks import (
    FACTORS,
    HEAD_LOSSES,
    LABEL_LOSSES,
    OWN_LOSSES,
    PGD_MODES,
    ROTATIONS,
    VIEW_LOSSES,
    AttackSpec,
    attack_levels,
    batch_rotation_view,
    loss_of_method,
    own_batch_loss,
    reference_pgd_levels,
    reference_semantics,
    resolve_attack,
    rotation_augment,
    rotation_view,
)
from rmqm.metrics.rmqm.manifold import (
    DROP_RULES,
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
    per_class_summary,
    resolve_pgd_mode,
    summary_table,
)
from rmqm.metrics.rmqm.perturbations import (
    ATTACK_LOSSES,
    NOISE_SCHEDULES,
    AttackLoss,
    check_images,
    check_n_levels,
    check_pgd_params,
    make_attack_loss,
    noise_levels,
    pgd_attack,
    pgd_step,
    pgd_trajectory,
    white_noise_levels,
)

__all__ = [
    "WhiteNoise", "PGD", "Alteration", "ALTERATION_KINDS", "ALTERATION_KEYWORDS", "alteration_from_keywords",
    "distance_series", "relative_changes", "point_statistics", "rmqm_score", "summarize", "DROP_RULES",
    "PERTURBATIONS", "DEFAULT_LEVELS", "RMQMResult", "measure_rmqm", "summary_table", "per_class_summary",
    "resolve_pgd_mode", "AttackLoss", "ATTACK_LOSSES", "NOISE_SCHEDULES", "check_images", "check_n_levels",
    "noise_levels", "white_noise_levels", "make_attack_loss", "check_pgd_params", "pgd_step", "pgd_trajectory",
    "pgd_attack", "PGD_MODES", "LABEL_LOSSES", "VIEW_LOSSES", "OWN_LOSSES", "reference_semantics",
    "rotation_view", "own_batch_loss", "reference_pgd_levels", "FACTORS", "HEAD_LOSSES", "ROTATIONS", "AttackSpec",
    "attack_levels", "batch_rotation_view", "loss_of_method", "resolve_attack", "rotation_augment",
]
