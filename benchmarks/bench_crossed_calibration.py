"""Calibration: the type-I error of the crossed permutation test against the nested two-level
bootstrap it replaced, on simulated null zoos with seed effects.

A null zoo: ``C`` configurations x ``S`` seed labels; score ``a_c + u_s + e``, accuracy
``b_c + v_s + f`` with ``a, b`` independent (no association), seed shifts ``u, v`` of SD
``--seed-sd`` shared by every configuration of a seed, cell noise of SD 0.5. Each zoo is tested by

- :func:`rmqm.stats.crossed_bootstrap` (configuration permutations, the same for every seed label;
  ``--permutations`` Monte-Carlo permutations), and
- the nested two-level bootstrap sign p-value of the former ``two_level_bootstrap`` (configurations
  drawn with replacement, then each drawn configuration's *own* seeds with replacement, replicate
  ``j`` taking the ``j``-th drawn seed of every configuration: the seed pairing is broken),
  re-implemented below for the comparison;

and the share of zoos with ``p <= 0.05`` is printed with its Monte-Carlo standard error.

Run: ``.venv/bin/python benchmarks/bench_crossed_calibration.py [--zoos 1000] [--configs 14] [--seeds 5 3]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy import stats

from rmqm.stats import crossed_bootstrap


def null_zoo(rng: np.random.Generator, n_configs: int, n_seeds: int, seed_sd: float) -> pd.DataFrame:
    c, s = np.repeat(np.arange(n_configs), n_seeds), np.tile(np.arange(n_seeds), n_configs)
    a, b = rng.normal(size=(2, n_configs))
    u, v = rng.normal(0, seed_sd, size=(2, n_seeds))
    return pd.DataFrame({"method": c, "dim": 1, "seed": s, "score": a[c] + u[s] + 0.5 * rng.normal(size=c.size),
                         "acc": b[c] + v[s] + 0.5 * rng.normal(size=c.size)})


def nested_sign_p(table: pd.DataFrame, n_resamples: int, rng: np.random.Generator) -> float:
    """The former two-level bootstrap's sign p-value (Spearman, Fisher-z mean over replicates)."""
    x = table.pivot(index="method", columns="seed", values="score").to_numpy()
    y = table.pivot(index="method", columns="seed", values="acc").to_numpy()
    n_c, n_s = x.shape
    configs = rng.integers(0, n_c, size=(n_resamples, n_c))
    seeds = rng.integers(0, n_s, size=(n_resamples, n_c, n_s))
    xs, ys = x[configs[..., None], seeds], y[configs[..., None], seeds]  # (B, C, S)
    rx, ry = stats.rankdata(xs, axis=1), stats.rankdata(ys, axis=1)
    rx, ry = rx - rx.mean(axis=1, keepdims=True), ry - ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (rx * ry).sum(axis=1) / np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
        t = np.tanh(np.nanmean(np.arctanh(np.clip(r, -1, 1)), axis=1))
    t = t[np.isfinite(t)]
    below, above = (1 + np.sum(t <= 0)) / (t.size + 1), (1 + np.sum(t >= 0)) / (t.size + 1)
    return float(min(1.0, 2 * min(below, above)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoos", type=int, default=1000)
    parser.add_argument("--configs", type=int, default=14)
    parser.add_argument("--seeds", type=int, nargs="+", default=[5, 3])
    parser.add_argument("--seed-sd", type=float, default=1.0)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--permutations", type=int, default=199)
    args = parser.parse_args()
    for n_seeds in args.seeds:
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        old, new = [], []
        for i in range(args.zoos):
            table = null_zoo(rng, args.configs, n_seeds, args.seed_sd)
            old.append(nested_sign_p(table, args.resamples, rng))
            new.append(crossed_bootstrap(table, "score", "acc", n_resamples=1, n_permutations=args.permutations,
                                         random_state=i).p_value)
        for name, p in (("nested two-level bootstrap, sign p", old), ("crossed, configuration permutation p", new)):
            rate = float(np.mean(np.asarray(p) <= 0.05))
            print(f"{args.configs} configs x {n_seeds} seeds, seed SD {args.seed_sd}, {args.zoos} null zoos: {name}: "
                  f"type-I error at 0.05 = {rate:.3f} (MC SE {np.sqrt(rate * (1 - rate) / args.zoos):.3f})")
        print(f"  ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
