"""rmqm: task-free evaluation of pretrained representation manifolds.

Two published methods, reimplemented and compared side by side:

* RMQM -- "Manifold Characteristics That Predict Downstream Task Performance" (2022);
* SynBench -- "Task-Agnostic Benchmarking of Pretrained Representations using
  Synthetic Data" (2022).
"""

__version__ = "0.1.0"
