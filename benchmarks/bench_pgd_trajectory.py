"""Benchmark: one PGD trajectory vs the reference's per-level attacks, and distance to the floor.

Measured in one run, on the same encoder, batch and K:

1. the reference scheme -- K independent attacks of 0..K-1 steps, each followed by an
   embedding pass (K (K - 1) / 2 sign-gradient steps) -- against
   :func:`rmqm.metrics.rmqm.perturbations.pgd_trajectory` (K - 1 steps); prints the speed ratio
   (expected near K / 2) and the largest difference between the two schemes' embeddings;
2. the floor: :func:`rmqm.metrics.rmqm.measure.measure_rmqm` under PGD over the bare K - 1
   forward+backward passes of the same encoder, and under noise over the bare n forward
   passes (goal: within 1.2 of the floor).

3. with ``--modes``: the wall time of ``measure_rmqm`` under PGD in each of the three modes
   (``reference``, ``own-loss``, ``displacement``; :mod:`rmqm.metrics.rmqm.attacks`) for a
   LeNet (the reference's MNIST encoder, d = 128) at random init attacked with NT-Xent (as the
   reference attacks its random network) and a LeNet with a classifier head attacked with
   cross-entropy, on ``--batch`` MNIST-sized points in attack batches of 128.

Run: ``.venv/bin/python benchmarks/bench_pgd_trajectory.py [--levels 30] [--batch 250] [--modes]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rmqm.data.offline import fashion_mnist_available
from rmqm.data.registry import load_dataset
from rmqm.metrics.rmqm.alterations import PGD, WhiteNoise
from rmqm.metrics.rmqm.attacks import resolve_attack
from rmqm.metrics.rmqm.measure import measure_rmqm
from rmqm.metrics.rmqm.perturbations import make_attack_loss, pgd_attack, pgd_trajectory
from rmqm.models.backbones import LeNet, TinyCNN
from rmqm.models.encoder import Encoder


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=30, help="PGD levels K")
    parser.add_argument("--noise-levels", type=int, default=100)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--modes", action="store_true", help="time the three PGD modes on a LeNet instead")
    args = parser.parse_args()
    if args.modes:
        bench_modes(args)
        return

    torch.manual_seed(0)
    device = torch.device(args.device)
    data = load_dataset("fashion-mnist" if fashion_mnist_available() else "digits", "test", n=args.batch, seed=0)
    encoder = Encoder(TinyCNN(1, 32), mean=data.mean, std=data.std).to(device).eval()
    x = data.images.to(device)
    K, alpha = args.levels, 2 / 255
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def loss_fn():
        with torch.no_grad():
            z0 = encoder(x)
        return make_attack_loss("displacement", z0, generator=torch.Generator().manual_seed(0))

    def reference():
        zs = []
        for k in range(K):
            x_k = pgd_attack(encoder, x, loss_fn(), k, alpha, 0.3)
            with torch.no_grad():
                zs.append(encoder(x_k))
        sync()
        return torch.stack(zs)

    def trajectory():
        zs = torch.stack([z for _, z in pgd_trajectory(encoder, x, loss_fn(), K, alpha, 0.3)])
        sync()
        return zs

    def bare_forward_backward():
        for _ in range(K - 1):
            xr = x.clone().requires_grad_(True)
            torch.autograd.grad(encoder(xr).sum(), xr)
        sync()

    def bare_forward(n: int):
        with torch.no_grad():
            for _ in range(n):
                encoder(x)
        sync()

    common = dict(batch_size=args.batch, device=device, progress=False, seed=0)
    t_ref, z_ref = timed(reference, 1)
    t_traj, z_traj = timed(trajectory, args.repeats)
    t_bare_fb, _ = timed(bare_forward_backward, args.repeats)
    t_pgd, _ = timed(lambda: measure_rmqm(encoder, x, PGD(n_levels=K, step_size=alpha), **common),
                     args.repeats)
    t_bare_f, _ = timed(lambda: bare_forward(args.noise_levels), args.repeats)
    t_noise, _ = timed(lambda: measure_rmqm(encoder, x, WhiteNoise(n_levels=args.noise_levels), **common),
                       args.repeats)

    diff = float((z_ref - z_traj).abs().max())
    print(f"device {device}, torch threads {torch.get_num_threads()}, batch {args.batch}, "
          f"data {data.name}, encoder TinyCNN(dim 32)")
    print(f"PGD K={K}: reference per-level attacks {t_ref:.2f} s ({K * (K - 1) // 2} steps), "
          f"one trajectory {t_traj:.2f} s ({K - 1} steps)")
    print(f"  speed ratio reference / trajectory: {t_ref / t_traj:.1f}x (K/2 = {K / 2:.1f}); "
          f"largest embedding difference {diff:.2e}")
    print(f"floor: measure_rmqm(pgd) {t_pgd:.2f} s / bare {K - 1} forward+backward {t_bare_fb:.2f} s "
          f"= {t_pgd / t_bare_fb:.2f}")
    print(f"floor: measure_rmqm(noise) {t_noise:.2f} s / bare {args.noise_levels} forward {t_bare_f:.2f} s "
          f"= {t_noise / t_bare_f:.2f}")


def bench_modes(args: argparse.Namespace) -> None:
    """Wall time of ``measure_rmqm`` under PGD in each mode, LeNet, ``args.batch`` points."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    data = load_dataset("fashion-mnist" if fashion_mnist_available() else "digits", "test", n=args.batch, seed=0)
    encoder = Encoder(LeNet(1, 128), mean=data.mean, std=data.std).to(device).eval()
    head = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(128, 10)).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    common = dict(batch_size=128, device=device, progress=False, seed=0)
    pgd = PGD(n_levels=args.levels, step_size=2 / 255)
    print(f"device {device}, torch threads {torch.get_num_threads()}, {len(data)} points of {data.name}, "
          f"LeNet(d 128), K = {args.levels}, attack batches of 128")
    runs = [("displacement", "displacement", {}), ("own-loss", "nt-xent", {}), ("reference", "nt-xent", {}),
            ("own-loss", "cross-entropy", {"head": head}), ("reference", "cross-entropy", {"head": head})]
    for mode, loss, extra in runs:
        def run(mode: str = mode, loss: str = loss, extra: dict = extra) -> object:
            out = measure_rmqm(encoder, data, pgd.with_attack(resolve_attack(loss, mode)), **common, **extra)
            sync()
            return out

        seconds, result = timed(run, 1 if mode == "reference" else args.repeats)
        print(f"  {mode:>12} {loss:>13}: {seconds:7.2f} s  (RMQM {result.score:.3f})")  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
