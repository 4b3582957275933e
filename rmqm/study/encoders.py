"""Your own encoders in the study: the ``encoders`` profile parameter, loaded and checked up front.

``encoders`` is a list of specs, each a mapping of one of three kinds (a built-in may be just its name):

* **checkpoint** ``{name, checkpoint: path, arch, dim}``: a file of
  :func:`rmqm.training.checkpoints.save_model` (a zoo model; ``arch``/``dim`` optional, checked
  when given) or a ``state_dict`` of ``rmqm.models.backbones.build_backbone(arch, in_channels, dim)``
  (also inside ``{"state_dict": ...}``, or an :class:`~rmqm.models.encoder.Encoder`'s, ``backbone.``
  prefix and ``mean``/``std`` buffers included), read with ``torch.load(weights_only=True)``.
  Optional: ``in_channels``, ``width`` (default: read from the first convolution), ``input_size``
  (default: the study's), ``mean``/``std`` (default: an Encoder's saved ones, else none).
* **factory** ``{name, factory: "package.module:function", kwargs: {...}}``: ``function(**kwargs)``
  returns an ``nn.Module`` or ``(module, info)``. A plain module gets the study's images as they
  are (``(B, C, H, W)`` in ``[0, 1]``, the study's channels and size); ``info`` may give
  ``in_channels`` (1 or 3), ``input_size`` (int or ``[H, W]``) and per-channel ``mean``/``std``, and the
  images are then converted, resized and normalised to them. The module must be importable (installed,
  or on ``PYTHONPATH``). **A factory runs code**: refused unless allowed (:mod:`rmqm.study.allow_code`).
* **built-in** ``{builtin: efficientnet-lite0}`` or ``{name: efficientnet-lite0}``: one of
  :data:`rmqm.models.pretrained.PRETRAINED_ENCODERS`; optional ``pretrained`` (default true; false:
  the random-init twin of ``seed``) and ``input_size`` (default: its native size).

Each encoder comes wrapped in an :class:`~rmqm.models.adapters.InputAdapter` that takes the study's
images (gradients, for PGD, flow through it). Relative checkpoint paths are taken from ``base_dir``
(the repository root in a study run), where factory modules are looked for too. :func:`check_profile_encoders`
loads each and runs one small batch through it: a bad spec stops ``rmqm study run`` before any notebook.
"""

from __future__ import annotations

import importlib
import re
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rmqm.data.registry import load_dataset, resolve_data
from rmqm.models.adapters import InputAdapter, as_size
from rmqm.models.backbones import ARCHITECTURES, build_backbone
from rmqm.models.pretrained import PRETRAINED_ENCODERS, load_pretrained
from rmqm.study.allow_code import code_allowed, refusal
from rmqm.study.profiles import Profile
from rmqm.training.checkpoints import CHECKPOINT_FORMAT, load_model

__all__ = ["ENCODER_KINDS", "EncoderSpec", "EncoderSpecError", "parse_encoder_specs", "load_encoder",
           "check_encoder_specs", "study_image_shape", "check_profile_encoders"]

#: The kinds of spec, each named by the key that selects it.
ENCODER_KINDS: tuple[str, ...] = ("checkpoint", "factory", "builtin")

_KEYS: dict[str, tuple[str, ...]] = {
    "checkpoint": ("name", "checkpoint", "arch", "dim", "width", "in_channels", "input_size", "mean", "std"),
    "factory": ("name", "factory", "kwargs"),
    "builtin": ("name", "builtin", "pretrained", "seed", "input_size"),
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_ZOO_NAME = re.compile(r".+_d\d+_.+_s\d+_[0-9a-f]{8}")  # rmqm.training.checkpoints.model_name
_INFO_KEYS = ("in_channels", "input_size", "mean", "std")


class EncoderSpecError(ValueError):
    """Bad ``encoders`` specs; ``problems`` lists each (naming the spec and the fix)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) with the `encoders` parameter:\n  - "
                         + "\n  - ".join(self.problems))


@dataclass(frozen=True)
class EncoderSpec:
    """One user encoder of the study: its ``name`` in result tables (letters, digits, ``._+-``),
    ``kind`` (one of :data:`ENCODER_KINDS`), ``index`` in the ``encoders`` list, and ``options``: the
    spec's other keys (a checkpoint path resolved, a factory's ``base_dir`` added)."""

    name: str
    kind: str
    index: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``encoders[i] ('name')``: how messages name this spec."""
        return f"encoders[{self.index}] ({self.name!r})"


