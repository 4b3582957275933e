"""rmqm: task-free evaluation of pretrained representation manifolds (RMQM and SynBench).

The few entry points a user needs are importable from the top level; the subpackages
hold everything else, layered from helpers up to the command line::

    _utils <- data <- models <- losses <- stats <- metrics <- training <- experiments <- plots <- study <- cli
"""

from rmqm.data import ImageDataset, load_dataset
from rmqm.metrics.rmqm import PGD, WhiteNoise, measure_rmqm, summary_table
from rmqm.metrics.synbench import evaluate_synbench
from rmqm.models import Encoder

__version__ = "0.1.0"

__all__ = ["Encoder", "ImageDataset", "PGD", "WhiteNoise", "evaluate_synbench", "load_dataset", "measure_rmqm",
           "summary_table"]
