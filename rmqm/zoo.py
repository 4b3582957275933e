"""The model zoo: encoders trained by the study's methods, cached on disk by their config.

Every model is described by a config dict (data, architecture, method, dimension,
optimiser, learning rate, epochs, batch size, number of training images, seed, ...). Its
name is readable and ends in a hash of the full config, so a checkpoint is found again
whenever the same config is asked for, and a rerun skips models that exist. Checkpoints
are written atomically (temporary file + ``os.replace``), so an interrupted run never
leaves a half-written model behind.

Typical use::

    model = default_encoder("fashion-mnist", dim=32)   # trains once (< 1 min on CPU), then loads
    z = model.encoder(images)                          # (B, 32) embeddings of [0, 1] images
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch
from torch import nn

from rmqm.data import (
    OFFLINE_DATASETS,
    ImageDataset,
    check_real,
    fashion_mnist_available,
    load_dataset,
    transfer_tasks,
)
from rmqm.models import ARCHITECTURES, Encoder, build_backbone
from rmqm.pretrain import (
    HEAD_METHODS,
    METHODS,
    OPTIMIZERS,
    SELF_SUPERVISED_METHODS,
    SUPERVISED_METHODS,
    pretrain,
)

__all__ = [
    "TrainedModel",
    "model_config",
    "model_name",
    "build_model",
    "train_model",
    "save_model",
    "load_model",
    "list_models",
    "load_or_train",
    "default_encoder",
    "method_family",
    "evaluate_model",
    "train_zoo",
    "family_summary",
    "TINY_ZOO",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "rmqm-zoo/1"


@dataclass
class TrainedModel:
    """A trained (or random-init) encoder with everything needed to reproduce it.

    Attributes:
        name: unique name, ``<data>_<arch>_<method>_d<dim>_<optimizer>_s<seed>_<hash>``.
        encoder: :class:`rmqm.models.Encoder` in eval mode; ``[0, 1]`` images -> ``(B, d)``
            embeddings (the layer before ReLU -> logits for cross-entropy models); it applies
            the training data's mean/std itself.
        head: classifier ``(B, d) -> (B, n_classes)`` logits for cross-entropy and
            triplet-entropy models, else None.
        config: the full training config (see :func:`model_config`).
        history: per-step training loss (``step``, ``epoch``, ``loss``, ``elapsed_s``).
        train_info: ``train_time_s``, ``epochs_completed``, ``stopped_early``.
        metrics: downstream/label-free scores added by :func:`rmqm.zoo.train_zoo`.
        path: the checkpoint file, when saved.
    """

    name: str
    encoder: Encoder
    head: nn.Module | None
    config: dict[str, Any]
    history: pd.DataFrame
    train_info: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def method(self) -> str:
        return str(self.config["method"])

    @property
    def supervised(self) -> bool:
        """True for methods that used class labels."""
        return self.method in SUPERVISED_METHODS

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Embeddings ``(N, d)`` of ``[0, 1]`` images ``(N, C, H, W)``, computed in batches."""
        device = next(self.encoder.parameters()).device
        out = [self.encoder(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
        return torch.cat(out) if out else torch.empty(0, int(self.config["dim"]))


def model_config(
    data: str = "fashion-mnist",
    method: str = "cross-entropy",
    dim: int = 32,
    *,
    arch: str = "tiny",
    width: int = 32,
    optimizer: str = "adam",
    lr: float = 1e-3,
    epochs: int = 2,
    batch_size: int = 128,
    n_train: int | None = 6000,
    seed: int = 0,
    temperature: float = 0.07,
    margin: float = 0.5,
    time_budget_s: float | None = 60.0,
) -> dict[str, Any]:
    """A validated training config (the key under which the model is cached).

    ``width`` only applies to ``arch="tiny"``; ``time_budget_s`` stops training early
    (None: no limit). Defaults follow the reference: Adam, lr 1e-3, NT-Xent temperature
    0.07, triplet margin 0.5.
    """
    if method not in METHODS:
        raise ValueError(f"unknown pretraining method {method!r}; choose one of {list(METHODS)}")
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {list(ARCHITECTURES)}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {list(OPTIMIZERS)}")
    if int(dim) < 1:
        raise ValueError(f"dim must be a positive integer; got {dim}")
    if n_train is not None and int(n_train) < 2:
        raise ValueError(f"n_train must be at least 2 (or None for all); got {n_train}")
    lr = check_real(lr, "learning rate lr", low=0.0, low_open=True)
    temperature = check_real(temperature, "temperature", low=0.0, low_open=True)
    margin = check_real(margin, "margin", low=0.0)
    if time_budget_s is not None:
        time_budget_s = check_real(time_budget_s, "time_budget_s (or None)", low=0.0, low_open=True)
    return {
        "data": str(data), "arch": arch, "width": int(width) if arch == "tiny" else None,
        "method": method, "dim": int(dim), "optimizer": optimizer, "lr": float(lr),
        "epochs": int(epochs), "batch_size": int(batch_size),
        "n_train": None if n_train is None else int(n_train), "seed": int(seed),
        "temperature": float(temperature), "margin": float(margin),
        "time_budget_s": None if time_budget_s is None else float(time_budget_s),
    }


def model_name(config: dict[str, Any]) -> str:
    """Readable, unique name of a config: its main fields plus an 8-hex hash of all of them."""
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    c = config
    data = str(c["data"]).replace("/", "-")
    return f"{data}_{c['arch']}_{c['method']}_d{c['dim']}_{c['optimizer']}_s{c['seed']}_{digest}"


def build_model(
    config: dict[str, Any], in_channels: int, n_classes: int, mean, std
) -> tuple[Encoder, nn.Module | None]:
    """The untrained encoder (and classifier head) of ``config``, initialised from its seed.

    The head is ``Linear(ReLU(z))`` so that the embedding ``z`` is the layer before
    ReLU -> logits, as in the reference. The global RNG state is left untouched.
    """
    kwargs = {"width": config["width"]} if config["arch"] == "tiny" else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config["seed"]))
        backbone = build_backbone(config["arch"], in_channels, int(config["dim"]), **kwargs)
        head = None
        if config["method"] in HEAD_METHODS:
            head = nn.Sequential(nn.ReLU(), nn.Linear(int(config["dim"]), int(n_classes)))
    encoder = Encoder(backbone, mean, std, name=model_name(config))
    return encoder, head


