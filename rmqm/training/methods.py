"""Pretraining method names and families, and the one rule for each model's own attack loss."""

from __future__ import annotations

from typing import Any

from rmqm.metrics.rmqm.attacks import HEAD_LOSSES, resolve_attack

__all__ = ['SUPERVISED_METHODS', 'SELF_SUPERVISED_METHODS', 'METHODS', 'HEAD_METHODS', 'OPTIMIZERS', 'method_family',
           'own_attack_loss', 'reference_attack_semantics']


SUPERVISED_METHODS: tuple[str, ...] = ("cross-entropy", "triplet-entropy", "supervised-triplet")


SELF_SUPERVISED_METHODS: tuple[str, ...] = ("nt-xent", "instance-triplet", "vicreg")


#: All method names, in the order of the study's tables.
METHODS: tuple[str, ...] = SUPERVISED_METHODS + SELF_SUPERVISED_METHODS + ("random-init",)


#: Methods whose model has a classifier head mapping embeddings to logits (the losses that need it).
HEAD_METHODS: tuple[str, ...] = HEAD_LOSSES


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


def own_attack_loss(method: str) -> str:
    """The PGD loss that attacks a model of ``method`` with its own training loss, as the RMQM
    reference code does (its ``src/attacks.py``): the method's own loss, NT-Xent for
    ``random-init``; VICReg (not in the reference) with its own loss, this library's choice.
    ``resolve_attack(method, "own-loss").loss`` (:func:`rmqm.metrics.rmqm.attacks.resolve_attack`).

    Raises:
        ValueError: an unknown method.
    """
    check_method(method)
    return resolve_attack(method, "own-loss").loss


def reference_attack_semantics(method: str) -> dict[str, Any]:
    """How the reference attacks a model of ``method``: the ``measure_rmqm`` keywords of
    ``resolve_attack(method, "reference")`` (:func:`rmqm.metrics.rmqm.attacks.resolve_attack`).

    Raises:
        ValueError: an unknown method.
    """
    check_method(method)
    return resolve_attack(method, "reference").keywords()
