"""Statistics over seeds and encoders: t-intervals, correlations, contrasts, verdicts."""

from rmqm.stats.correlations import (
    CORRELATIONS,
    bootstrap_correlations,
    correlation,
    rank_agreement,
    seed_correlations,
)
from rmqm.stats.curves import level_bands, relative_change_table
from rmqm.stats.intervals import per_seed, summarize_seeds, t_errorbar, t_interval
from rmqm.stats.verdicts import family_contrast, format_interval, interval_verdict

__all__ = [
    "CORRELATIONS", "correlation", "bootstrap_correlations", "rank_agreement", "seed_correlations", "level_bands",
    "relative_change_table", "t_interval", "t_errorbar", "per_seed", "summarize_seeds", "family_contrast",
    "interval_verdict", "format_interval",
]