def _training_data(config: dict[str, Any]) -> ImageDataset:
    return load_dataset(config["data"], split="train", n=config["n_train"], seed=config["seed"])


def train_model(
    config: dict[str, Any],
    *,
    dataset: ImageDataset | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> TrainedModel:
    """Build and train the model of ``config`` (no caching; see :func:`load_or_train`).

    Args:
        config: from :func:`model_config`.
        dataset: training data; by default the ``train`` split of ``config["data"]``
            subsampled to ``config["n_train"]`` with ``config["seed"]``.
    """
    ds = dataset if dataset is not None else _training_data(config)
    encoder, head = build_model(config, ds.images.shape[1], ds.n_classes, ds.mean, ds.std)
    result = pretrain(
        encoder, ds, config["method"], head=head, epochs=config["epochs"],
        batch_size=config["batch_size"], optimizer=config["optimizer"], lr=config["lr"],
        temperature=config["temperature"], margin=config["margin"], seed=config["seed"],
        time_budget_s=config["time_budget_s"], device=device, progress=progress,
    )
    info = {
        "train_time_s": result.train_time_s, "epochs_completed": result.epochs_completed,
        "stopped_early": result.stopped_early, "n_train_used": len(ds),
        "in_channels": int(ds.images.shape[1]), "n_classes": int(ds.n_classes),
        "mean": list(map(float, ds.mean)), "std": list(map(float, ds.std)),
        "input_size": list(ds.images.shape[2:]),
    }
    return TrainedModel(model_name(config), encoder, head, dict(config), result.history, info)


def save_model(model: TrainedModel, path: str | os.PathLike) -> Path:
    """Write ``model`` (weights, config, history, metrics) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "name": model.name,
        "config": model.config,
        "train_info": model.train_info,
        "metrics": model.metrics,
        "history": {c: model.history[c].tolist() for c in model.history.columns},
        "encoder_state": {k: v.detach().cpu() for k, v in model.encoder.state_dict().items()},
        "head_state": None if model.head is None else {k: v.detach().cpu() for k, v in model.head.state_dict().items()},
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    model.path = path
    return path


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """The payload of the zoo checkpoint at ``path``; ValueError naming the file otherwise."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an rmqm zoo checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch all raise their own types on garbage
        raise ValueError(f"{path} is not a readable rmqm zoo checkpoint: {type(err).__name__}: {err}") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an rmqm zoo checkpoint (format {CHECKPOINT_FORMAT})")
    return payload


def load_model(name_or_path: str | os.PathLike, zoo_dir: str | os.PathLike = "results/zoo", device: str = "cpu") -> TrainedModel:
    """Load a checkpoint by file path, or by model name from ``zoo_dir``.

    Raises:
        FileNotFoundError: no such checkpoint (the message lists what the zoo holds).
        ValueError: the file is not an rmqm zoo checkpoint.
    """
    path = Path(name_or_path)
    if not path.exists():
        path = Path(zoo_dir) / f"{name_or_path}.pt"
    if not path.exists():
        names = sorted(p.stem for p in Path(zoo_dir).glob("*.pt")) if Path(zoo_dir).is_dir() else []
        raise FileNotFoundError(
            f"no checkpoint {str(name_or_path)!r} (looked for {path}); zoo {str(zoo_dir)!r} holds {names[:20]}"
        )
    payload = _read_checkpoint(path)
    config, info = payload["config"], payload["train_info"]
    encoder, head = build_model(config, info["in_channels"], info["n_classes"], info["mean"], info["std"])
    encoder.load_state_dict(payload["encoder_state"])
    encoder.to(device).eval()
    if head is not None:
        head.load_state_dict(payload["head_state"])
        head.to(device).eval()
    history = pd.DataFrame(payload["history"]) if payload["history"] else pd.DataFrame(
        {"step": [], "epoch": [], "loss": [], "elapsed_s": []}
    )
    return TrainedModel(payload["name"], encoder, head, config, history, info, payload.get("metrics") or {}, path)


def list_models(zoo_dir: str | os.PathLike = "results/zoo") -> pd.DataFrame:
    """One row per checkpoint in ``zoo_dir``: name, its config fields and training info."""
    rows = []
    for p in sorted(Path(zoo_dir).glob("*.pt")):
        try:
            payload = _read_checkpoint(p)
        except ValueError as err:
            log.warning("skipping %s", err)
        else:
            rows.append({"name": payload["name"], **payload["config"],
                         "train_time_s": payload["train_info"].get("train_time_s")})
    return pd.DataFrame(rows)


def load_or_train(
    config: dict[str, Any],
    cache_dir: str | os.PathLike = "results/zoo",
    *,
    dataset: ImageDataset | None = None,
    device: str = "cpu",
    progress: bool = True,
    retrain: bool = False,
) -> TrainedModel:
    """Load the cached model of ``config`` from ``cache_dir``, or train and save it first.

    ``dataset`` (the training data of ``config``) saves reloading it for each model.
    """
    path = Path(cache_dir) / f"{model_name(config)}.pt"
    if path.exists() and not retrain:
        try:
            model = load_model(path, device=device)
            if model.config == config:
                return model
            log.warning("checkpoint %s holds a different config; retraining", path)
        except (ValueError, RuntimeError, KeyError, EOFError) as err:  # corrupt or stale file
            log.warning("cannot load %s (%s); retraining", path, err)
    model = train_model(config, dataset=dataset, device=device, progress=progress)
    save_model(model, path)
    return model


def resolve_data(data: str) -> str:
    """``data``, or ``"digits"`` (with a logged warning) when Fashion-MNIST files are missing."""
    if data == "fashion-mnist" and not fashion_mnist_available():
        log.warning("Fashion-MNIST files not found; training on scikit-learn digits instead "
                    "(install the Debian package dataset-fashion-mnist for the default data)")
        return "digits"
    return data


def default_encoder(
    data: str = "fashion-mnist",
    *,
    dim: int = 32,
    method: str = "cross-entropy",
    n_train: int = 6000,
    epochs: int = 2,
    seed: int = 0,
    cache_dir: str | Path = "results/zoo",
    device: str = "cpu",
    progress: bool = True,
) -> TrainedModel:
    """The study's default CPU encoder: a :class:`rmqm.models.TinyCNN` trained on ``data``.

    Loads the checkpoint cached under its config in ``cache_dir``, or trains it (Adam,
    lr 1e-3, batch 128, at most 60 s of training) on ``n_train`` images of the train split
    and saves it. Falls back to ``"digits"`` with a logged warning when Fashion-MNIST is
    missing.
    """
    config = model_config(resolve_data(data), method, dim, n_train=n_train, epochs=epochs, seed=seed)
    return load_or_train(config, cache_dir, device=device, progress=progress)


# --------------------------------------------------------------------------- the zoo

#: The tiny CPU zoo of the book's default profile: every method at two dimensions.
TINY_ZOO: dict[str, Any] = {
    "dims": (16, 64), "n_train": 3000, "epochs": 2, "time_budget_s": 30.0, "n_eval": 1000,
}


def method_family(method: str) -> str:
    """``"supervised"``, ``"self-supervised"`` or ``"random"``."""
    if method in SUPERVISED_METHODS:
        return "supervised"
    if method in SELF_SUPERVISED_METHODS:
        return "self-supervised"
    if method == "random-init":
        return "random"
    raise ValueError(f"unknown pretraining method {method!r}; choose one of {list(METHODS)}")


def _load_transfer(name: str, n: int | None, **kwargs) -> ImageDataset:
    split = "all" if name in OFFLINE_DATASETS + ("caltech101",) else "test"
    return load_dataset(name, split=split, n=n, seed=0, **kwargs)


def evaluate_model(
    model: TrainedModel,
    transfer: dict[str, ImageDataset],
    eval_data: ImageDataset,
    *,
    k: int = 5,
    device: str = "cpu",
) -> dict[str, float]:
    """Downstream and label-free scores of one model.

    For each transfer task ``t``: ``t_1nn``, ``t_knn`` and ``t_linear`` accuracies on a fixed
    half split (seed 0); then ``rankme`` and ``alpha_req`` of the embeddings of
    ``eval_data`` (the pretraining test split, no labels used).
    """
    from rmqm.baselines import label_free_scores
    from rmqm.probes import embed_dataset, evaluate_probes

    channels = int(model.train_info["in_channels"])
    size = tuple(model.train_info["input_size"])
    scores: dict[str, float] = {}
    for task, ds in transfer.items():
        if ds.images.shape[1] != channels:
            raise ValueError(
                f"transfer set {task!r} has {ds.images.shape[1]} channels but {model.name} takes {channels}"
            )
        accs = evaluate_probes(model.encoder, ds.resized(size), seed=0, k=k, device=device)
        scores.update({f"{task}_{probe}": acc for probe, acc in accs.items()})
    z = embed_dataset(model.encoder, eval_data.resized(size).images, device=device)
    scores.update(label_free_scores(z))
    return scores


def train_zoo(
    methods: Sequence[str] = METHODS,
    dims: Sequence[int] = TINY_ZOO["dims"],
    seeds: Sequence[int] = (0,),
    *,
    data: str = "fashion-mnist",
    transfer: Sequence[str] | None = None,
    arch: str = "tiny",
    optimizers: Sequence[str] = ("adam",),
    lr: float = 1e-3,
    epochs: int = TINY_ZOO["epochs"],
    batch_size: int = 128,
    n_train: int | None = TINY_ZOO["n_train"],
    time_budget_s: float | None = TINY_ZOO["time_budget_s"],
    n_eval: int | None = TINY_ZOO["n_eval"],
    n_transfer: int | None = None,
    k: int = 5,
    cache_dir: str | os.PathLike = "results/zoo",
    device: str = "cpu",
    progress: bool = True,
    retrain: bool = False,
    **data_kwargs,
) -> pd.DataFrame:
    """Train (or load) every (method, dim, optimizer, seed) model and score it.

    Each model is saved as soon as it is trained and again with its scores, before the
    next one starts, so an interrupted run loses nothing and a rerun skips finished work
    (models are cached by config; scores by the evaluation settings).

    Args:
        methods, dims, seeds, optimizers: the grid (see :data:`rmqm.pretrain.METHODS`).
        data: pretraining set (``"fashion-mnist"`` falls back to ``"digits"`` when missing).
        transfer: downstream sets; default :func:`rmqm.data.transfer_tasks` of ``data``.
            They must differ from ``data``.
        arch, lr, epochs, batch_size, n_train, time_budget_s: training config of every model.
        n_eval: points of ``data``'s test split for RankMe and alpha-ReQ.
        n_transfer: subsample each transfer set (None: all of it).
        k: neighbours of the k-NN probe.
        **data_kwargs: ``root``/``download`` for torchvision datasets.

    Returns:
        One row per model: ``name, data, arch, method, family, dim, optimizer, seed,
        train_time_s, epochs_completed, stopped_early, final_loss``, then
        ``<task>_1nn``, ``<task>_knn``, ``<task>_linear`` per transfer task, ``rankme``
        and ``alpha_req``.
    """
    from tqdm.auto import tqdm

    data = resolve_data(data)
    tasks = tuple(transfer) if transfer is not None else transfer_tasks(data)
    if data in tasks:
        raise ValueError(f"transfer sets must differ from the pretraining set {data!r}; got {list(tasks)}")
    configs = [
        model_config(data, method, dim, arch=arch, optimizer=opt, lr=lr, epochs=epochs,
                     batch_size=batch_size, n_train=n_train, seed=seed, time_budget_s=time_budget_s)
        for seed in seeds for opt in optimizers for dim in dims for method in methods
    ]
    if not configs:
        raise ValueError("the zoo is empty: give at least one method, dim, optimizer and seed")
    eval_key = json.dumps({"transfer": list(tasks), "n_transfer": n_transfer, "n_eval": n_eval, "k": k})

    cache: dict[str, Any] = {}

    def kwargs_for(name: str) -> dict[str, Any]:  # root/download only reach file-backed loaders
        return {} if name in OFFLINE_DATASETS else data_kwargs

    def training_data(seed: int) -> ImageDataset:  # loaded only if some model must be trained
        if ("train", seed) not in cache:
            cache[("train", seed)] = load_dataset(data, split="train", n=n_train, seed=seed, **kwargs_for(data))
        return cache[("train", seed)]

    def eval_sets() -> tuple[dict[str, ImageDataset], ImageDataset]:
        if "eval" not in cache:
            sets = {t: _load_transfer(t, n_transfer, **kwargs_for(t)) for t in tasks}
            cache["eval"] = (sets, load_dataset(data, split="test", n=n_eval, seed=0, **kwargs_for(data)))
        return cache["eval"]

    rows = []
    bar = tqdm(configs, desc="zoo", disable=not progress)
    for config in bar:
        name = model_name(config)
        bar.set_postfix_str(name)
        path = Path(cache_dir) / f"{name}.pt"
        needs_training = retrain or not path.exists()
        model = load_or_train(
            config, cache_dir, dataset=training_data(config["seed"]) if needs_training else None,
            device=device, progress=progress, retrain=retrain,
        )
        if model.metrics.get("eval_key") != eval_key:
            start = time.perf_counter()
            sets, eval_data = eval_sets()
            scores = evaluate_model(model, sets, eval_data, k=k, device=device)
            model.metrics = {"eval_key": eval_key, "eval_time_s": time.perf_counter() - start, **scores}
            save_model(model, path)
        tail = model.history["loss"].tail(5)
        rows.append({
            "name": name, "data": data, "arch": arch, "method": config["method"],
            "family": method_family(config["method"]), "dim": config["dim"],
            "optimizer": config["optimizer"], "seed": config["seed"],
            "train_time_s": model.train_info.get("train_time_s", 0.0),
            "epochs_completed": model.train_info.get("epochs_completed", 0.0),
            "stopped_early": bool(model.train_info.get("stopped_early", False)),
            "final_loss": float(tail.mean()) if len(tail) else float("nan"),
            **{key: v for key, v in model.metrics.items() if key not in ("eval_key", "eval_time_s")},
        })
    return pd.DataFrame(rows)


def family_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean of every score column of a :func:`train_zoo` table per method family."""
    skip = {"dim", "seed", "epochs_completed", "stopped_early", "train_time_s", "final_loss"}
    scores = [c for c in table.columns if c not in skip and pd.api.types.is_numeric_dtype(table[c])]
    return table.groupby("family")[scores].mean()


# --------------------------------------------------------------------------- command line


def add_zoo_arguments(parser: Any) -> Any:
    """Add the ``zoo`` options to an ``argparse`` parser (used by ``rmqm zoo``).

    The defaults train the tiny CPU zoo (every method at d = 16 and 64 on the offline
    default data) and print its table.
    """
    g = parser.add_argument_group("zoo")
    g.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS), metavar="METHOD",
                   help=f"pretraining methods (default: all: {', '.join(METHODS)})")
    g.add_argument("--dims", type=int, nargs="+", default=list(TINY_ZOO["dims"]), help="embedding dimensions")
    g.add_argument("--seeds", type=int, nargs="+", default=[0])
    g.add_argument("--optimizers", nargs="+", default=["adam"], choices=list(OPTIMIZERS))
    g.add_argument("--data", default="fashion-mnist",
                   help="pretraining set (fashion-mnist falls back to digits when its files are missing)")
    g.add_argument("--transfer", nargs="+", default=None,
                   help="downstream sets (default: the pretraining set's transfer tasks)")
    g.add_argument("--arch", default="tiny", choices=list(ARCHITECTURES))
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--epochs", type=int, default=TINY_ZOO["epochs"])
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--n-train", type=int, default=TINY_ZOO["n_train"], help="training images (0: all)")
    g.add_argument("--time-budget", type=float, default=TINY_ZOO["time_budget_s"],
                   help="seconds of training per model before it stops early (0: no limit)")
    g.add_argument("--n-eval", type=int, default=TINY_ZOO["n_eval"],
                   help="test points of the pretraining set for RankMe and alpha-ReQ")
    g.add_argument("--n-transfer", type=int, default=None, help="subsample each transfer set")
    g.add_argument("--k", type=int, default=5, help="neighbours of the k-NN probe")
    g.add_argument("--zoo-dir", default="results/zoo", help="where checkpoints are cached")
    g.add_argument("--data-root", default=None, help="root of torchvision datasets (default $RMQM_DATA or ./data)")
    g.add_argument("--download", action="store_true", help="let torchvision download missing datasets")
    g.add_argument("--retrain", action="store_true", help="ignore cached checkpoints")
    g.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda when present)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    g.add_argument("--out", default=None, help="save the table (.csv or .parquet)")
    parser.set_defaults(func=zoo_command)
    return parser


def zoo_command(args: Any) -> pd.DataFrame:
    """``rmqm zoo``: train (or load) the zoo and print its downstream and label-free scores."""
    from rmqm.cli import _save_table, resolve_device

    start = time.perf_counter()
    data_kwargs: dict[str, Any] = {}
    if args.data_root is not None:
        data_kwargs["root"] = args.data_root
    if args.download:
        data_kwargs["download"] = True
    table = train_zoo(
        args.methods, args.dims, args.seeds, data=args.data, transfer=args.transfer, arch=args.arch,
        optimizers=args.optimizers, lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
        n_train=args.n_train or None, time_budget_s=args.time_budget or None, n_eval=args.n_eval,
        n_transfer=args.n_transfer, k=args.k, cache_dir=args.zoo_dir, device=resolve_device(args.device),
        progress=not args.no_progress, retrain=args.retrain, **data_kwargs,
    )
    shown = table.drop(columns=["name", "data", "arch"])
    if len(set(table["optimizer"])) == 1:
        shown = shown.drop(columns="optimizer")
    if len(set(table["seed"])) == 1:
        shown = shown.drop(columns="seed")
    print(f"\nModel zoo: {len(table)} models pretrained on {table['data'].iloc[0]} "
          f"({time.perf_counter() - start:.1f} s; checkpoints in {args.zoo_dir})")
    with pd.option_context("display.width", 250, "display.max_columns", 50, "display.float_format", "{:.3f}".format):
        print(shown.to_string(index=False))
        print("\nMean per family:")
        print(family_summary(table).to_string())
    if args.out:
        _save_table(table, Path(args.out))
    return table