def _spec_problems(i: int, item: Mapping[str, Any], kind: str) -> list[str]:
    where = f"encoders[{i}] ({item.get('name', item.get(kind))!r})"
    problems = []
    unknown = sorted(set(map(str, item)) - set(_KEYS[kind]))
    if unknown:
        problems.append(f"{where}: unknown key(s) {unknown} for a {kind} spec; allowed: {list(_KEYS[kind])}")
    arch = item.get("arch")
    if arch is not None and arch not in ARCHITECTURES:
        problems.append(f"{where}: unknown architecture {arch!r}; use one of {list(ARCHITECTURES)} "
                        "(or a factory spec for any other nn.Module)")
    for key, low in (("dim", 1), ("width", 1), ("in_channels", 1), ("seed", 0)):
        value = item.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            problems.append(f"{where}: {key} must be an integer >= {low}; got {value!r}")
    if kind == "checkpoint" and not isinstance(item["checkpoint"], str):
        problems.append(f"{where}: checkpoint must be a file path (a string); got {item['checkpoint']!r}")
    if kind == "factory" and not (isinstance(item["factory"], str) and _FACTORY.fullmatch(item["factory"])):
        problems.append(f"{where}: factory must look like 'package.module:function'; got {item['factory']!r}")
    if kind == "factory" and not isinstance(item.get("kwargs") or {}, Mapping):
        problems.append(f"{where}: kwargs must be a mapping of keyword arguments; got {item.get('kwargs')!r}")
    if kind == "builtin" and item["builtin"] not in PRETRAINED_ENCODERS:
        problems.append(f"{where}: unknown built-in encoder {item['builtin']!r}; use one of "
                        f"{list(PRETRAINED_ENCODERS)}")
    try:
        as_size(item.get("input_size"))
    except ValueError as err:
        problems.append(f"{where}: {err}")
    if (item.get("mean") is None) != (item.get("std") is None):
        problems.append(f"{where}: give both mean and std (one value per channel each), or neither")
    return problems


