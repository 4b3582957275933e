"""SynBench: the reference procedure's structure against rmqm.metrics.synbench, in one run.

The reference (IBM/synbench, evaluate_synbench.py) draws every sample in a Python loop
(``torch.normal`` per sample), feeds them through a DataLoader, collects features row by
row, estimates the covariance with ``np.cov`` + ``torch.svd`` (absolute eigenvalue cut
1e-6), solves the epsilon-robust QCQP with cvxpy/SCS per s and epsilon, and averages the
bound as a mean of per-batch means. ``rmqm.metrics.synbench.evaluate.evaluate_synbench`` draws each batch
in one call and solves the QCQP through its secular equation. Both run here on the same
encoder and grid; the script prints

* the end-to-end speed ratio (and the ratios of the sampling and QCQP parts);
* the largest score difference end to end (independent draws: Monte-Carlo noise, shown
  beside our bootstrap interval half-width) and on the *same* features (solver and
  bound-averaging differences only);
* the overhead of the protocol: ``evaluate_synbench`` wall time over the bare encoder forward
  passes of the same number of samples in the same batches (goal <= 1.2; with and without the
  bootstrap);
* the QCQP solver against cvxpy/SCS on the same (mu, D) per s and epsilon > 0: time per solve
  (cvxpy with SCS at its defaults, as the reference) and the objective's relative difference
  to a tight cvxpy solve (SCS at eps 1e-10 and Clarabel; goal >= 100x, same objective to 1e-6).

``--lite0-throughput`` instead measures EfficientNet-Lite0 (``rmqm.models.pretrained``)
forward images/s at 224 and 112 px, contiguous and channels_last (``--compile`` adds
torch.compile).

Run: ``.venv/bin/python benchmarks/bench_synbench.py`` (needs ``pip install -e .[bench]``
for cvxpy). ``--n 512 --s-step 0.5`` gives a quick run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from rmqm.metrics.synbench.curves import DEFAULT_THRESHOLDS, accuracy_grid, expected_bound_curve, synbench_scores
from rmqm.metrics.synbench.evaluate import evaluate_synbench
from rmqm.metrics.synbench.mixture import expected_bound, raw_accuracy, sample_gaussian_mixture
from rmqm.metrics.synbench.qcqp import accuracy_and_bound, class_statistics, robust_linear_rule, solve_robust_qcqp
from rmqm.models.backbones import TinyCNN
from rmqm.models.encoder import Encoder

SHAPE = (1, 28, 28)


# ----------------------------------------------------- reference structure
class PerSampleGaussianDataset(Dataset):
    """The reference's data set: labels drawn at once, then one torch.normal call per sample."""

    def __init__(self, mu: torch.Tensor, n: int, prior: float = 0.5) -> None:
        self.labels = torch.bernoulli(prior * torch.ones(n))
        std = torch.ones_like(mu)
        samples = []
        for i in range(n):
            mean = mu + 0.5 if self.labels[i] == 1 else -mu + 0.5
            samples.append(torch.normal(mean=mean, std=std).unsqueeze(0))
        self.samples = torch.cat(samples)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, idx: int):
        return self.samples[idx].view(*SHAPE), int(self.labels[idx])


