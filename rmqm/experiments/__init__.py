"""Running measurements: the results store, cached measurements, the sweep engine and its jobs."""

from rmqm.experiments.cache import (
    ZooRMQM,
    alteration_settings,
    cached_rmqm,
    cached_synbench,
    cached_table,
)
from rmqm.experiments.jobs import MEASURES, embedding_stats, measure_job
from rmqm.experiments.store import (
    KEY_COLUMNS,
    PROVENANCE_COLUMNS,
    ResultsStore,
    StoreProblem,
    StoreWarning,
)
from rmqm.experiments.sweep import (
    EXECUTORS,
    JobFn,
    Sweep,
    load_grid,
    resolve_job,
    run_sweep,
)

__all__ = [
    "cached_table", "cached_rmqm", "cached_synbench", "alteration_settings", "ZooRMQM", "embedding_stats",
    "MEASURES", "measure_job", "PROVENANCE_COLUMNS", "KEY_COLUMNS", "StoreWarning", "StoreProblem", "ResultsStore",
    "EXECUTORS", "JobFn", "Sweep", "load_grid", "run_sweep", "resolve_job",
]
