"""Statistics over seeds and encoders: t-intervals, correlations, contrasts, verdicts."""

from rmqm.stats.correlations import CORRELATIONS, correlation, bootstrap_correlations, rank_agreement, seed_correlations
from rmqm.stats.curves import level_bands, relative_change_table
from rmqm.stats.intervals import t_interval, t_errorbar, per_seed, summarize_seeds
from rmqm.stats.verdicts import family_contrast, interval_verdict, format_interval

__all__ = ['CORRELATIONS', 'correlation', 'bootstrap_correlations', 'rank_agreement', 'seed_correlations', 'level_bands', 'relative_change_table', 't_interval', 't_errorbar', 'per_seed', 'summarize_seeds', 'family_contrast', 'interval_verdict', 'format_interval']
