"""Pretraining method names and families, and the one rule for each model's own attack loss."""

from __future__ import annotations

__all__ = ['SUPERVISED_METHODS', 'SELF_SUPERVISED_METHODS', 'METHODS', 'HEAD_METHODS', 'OPTIMIZERS', 'method_family']


SUPERVISED_METHODS: tuple[str, ...] = ("cross-entropy", "triplet-entropy", "supervised-triplet")


SELF_SUPERVISED_METHODS: tuple[str, ...] = ("nt-xent", "instance-triplet", "vicreg")


#: All method names, in the order of the study's tables.
METHODS: tuple[str, ...] = SUPERVISED_METHODS + SELF_SUPERVISED_METHODS + ("random-init",)


#: Methods whose model has a classifier head mapping embeddings to logits.
HEAD_METHODS: tuple[str, ...] = ("cross-entropy", "triplet-entropy")


OPTIMIZERS: tuple[str, ...] = ("adam", "sgd-nesterov")


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown pretraining method {method!r}; choose one of {list(METHODS)}")


def method_family(method: str) -> str:
    """``"supervised"``, ``"self-supervised"`` or ``"random"``."""
    if method in SUPERVISED_METHODS:
        return "supervised"
    if method in SELF_SUPERVISED_METHODS:
        return "self-supervised"
    if method == "random-init":
        return "random"
    raise ValueError(f"unknown pretraining method {method!r}; choose one of {list(METHODS)}")