def reference_inference(loader: DataLoader, encoder: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    features, labels = [], []
    for x, y in loader:
        with torch.no_grad():
            h = encoder(x)
        features.extend(h.cpu().numpy())
        labels.extend(y.numpy())
    return np.array(features), np.array(labels)


def cvxpy_qcqp(mu: np.ndarray, d_inv: np.ndarray, radius: float) -> np.ndarray:
    import cvxpy as cp

    z = cp.Variable(mu.shape[0])
    problem = cp.Problem(cp.Minimize(cp.quad_form(mu - z, d_inv)), [cp.pnorm(z) <= radius])
    problem.solve(solver="SCS")
    return np.asarray(z.value)


def reference_analysis(train_x, train_y, test_x, test_y, epsilons, timers) -> tuple[list[float], list[float]]:
    """Class statistics, cvxpy QCQP and batch-mean bound as the reference computes them."""
    pos, neg = train_x[train_y == 1], train_x[train_y == 0]
    mu_1, mu_2 = pos.mean(0), neg.mean(0)
    cov = (np.cov(pos, rowvar=False) * (len(pos) - 1) + np.cov(neg, rowvar=False) * (len(neg) - 1)) / (len(train_x) - 2)
    F, D, _ = torch.svd(torch.tensor(cov), some=True)
    F1, D1 = F[:, D > 1e-6].numpy(), D[D > 1e-6].numpy()
    d_inv = np.diag(1.0 / D1)
    mu = F1.T @ (mu_1 - mu_2) / 2
    center = (mu_1 + mu_2) / 2
    accuracies, bounds = [], []
    for eps in epsilons:
        start = time.perf_counter()
        z = cvxpy_qcqp(mu, d_inv, eps * np.linalg.norm(mu)) if eps > 0 else np.zeros_like(mu)
        timers["qcqp"] += time.perf_counter() - start
        w = d_inv @ (mu - z)
        W = F1 @ w
        bound_sum, acc_sum, n_batches = 0.0, 0.0, 0
        for start_row in range(0, len(test_x), 256):  # the reference's feature loader, batch 256
            h, y = test_x[start_row:start_row + 256], test_y[start_row:start_row + 256]
            margin = (h - center) @ W
            correct = ((margin > 0) & (y == 1)) | ((margin < 0) & (y == 0))
            bound_sum += (np.abs(margin) / abs(mu @ w))[correct].mean()
            acc_sum += correct.sum() / len(y)
            n_batches += 1
        accuracies.append(acc_sum / n_batches)
        bounds.append(bound_sum / n_batches)
    return accuracies, bounds


def run_reference(encoder, s_values, epsilons, n, seed):
    """Returns accuracy, bound ``(E, S)``, the features per s, and part timings."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    direction = torch.ones(int(np.prod(SHAPE))) / np.sqrt(np.prod(SHAPE))
    timers = {"sampling": 0.0, "qcqp": 0.0}
    acc = np.zeros((len(epsilons), len(s_values)))
    bnd = np.zeros_like(acc)
    features = []
    for j, s in enumerate(s_values):
        start = time.perf_counter()
        train_set = PerSampleGaussianDataset(direction * s, n)
        test_set = PerSampleGaussianDataset(direction * s, n)
        timers["sampling"] += time.perf_counter() - start
        train = reference_inference(DataLoader(train_set, batch_size=256, shuffle=True, drop_last=True), encoder)
        test = reference_inference(DataLoader(test_set, batch_size=256, shuffle=False, drop_last=True), encoder)
        acc[:, j], bnd[:, j] = reference_analysis(*train, *test, epsilons, timers)
        features.append((train, test))
    return acc, bnd, features, timers


def scores_from(acc, bnd, s_values, thresholds):
    grid = accuracy_grid(thresholds)
    raw_acc = raw_accuracy(s_values)
    raw_curve = expected_bound_curve(raw_acc, expected_bound(raw_acc), grid)
    return synbench_scores(expected_bound_curve(acc, bnd, grid), raw_curve, grid, thresholds)


def ours_on_features(features, epsilons, timers):
    acc = np.zeros((len(epsilons), len(features)))
    bnd = np.zeros_like(acc)
    for j, ((train_x, train_y), (test_x, test_y)) in enumerate(features):
        stats = class_statistics(train_x, train_y == 1)
        for i, eps in enumerate(epsilons):
            start = time.perf_counter()
            rule = robust_linear_rule(stats, eps)
            timers["qcqp"] += time.perf_counter() - start
            acc[i, j], bnd[i, j] = accuracy_and_bound(rule, test_x, test_y == 1)
    return acc, bnd


def bare_forward_time(encoder, s_values, n, batch_size=256, seed=0) -> float:
    """Wall time of the encoder forward passes alone: 2 n samples per s (drawn beforehand, not timed),
    in batches of ``batch_size``, under inference_mode, as evaluate_synbench batches them."""
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    with torch.inference_mode():
        for s in s_values:
            for _ in range(2):  # train and test
                x, _ = sample_gaussian_mixture(n, float(s), SHAPE, generator=generator)
                start = time.perf_counter()
                for i in range(0, n, batch_size):
                    encoder(x[i:i + batch_size])
                total += time.perf_counter() - start
    return total


def qcqp_comparison(features, epsilons) -> dict[str, float]:
    """Per s and epsilon > 0, on the reference's features: time of our secular solve and of cvxpy/SCS
    (defaults, as the reference), and the largest relative objective difference to tight solves."""
    import cvxpy as cp

    out = {"ours": 0.0, "scs": 0.0, "n": 0, "rel_scs_default": 0.0, "rel_tight": 0.0}
    for (train_x, train_y), _ in features:
        stats = class_statistics(train_x, train_y == 1)
        mu, dvals = stats.mu, stats.eigenvalues
        for eps in epsilons:
            if eps <= 0:
                continue
            ours = solve_robust_qcqp(mu, dvals, eps).objective
            out["ours"] += best_of(lambda mu=mu, dvals=dvals, eps=eps: solve_robust_qcqp(mu, dvals, eps), 20)

            def objective(z, mu=mu, dvals=dvals):
                return float((mu - z) @ ((mu - z) / dvals))

            start = time.perf_counter()
            z_scs = cvxpy_qcqp(mu, np.diag(1.0 / dvals), eps * np.linalg.norm(mu))
            out["scs"] += time.perf_counter() - start
            out["rel_scs_default"] = max(out["rel_scs_default"], abs(objective(z_scs) - ours) / ours)
            z = cp.Variable(mu.shape[0])
            problem = cp.Problem(cp.Minimize(cp.sum(cp.multiply(1.0 / dvals, cp.square(mu - z)))),
                                 [cp.norm(z, 2) <= eps * np.linalg.norm(mu)])
            best = np.inf
            tight_scs = {"eps_abs": 1e-10, "eps_rel": 1e-10, "max_iters": 200000}
            for solver, options in (("CLARABEL", {}), ("SCS", tight_scs)):
                try:
                    problem.solve(solver=solver, **options)
                except (cp.error.SolverError, ValueError):
                    continue
                best = min(best, abs(objective(np.asarray(z.value)) - ours) / ours)
            out["rel_tight"] = max(out["rel_tight"], best)
            out["n"] += 1
    return out


def lite0_throughput(compile_too: bool, repeats: int = 3, batch: int = 32) -> None:
    """EfficientNet-Lite0 forward images/s (best and all of ``repeats``) at 224 and 112 px."""
    from rmqm.models.pretrained import load_pretrained

    encoder = load_pretrained("efficientnet-lite0")
    print(f"EfficientNet-Lite0 features, batch {batch}, torch threads {torch.get_num_threads()}")
    for size in (224, 112):
        for layout in (torch.contiguous_format, torch.channels_last):
            model = encoder.to(memory_format=layout)
            x = torch.rand(batch, 3, size, size).contiguous(memory_format=layout)
            variants = [("eager", model)]
            if compile_too:
                variants.append(("compiled", torch.compile(model)))
            for label, fn in variants:
                with torch.inference_mode():
                    start = time.perf_counter()
                    fn(x)
                    first = time.perf_counter() - start
                    rates = []
                    for _ in range(repeats):
                        start = time.perf_counter()
                        fn(x)
                        rates.append(batch / (time.perf_counter() - start))
                print(f"  {size} px {str(layout).split('.')[-1]:<17} {label:<8} best {max(rates):7.1f} img/s "
                      f"(all {', '.join(f'{r:.1f}' for r in rates)}; first call {first:.1f} s)", flush=True)


def best_of(fn, repeats: int = 5) -> float:
    """Smallest wall time of ``repeats`` calls (robust to a shared machine)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048, help="train and test samples per s (multiple of 256)")
    parser.add_argument("--s-step", type=float, default=0.1, help="grid step of s in [step, 4.9]")
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.0, 0.2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lite0-throughput", action="store_true", help="only measure Lite0 forward images/s")
    parser.add_argument("--compile", action="store_true", help="with --lite0-throughput: add torch.compile")
    args = parser.parse_args()
    if args.lite0_throughput:
        lite0_throughput(args.compile)
        return
    if args.n < 256 or args.n % 256:
        parser.error("--n must be a positive multiple of 256 (the reference's loaders drop incomplete batches)")
    try:
        import cvxpy  # noqa: F401
    except ImportError:
        raise SystemExit("this benchmark needs cvxpy for the reference's QCQP: pip install -e '.[bench]'") from None

    s_values = np.round(np.arange(args.s_step, 4.9 + 1e-9, args.s_step), 10)
    thresholds = np.array(DEFAULT_THRESHOLDS)
    torch.manual_seed(0)
    encoder = Encoder(TinyCNN(1, 32), mean=(0.2860,), std=(0.3530,), name="tinycnn-random").eval()
    print(f"encoder: random-init TinyCNN(1, 32) on {SHAPE}; {len(s_values)} values of s x {args.n}+{args.n} "
          f"samples; epsilons {args.epsilons}; torch threads {torch.get_num_threads()}")

    start = time.perf_counter()
    ref_acc, ref_bnd, features, ref_timers = run_reference(encoder, s_values, args.epsilons, args.n, args.seed)
    ref_time = time.perf_counter() - start
    ref_scores = scores_from(ref_acc, ref_bnd, s_values, thresholds)

    start = time.perf_counter()
    ours = evaluate_synbench(encoder, SHAPE, s_values=s_values, epsilons=args.epsilons, n_train=args.n,
                             n_test=args.n, n_bootstrap=200, seed=args.seed, progress=False).scores
    our_time = time.perf_counter() - start  # includes the 200-replicate bootstrap the reference lacks
    our_scores = ours["score"].to_numpy().reshape(len(args.epsilons), -1)
    half_width = ((ours["ci_high"] - ours["ci_low"]) / 2).to_numpy().reshape(len(args.epsilons), -1)

    # parts measured apart: sampling of one s, and the QCQP on the reference's own features
    direction = torch.ones(int(np.prod(SHAPE))) / np.sqrt(np.prod(SHAPE))
    loop_sampling = best_of(lambda: PerSampleGaussianDataset(direction, args.n))
    generator = torch.Generator().manual_seed(0)
    batched_sampling = best_of(lambda: sample_gaussian_mixture(args.n, 1.0, SHAPE, generator=generator))
    our_timers = {"qcqp": 0.0}
    same_acc, same_bnd = ours_on_features(features, args.epsilons, our_timers)
    our_time_no_boot = best_of(lambda: evaluate_synbench(
        encoder, SHAPE, s_values=s_values, epsilons=args.epsilons, n_train=args.n, n_test=args.n, n_bootstrap=0,
        seed=args.seed, progress=False), 3)
    forward_time = min(bare_forward_time(encoder, s_values, args.n, seed=args.seed) for _ in range(3))
    qcqp = qcqp_comparison(features, args.epsilons)
    same_scores = scores_from(same_acc, same_bnd, s_values, thresholds)

    print(f"\nend to end: reference structure {ref_time:.1f} s, rmqm.metrics.synbench {our_time:.1f} s "
          f"-> speed ratio {ref_time / our_time:.2f}x\n  (ours includes a 200-replicate bootstrap; the encoder "
          f"forward passes are the same work in both)")
    print(f"sampling {args.n} points (best of 5): per-sample loop {loop_sampling * 1e3:.1f} ms, one batched call "
          f"{batched_sampling * 1e3:.1f} ms -> {loop_sampling / batched_sampling:.0f}x")
    n_robust = sum(e > 0 for e in args.epsilons) * len(s_values)
    print(f"QCQP ({n_robust} robust solves): cvxpy/SCS {ref_timers['qcqp']:.2f} s, secular equation "
          f"{our_timers['qcqp']:.3f} s (incl. epsilon=0) -> {ref_timers['qcqp'] / max(our_timers['qcqp'], 1e-9):.0f}x")
    print(f"overhead (best of 3 each): evaluate_synbench {our_time_no_boot:.2f} s without bootstrap ({our_time:.2f} s "
          f"with 200 replicates, one run) over bare forward passes {forward_time:.2f} s -> "
          f"{our_time_no_boot / forward_time:.2f} "
          f"({our_time / forward_time:.2f}) (goal <= 1.2)")
    if qcqp["n"]:
        n_solves = qcqp["n"]
        print(f"QCQP per robust solve ({n_solves} solves; ours best of 20 each): "
              f"secular {qcqp['ours'] / n_solves * 1e3:.3f} ms, "
              f"cvxpy/SCS {qcqp['scs'] / n_solves * 1e3:.1f} ms -> {qcqp['scs'] / max(qcqp['ours'], 1e-12):.0f}x "
              f"(goal >= 100x); "
              f"largest relative objective difference: {qcqp['rel_tight']:.1e} to tight cvxpy solves (goal 1e-6), "
              f"{qcqp['rel_scs_default']:.1e} to SCS at its defaults")
    print("\nthreshold  " + "  ".join(f"{t:>6.2f}" for t in thresholds))
    for i, eps in enumerate(args.epsilons):
        print(f"eps={eps:<4g} ref " + "  ".join(f"{v:6.3f}" for v in ref_scores[i]))
        print("         ours " + "  ".join(f"{v:6.3f}" for v in our_scores[i]) + "   (independent draws)")
        print("     ours/same " + "  ".join(f"{v:6.3f}" for v in same_scores[i]) + "   (reference's features)")
    print(f"\nlargest score difference, end to end (independent draws): {np.abs(ref_scores - our_scores).max():.4f} "
          f"(our 95% bootstrap half-width up to {half_width.max():.4f})")
    print(f"largest score difference on the same features (solver + bound averaging): "
          f"{np.abs(ref_scores - same_scores).max():.2e}")


if __name__ == "__main__":
    main()
