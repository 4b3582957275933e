"""What the study notebooks compute, one module per chapter, so that the notebooks stay thin
(parameters, calls into :mod:`rmqm`, figures, interpretation) and tests reach every step.

- :mod:`~rmqm.study.chapters.common`: :func:`setup` of every notebook and shared helpers;
- :mod:`~rmqm.study.chapters.zoo`: 01, the model zoo;
- :mod:`~rmqm.study.chapters.ssl_vs_supervised`: 02, RMQM across the zoo;
- :mod:`~rmqm.study.chapters.noise_vs_pgd`: 03, white noise against PGD;
- :mod:`~rmqm.study.chapters.synbench`: 04, SynBench of every encoder;
- :mod:`~rmqm.study.chapters.synbench_claims`: 04, the mean directions and SynBench's two claims;
- :mod:`~rmqm.study.chapters.controls`: 04, the calibration controls of SynBench;
- :mod:`~rmqm.study.chapters.downstream`: 05, do the scores predict downstream accuracy?
- :mod:`~rmqm.study.chapters.summary`: 00, the results summary (one table of the claims).

The figures are drawn by :mod:`rmqm.plots`.
"""

from rmqm.study.chapters import (
    controls,
    downstream,
    noise_vs_pgd,
    ssl_vs_supervised,
    summary,
    synbench,
    synbench_claims,
    zoo,
)
from rmqm.study.chapters.common import (
    CORRELATION,
    ENCODER,
    FRACTION,
    PGD_MODE_LABELS,
    PROBES,
    interval_pivot,
    interval_text,
    load_zoo,
    model_meta,
    print_lines,
    probe_columns,
    seed_line,
    setup,
    study_settings,
    zoo_rmqm,
)

__all__ = [
    'CORRELATION', 'ENCODER', 'FRACTION', 'PGD_MODE_LABELS', 'PROBES', 'controls', 'downstream', 'interval_pivot',
    'interval_text', 'load_zoo', 'model_meta', 'noise_vs_pgd', 'print_lines', 'probe_columns', 'seed_line', 'setup',
    'ssl_vs_supervised', 'study_settings', 'summary', 'synbench', 'synbench_claims', 'zoo', 'zoo_rmqm',
]
