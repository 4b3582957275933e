"""Benchmark: one training step of every method over the bare step of the same LeNet and batch.

Measured in one run, on the reference MNIST LeNet (d = 128, :class:`rmqm.models.backbones.LeNet`)
and 28x28 images:

1. per method and batch size (256 and 64): the wall time of one full training step -- the
   reference's augmentation (:mod:`rmqm.training.augmentation`: a batched random perspective, or
   a random rotation + a random perspective for the two-view methods), the method's loss,
   backward and the Adam step -- over the bare step: forward of the same encoder on the same
   number of images (B, or 2B for the two-view methods), a plain mean-square loss, backward and
   the Adam step. Goal: <= 1.3. The augmentation's own time is printed beside it (the rest of
   the difference is the loss: the reference's semi-hard mined triplet loss,
   :func:`rmqm.losses.metric_learning.triplet_margin_loss`, mines over the P anchor-positive pairs
   x B candidate negatives; a B x B x B mask made the triplet methods 7-30x the bare step at 256).
2. with ``--epoch``: images per second of :func:`rmqm.training.pretraining.pretrain` over one
   MNIST-sized epoch (60,000 images, batch 256) per method, on MNIST when the ``mnist`` data set
   loads, else on random 28x28 images with random labels (the speed does not depend on the pixels).

Steps are timed ``--repeats`` times after ``--warmup`` steps; the median is reported. Run:
``.venv/bin/python benchmarks/bench_training_step.py [--threads 1] [--epoch] [--device cpu]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from rmqm.data.dataset import ImageDataset
from rmqm.models.backbones import LeNet
from rmqm.models.encoder import Encoder
from rmqm.training.augmentation import single_view, two_views
from rmqm.training.methods import HEAD_METHODS, SUPERVISED_METHODS
from rmqm.training.pretraining import make_optimizer, method_loss, pretrain

TRAINED = ("cross-entropy", "triplet-entropy", "supervised-triplet", "nt-xent", "instance-triplet", "vicreg")
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_times(steps: list[Callable[[], object]], device: torch.device, warmup: int,
                 repeats: int) -> list[float]:
    """Median seconds of each of ``steps``, timed in turn within every repeat (so that a change of
    machine load hits all of them alike)."""
    for _ in range(warmup):
        for step in steps:
            step()
    sync(device)
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(repeats):
        for step, out in zip(steps, times, strict=True):
            start = time.perf_counter()
            step()
            sync(device)
            out.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def models(method: str, device: torch.device) -> tuple[Encoder, torch.nn.Module | None]:
    torch.manual_seed(0)
    enc = Encoder(LeNet(1, 128), MNIST_MEAN, MNIST_STD).to(device).train()
    head = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(128, 10)).to(device) if method in HEAD_METHODS else None
    return enc, head


def bench_steps(args: argparse.Namespace, device: torch.device) -> None:
    print(f"{'method':>20} {'batch':>5} {'step ms':>8} {'bare ms':>8} {'aug ms':>7} {'ratio':>6}")
    for batch in (256, 64):
        g = torch.Generator().manual_seed(0)
        x = torch.rand(batch, 1, 28, 28, generator=g).to(device)
        y = torch.randint(0, 10, (batch,), generator=g).to(device)
        for method in TRAINED:
            enc, head = models(method, device)
            bare_enc, _ = models(method, device)  # its own copy: the bare steps must not move enc
            params = list(enc.parameters()) + (list(head.parameters()) if head is not None else [])
            opt = make_optimizer(params, "adam", 1e-3)
            bare_opt = make_optimizer(bare_enc.parameters(), "adam", 1e-3)
            aug = torch.Generator(device=device).manual_seed(1)
            two = method not in SUPERVISED_METHODS
            x_bare = torch.cat([x, x]) if two else x

            def full(enc=enc, head=head, opt=opt, aug=aug, method=method) -> None:
                opt.zero_grad(set_to_none=True)
                method_loss(method, enc, head, x, y, aug).backward()  # noqa: B023
                opt.step()

            def bare(enc=bare_enc, opt=bare_opt, x_bare=x_bare) -> None:
                opt.zero_grad(set_to_none=True)
                enc(x_bare).square().mean().backward()
                opt.step()

            def views(aug=aug, two=two) -> None:
                two_views(x, aug) if two else single_view(x, aug)  # noqa: B023

            t_full, t_bare, t_aug = median_times([full, bare, views], device, args.warmup, args.repeats)
            print(f"{method:>20} {batch:>5} {1e3 * t_full:8.2f} {1e3 * t_bare:8.2f} {1e3 * t_aug:7.2f} "
                  f"{t_full / t_bare:6.2f}", flush=True)


def mnist_sized(n: int) -> ImageDataset:
    try:
        from rmqm.data.registry import load_dataset

        ds = load_dataset("mnist", split="train")
        if len(ds) >= n:
            print(f"data: MNIST train ({len(ds)} images)")
            return ds
    except Exception as err:  # noqa: BLE001 - any missing loader or file: fall back to random data
        print(f"data: random 28x28 images ({type(err).__name__}: {err})")
    g = torch.Generator().manual_seed(0)
    return ImageDataset(torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g),
                        "random/train", tuple(str(i) for i in range(10)), MNIST_MEAN, MNIST_STD)


def bench_epoch(args: argparse.Namespace, device: torch.device) -> None:
    ds = mnist_sized(60_000)
    print(f"{'method':>20} {'epoch s':>8} {'images/s':>9}")
    for method in TRAINED:
        enc, head = models(method, device)
        start = time.perf_counter()
        res = pretrain(enc, ds, method, head=head, epochs=1, batch_size=256, seed=0, device=device, progress=False)
        sync(device)
        seconds = time.perf_counter() - start
        print(f"{method:>20} {seconds:8.1f} {res.history.shape[0] * 256 / seconds:9.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--epoch", action="store_true", help="also time one MNIST-sized epoch per method")
    parser.add_argument("--no-steps", action="store_true", help="skip the step ratios")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    if not args.no_steps:
        bench_steps(args, device)
    if args.epoch:
        bench_epoch(args, device)


if __name__ == "__main__":
    main()
