"""Pretraining method names and families, and the one rule for each model's own attack loss."""

from __future__ import annotations

__all__ = ['SUPERVISED_METHODS', 'SELF_SUPERVISED_METHODS', 'METHODS', 'HEAD_METHODS', 'OPTIMIZERS', 'method_family',
           'own_attack_loss']


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


def own_attack_loss(method: str) -> str | None:
    """The PGD loss that attacks a model of ``method`` with its own training loss, as the
    reference does, where this library has that loss as an attack: ``"cross-entropy"`` (through
    the classifier head) for the :data:`HEAD_METHODS`, ``"nt-xent"`` (against an augmented view)
    for NT-Xent; None for the others. The reference attacks the triplet models with their triplet
    loss and the random init with NT-Xent; VICReg has no attack there. Neither triplet loss is an
    attack here, and the random init and VICReg get none rather than a borrowed loss.

    Raises:
        ValueError: an unknown method.
    """
    check_method(method)
    if method in HEAD_METHODS:
        return "cross-entropy"
    return "nt-xent" if method == "nt-xent" else None
