"""Statistics over seeds and encoders: t-intervals, correlations, contrasts, verdicts, and the
inference a sceptical reviewer asks for (crossed bootstrap and configuration permutations,
partial and within-dim correlations, paired differences, interactions, Holm adjustment, power,
per-task tables)."""

from rmqm.stats.confounds import PartialCorrelation, partial_correlation, within_dim_correlations
from rmqm.stats.correlations import (
    CORRELATIONS,
    bootstrap_correlations,
    correlation,
    rank_agreement,
    seed_correlations,
)
from rmqm.stats.curves import level_bands, relative_change_table
from rmqm.stats.design import Interaction, interaction_contrast, tie_weights, uniform_tie_choice, variance_breakdown
from rmqm.stats.inference import (
    BootstrapResult,
    FisherZMean,
    crossed_bootstrap,
    fisher_z,
    fisher_z_mean,
    paired_bootstrap_difference,
    seed_means,
    two_level_bootstrap,
)
from rmqm.stats.intervals import per_seed, summarize_seeds, t_errorbar, t_interval
from rmqm.stats.power import DetectableEffect, detectable_effect, leave_one_out, leave_one_out_text
from rmqm.stats.tasks import (
    AGGREGATE,
    ReferencePooled,
    chance_normalised_mean,
    per_task_correlations,
    reference_pooled_correlation,
)
from rmqm.stats.verdicts import (
    ExpectedSign,
    expected_sign_alpha_req,
    family_contrast,
    format_interval,
    holm,
    interval_verdict,
    verdict_table,
)

__all__ = [
    "CORRELATIONS", "correlation", "bootstrap_correlations", "rank_agreement", "seed_correlations", "level_bands",
    "relative_change_table", "t_interval", "t_errorbar", "per_seed", "summarize_seeds", "family_contrast",
    "interval_verdict", "format_interval",
    "FisherZMean", "BootstrapResult", "fisher_z", "fisher_z_mean", "two_level_bootstrap",
    "paired_bootstrap_difference", "seed_means", "PartialCorrelation", "partial_correlation",
    "within_dim_correlations", "holm", "verdict_table", "ExpectedSign", "expected_sign_alpha_req", "AGGREGATE",
    "ReferencePooled", "reference_pooled_correlation", "chance_normalised_mean", "per_task_correlations",
    "crossed_bootstrap", "Interaction", "interaction_contrast", "tie_weights", "uniform_tie_choice",
    "variance_breakdown", "DetectableEffect", "detectable_effect", "leave_one_out", "leave_one_out_text",
]
