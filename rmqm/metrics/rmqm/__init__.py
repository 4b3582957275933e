"""RMQM (van der Merwe et al. 2022): alterations, trajectory statistics, the score."""

from rmqm.metrics.rmqm.manifold import POINT_COLUMNS, distance_series, relative_changes, point_statistics, rmqm_score, summarize
from rmqm.metrics.rmqm.measure import PERTURBATIONS, DEFAULT_LEVELS, RMQMResult, measure_rmqm, summary_table
from rmqm.metrics.rmqm.perturbations import AttackLoss, ATTACK_LOSSES, check_images, noise_levels, white_noise_levels, make_attack_loss, check_pgd_params, pgd_trajectory, pgd_attack

__all__ = ['POINT_COLUMNS', 'distance_series', 'relative_changes', 'point_statistics', 'rmqm_score', 'summarize', 'PERTURBATIONS', 'DEFAULT_LEVELS', 'RMQMResult', 'measure_rmqm', 'summary_table', 'AttackLoss', 'ATTACK_LOSSES', 'check_images', 'noise_levels', 'white_noise_levels', 'make_attack_loss', 'check_pgd_params', 'pgd_trajectory', 'pgd_attack']
