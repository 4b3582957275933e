"""The task-free metrics (RMQM, SynBench), downstream probes and label-free baselines."""