def parse_encoder_specs(value: Any, *, base_dir: str | Path | None = None) -> list[EncoderSpec]:
    """The specs of an ``encoders`` parameter value (None or ``[]``: none).

    Checks only the form (keys, types, names, known architectures and built-ins); files and
    factories are checked by :func:`check_encoder_specs`. Relative checkpoint paths are taken
    from ``base_dir`` (default: the current folder).

    Raises:
        EncoderSpecError: listing every problem, each naming the spec and the fix.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise EncoderSpecError([f"encoders must be a list of specs (mappings); got {type(value).__name__} "
                                f"{value!r}. Example: encoders: [{{builtin: efficientnet-lite0}}]"])
    specs, problems = [], []
    for i, item in enumerate(value):
        if isinstance(item, str):
            item = {"builtin": item}
        if not isinstance(item, Mapping):
            problems.append(f"encoders[{i}]: a spec must be a mapping (e.g. {{name: mine, factory: "
                            f"'my_pkg.models:build'}}); got {item!r}")
            continue
        kinds = [k for k in ENCODER_KINDS if k in item]
        if not kinds and item.get("name") in PRETRAINED_ENCODERS:
            item, kinds = {**item, "builtin": item["name"]}, ["builtin"]
        if len(kinds) != 1:
            problems.append(f"encoders[{i}] ({item.get('name')!r}): give exactly one of {list(ENCODER_KINDS)}; "
                            f"got {kinds or 'none'}")
            continue
        kind = kinds[0]
        name = item.get("name", item.get("builtin") if kind == "builtin" else None)
        if not (isinstance(name, str) and _NAME.fullmatch(name)):
            problems.append(f"encoders[{i}]: name must be a non-empty label of letters, digits and ._+- "
                            f"(it names the encoder in result tables); got {name!r}")
            continue
        item_problems = _spec_problems(i, item, kind)
        problems += item_problems
        if item_problems:
            continue
        options = {k: v for k, v in item.items() if k not in ("name", kind)}
        options[kind] = item[kind]
        if kind == "checkpoint":
            path = Path(item["checkpoint"]).expanduser()
            options["checkpoint"] = str(path if path.is_absolute() or base_dir is None else Path(base_dir) / path)
        elif kind == "factory" and base_dir is not None:
            options["base_dir"] = str(Path(base_dir).resolve())
        specs.append(EncoderSpec(name, kind, i, options))
    problems += _name_problems(specs)
    if problems:
        raise EncoderSpecError(problems)
    return specs


def _name_problems(specs: Sequence[EncoderSpec], reserved: Iterable[str] = ()) -> list[str]:
    """Duplicate names, and names that would be mistaken for zoo or other built-in encoders."""
    problems, seen, reserved = [], dict[str, int](), set(reserved)
    for spec in specs:
        if spec.name in seen:
            problems.append(f"{spec.label}: duplicate name, also used by encoders[{seen[spec.name]}]; "
                            "give each encoder its own name")
        seen.setdefault(spec.name, spec.index)
        builtin = spec.name in PRETRAINED_ENCODERS or spec.name.removesuffix("-random-init") in PRETRAINED_ENCODERS
        if (builtin and spec.options.get("builtin") != spec.name) or _ZOO_NAME.fullmatch(spec.name) \
                or spec.name in reserved:
            problems.append(f"{spec.label}: the name clashes with a zoo or built-in encoder's name; rename it")
    return problems


class _LoadError(Exception):
    """A spec that cannot be loaded; the message names the spec and the fix."""


def _read_state(spec: EncoderSpec, path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch all raise their own types on garbage
        raise _LoadError(f"{spec.label}: {path} is not a readable torch checkpoint ({type(err).__name__}: "
                         f"{err}); save it with torch.save(model.state_dict(), path)") from err


def _from_zoo_checkpoint(spec: EncoderSpec, path: Path, device: str) -> InputAdapter:
    model = load_model(path, device=device)
    opts = spec.options
    for key in ("arch", "dim"):
        if opts.get(key) is not None and opts[key] != model.config[key]:
            raise _LoadError(f"{spec.label}: {key} = {opts[key]!r} but the zoo checkpoint {path} holds "
                             f"{key} = {model.config[key]!r}; fix {key} or leave it out")
    info = model.train_info
    return InputAdapter(model.encoder, info.get("in_channels"), opts.get("input_size", info.get("input_size")),
                        name=spec.name)


def _from_state_dict(spec: EncoderSpec, state: Any, path: Path, size: tuple[int, int]) -> InputAdapter:
    opts = spec.options
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not (isinstance(state, Mapping) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise _LoadError(f"{spec.label}: {path} holds no state dict (a mapping of names to tensors); save "
                         "torch.save(backbone.state_dict(), path)")
    if opts.get("arch") is None or opts.get("dim") is None:
        raise _LoadError(f"{spec.label}: a state dict needs arch (one of {list(ARCHITECTURES)}) and dim "
                         "(the embedding size) in its spec")
    mean, std = opts.get("mean"), opts.get("std")
    if all(k.startswith("backbone.") or k in ("mean", "std") for k in state):  # an Encoder's state dict
        if mean is None and "mean" in state:
            mean, std = state["mean"].reshape(-1).tolist(), state["std"].reshape(-1).tolist()
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    first_conv = next((v for v in state.values() if v.ndim == 4), None)
    in_channels = opts.get("in_channels") or (int(first_conv.shape[1]) if first_conv is not None else None)
    if in_channels is None:
        raise _LoadError(f"{spec.label}: cannot tell the input channels of {path}; give in_channels in its spec")
    kwargs = {}
    if opts["arch"] == "tiny":
        kwargs["width"] = opts.get("width") or (int(first_conv.shape[0]) if first_conv is not None else 32)
    backbone = build_backbone(opts["arch"], in_channels, int(opts["dim"]), **kwargs)
    try:
        backbone.load_state_dict(dict(state), strict=True)
    except RuntimeError as err:
        raise _LoadError(f"{spec.label}: the weights in {path} do not fit arch {opts['arch']!r} with dim "
                         f"{opts['dim']} and {in_channels} input channel(s); fix arch/dim/width/in_channels "
                         f"({str(err).splitlines()[0]})") from err
    return InputAdapter(backbone, in_channels, opts.get("input_size", size), mean, std, name=spec.name)


def _from_factory(spec: EncoderSpec, in_channels: int, size: tuple[int, int]) -> InputAdapter:
    if not code_allowed():
        raise _LoadError(refusal(spec.label, spec.options["factory"]))
    module_name, _, function = str(spec.options["factory"]).partition(":")
    folder = str(spec.options.get("base_dir"))
    added = "base_dir" in spec.options and folder not in sys.path
    if added:  # a module in the repository root is found too (after everything else; removed again)
        sys.path.append(folder)
    try:
        module = importlib.import_module(module_name)
    except Exception as err:
        raise _LoadError(f"{spec.label}: cannot import {module_name!r} ({type(err).__name__}: {err}); install it, "
                         "put it in the repository root or its folder on PYTHONPATH (an absolute path)") from err
    finally:
        if added:
            sys.path.remove(folder)
    factory = getattr(module, function, None)
    if not callable(factory):
        raise _LoadError(f"{spec.label}: {module_name} has no function {function!r}; fix the factory string")
    try:
        result = factory(**dict(spec.options.get("kwargs") or {}))
    except Exception as err:
        raise _LoadError(f"{spec.label}: factory {spec.options['factory']} raised {type(err).__name__}: {err}; "
                         "fix the factory or its kwargs") from err
    module_out, info = result if isinstance(result, tuple) and len(result) == 2 else (result, {})
    if not isinstance(module_out, nn.Module) or not isinstance(info, Mapping):
        raise _LoadError(f"{spec.label}: factory {spec.options['factory']} must return an nn.Module or "
                         f"(nn.Module, info mapping); got {type(result).__name__}")
    unknown = sorted(set(map(str, info)) - set(_INFO_KEYS))
    if unknown:
        raise _LoadError(f"{spec.label}: the factory's info has unknown key(s) {unknown}; allowed: {list(_INFO_KEYS)}")
    try:
        return InputAdapter(module_out, info.get("in_channels", in_channels), info.get("input_size", size),
                            info.get("mean"), info.get("std"), name=spec.name)
    except ValueError as err:
        raise _LoadError(f"{spec.label}: bad info from the factory: {err}") from err


def load_encoder(spec: EncoderSpec, *, in_channels: int, input_size: int | Sequence[int],
                 device: str = "cpu") -> tuple[str, nn.Module]:
    """``(name, encoder)``: the encoder of ``spec``, in eval mode on ``device``, taking the
    study's images ``(B, in_channels, *input_size)`` with pixels in ``[0, 1]``.

    Raises:
        EncoderSpecError: the spec cannot be loaded (a missing or unreadable file, weights that do not
            fit, a factory not allowed, not importable or raising, ...); one problem, naming the spec and the fix.
    """
    size = as_size(input_size)
    assert size is not None
    try:
        if spec.kind == "checkpoint":
            path = Path(spec.options["checkpoint"])
            if not path.is_file():
                raise _LoadError(f"{spec.label}: checkpoint file {path} not found; fix the path (relative "
                                 "paths are taken from the repository root)")
            state = _read_state(spec, path)
            zoo = isinstance(state, Mapping) and state.get("format") == CHECKPOINT_FORMAT
            adapter = _from_zoo_checkpoint(spec, path, device) if zoo else _from_state_dict(spec, state, path, size)
        elif spec.kind == "factory":
            adapter = _from_factory(spec, in_channels, size)
        else:
            opts = spec.options
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                net = load_pretrained(str(opts["builtin"]), pretrained=bool(opts.get("pretrained", True)),
                                      device=device, seed=int(opts.get("seed", 0)))
            adapter = InputAdapter(net, 3, opts.get("input_size", net.input_size), name=spec.name)
    except _LoadError as err:
        raise EncoderSpecError([str(err)]) from err
    except (ImportError, ValueError, RuntimeError, OSError) as err:
        raise EncoderSpecError([f"{spec.label}: cannot load it: {type(err).__name__}: {err}"]) from err
    return spec.name, adapter.to(device).eval()


def _output_problem(spec: EncoderSpec, encoder: nn.Module, shape: tuple[int, ...], device: str) -> str | None:
    """Why ``encoder`` fails on one batch of study images of ``shape`` (None when it works)."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_(True)
    try:
        z = encoder(x)
    except Exception as err:
        return f"{spec.label}: raised on a batch of study images {tuple(shape)}: {type(err).__name__}: {err}"
    fix = "return (batch, d) embeddings: flatten or pool the output (e.g. nn.Flatten())"
    if not isinstance(z, torch.Tensor):
        return f"{spec.label}: returned {type(z).__name__}, not a tensor; {fix}"
    if z.ndim != 2 or z.shape[0] != shape[0]:
        return f"{spec.label}: output shape {tuple(z.shape)} on a batch of {shape[0]} images is not (B, d); {fix}"
    if not torch.isfinite(z).all():
        return f"{spec.label}: output has NaN or inf values on study images in [0, 1]; check its weights and inputs"
    grad = torch.autograd.grad(z.sum(), x, allow_unused=True)[0] if z.requires_grad else None
    if grad is None:
        return (f"{spec.label}: its output has no gradient with respect to the images; PGD attacks "
                "through it: remove torch.no_grad()/detach() from its forward")
    return None


