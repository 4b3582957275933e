"""Running measurements: the results store, cached measurements, the sweep engine and its jobs."""

from rmqm.experiments.cache import cached_table, cached_rmqm, cached_synbench, alteration_settings, ZooRMQM
from rmqm.experiments.jobs import embedding_stats, MEASURES, tiny_job, measure_job
from rmqm.experiments.store import PROVENANCE_COLUMNS, KEY_COLUMNS, StoreWarning, StoreProblem, ResultsStore
from rmqm.experiments.sweep import EXECUTORS, JobFn, Sweep, load_grid, run_sweep, resolve_job

__all__ = ['cached_table', 'cached_rmqm', 'cached_synbench', 'alteration_settings', 'ZooRMQM', 'embedding_stats', 'MEASURES', 'tiny_job', 'measure_job', 'PROVENANCE_COLUMNS', 'KEY_COLUMNS', 'StoreWarning', 'StoreProblem', 'ResultsStore', 'EXECUTORS', 'JobFn', 'Sweep', 'load_grid', 'run_sweep', 'resolve_job']
