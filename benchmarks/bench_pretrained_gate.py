"""The pretrained encoders' sanity gate (``rmqm.models.pretrained.imagenet_gate``) per input size,
and their forward speed there (images/s, forward only, as SynBench embeds its mixtures).

For each size: top-1 on the 20 bundled ImageNet samples, the share of exactly-zero pooled
features, and images/s of the encoder on SynBench-like inputs (``torch.inference_mode``) for each
batch size, contiguous and ``channels_last`` (whose features are checked against the contiguous
ones to 1e-4).

Run: ``OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_pretrained_gate.py --threads 2``
(``--sizes 48 112 224 --batches 32 64 --models efficientnet-lite0``).
"""

from __future__ import annotations

import argparse
import time

import torch

from rmqm.models.pretrained import imagenet_gate, load_pretrained


def images_per_s(encoder: torch.nn.Module, size: int, batch: int, channels_last: bool, min_s: float) -> float:
    x = torch.randn(batch, 3, size, size).add_(0.5)
    if channels_last:
        encoder = encoder.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        encoder(x)  # warm-up
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < min_s:
            encoder(x)
            n += batch
        elapsed = time.perf_counter() - start
    encoder.to(memory_format=torch.contiguous_format)
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["efficientnet-lite0"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[48, 96, 112, 128, 160, 192, 224])
    parser.add_argument("--batches", nargs="+", type=int, default=[64])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-s", type=float, default=3.0, help="seconds of forward passes per timing")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.models:
        encoder = load_pretrained(name)
        for size in args.sizes:
            gate = imagenet_gate(encoder, size)
            parts = [gate.line()]
            if not args.no_speed:
                x = torch.rand(4, 3, size, size)
                with torch.inference_mode():
                    ref = encoder(x)
                    last = encoder.to(memory_format=torch.channels_last)(
                        x.contiguous(memory_format=torch.channels_last))
                encoder.to(memory_format=torch.contiguous_format)
                diff = float((ref - last).abs().max())
                for batch in args.batches:
                    for cl in (False, True):
                        rate = images_per_s(encoder, size, batch, cl, args.min_s)
                        parts.append(f"batch {batch}{' channels_last' if cl else ''}: {rate:.0f} img/s")
                parts.append(f"channels_last max |diff| {diff:.1e}")
            print(" | ".join(parts), flush=True)


if __name__ == "__main__":
    main()