def check_encoder_specs(specs: Sequence[EncoderSpec], *, in_channels: int, input_size: int | Sequence[int],
                        device: str = "cpu", batch_size: int = 2, reserved: Iterable[str] = ()) -> list[str]:
    """Every problem of ``specs`` (empty: all good): each is loaded and run on one batch of
    ``batch_size`` random study images ``(B, in_channels, *input_size)`` in ``[0, 1]``, whose
    output must be a finite ``(B, d)`` tensor with a gradient with respect to the images.

    ``reserved``: names already taken (e.g. the zoo's model names). Each problem names the
    spec (``encoders[i] ('name')``) and the fix.
    """
    size = as_size(input_size)
    assert size is not None
    problems = _name_problems(specs, reserved)
    for spec in specs:
        try:
            _, encoder = load_encoder(spec, in_channels=in_channels, input_size=size, device=device)
        except EncoderSpecError as err:
            problems += err.problems
            continue
        problem = _output_problem(spec, encoder, (batch_size, in_channels, *size), device)
        if problem:
            problems.append(problem)
    return problems


def study_image_shape(data: str, **data_kwargs: Any) -> tuple[int, int, int]:
    """``(C, H, W)`` of the images of data set ``data`` (after its fallback, quietly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        images = load_dataset(resolve_data(data, **data_kwargs), split="test", n=2, seed=0, **data_kwargs).images
    c, h, w = images.shape[1:]
    return int(c), int(h), int(w)


def check_profile_encoders(profile: Profile, *, base_dir: str | Path = ".", device: str = "cpu",
                           default_data: str = "fashion-mnist") -> None:
    """Check every non-empty ``encoders`` of ``profile`` (shared, and per notebook) on study images
    of its ``data`` parameter (``default_data`` when it has none); nothing is read when there is none.

    Raises:
        EncoderSpecError: every problem of every spec (prefixed by the notebook for a per-notebook one).
    """
    values = [("", profile.parameters)] + [(f"{nb}.", v) for nb, v in profile.notebooks.items()]
    problems: list[str] = []
    for prefix, params in values:
        if not params.get("encoders"):
            continue
        try:
            specs = parse_encoder_specs(params["encoders"], base_dir=base_dir)
        except EncoderSpecError as err:
            problems += [f"{prefix}{p}" for p in err.problems]
            continue
        c, h, w = study_image_shape(str(params.get("data", profile.parameters.get("data", default_data))))
        found = check_encoder_specs(specs, in_channels=c, input_size=(h, w), device=device)
        problems += [f"{prefix}{p}" for p in found]
    if problems:
        raise EncoderSpecError(problems)
