"""Pretraining method names and families, and the one rule for each model's own attack loss."""

from __future__ import annotations

from typing import Any

from rmqm.metrics.rmqm.attacks import reference_semantics

__all__ = ['SUPERVISED_METHODS', 'SELF_SUPERVISED_METHODS', 'METHODS', 'HEAD_METHODS', 'OPTIMIZERS', 'method_family',
           'own_attack_loss', 'reference_attack_semantics']


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


def own_attack_loss(method: str) -> str:
    """The PGD loss that attacks a model of ``method`` with its own training loss, as the RMQM
    reference code does (/work/shared/methods/rmqm.md, "in its PGD attack"), for every method:

    ``cross-entropy`` -> ``"cross-entropy"``, ``triplet-entropy`` -> ``"triplet-entropy"``,
    ``supervised-triplet`` -> ``"supervised-triplet"``, ``nt-xent`` -> ``"nt-xent"``,
    ``instance-triplet`` -> ``"instance-triplet"``, ``random-init`` -> ``"nt-xent"`` (the reference
    attacks its random network with NT-Xent), ``vicreg`` -> ``"vicreg"``. VICReg is not in the
    reference: attacking it with its own loss (against an augmented clean view, as the other
    two-view methods) is this library's choice.

    The names are losses of :func:`rmqm.metrics.rmqm.measure.measure_rmqm` (``attack_loss``);
    the label losses need the class labels, and cross-entropy and triplet-entropy the model's
    classifier head.

    Raises:
        ValueError: an unknown method.
    """
    check_method(method)
    return "nt-xent" if method == "random-init" else method


def reference_attack_semantics(method: str) -> dict[str, Any]:
    """How the reference attacks a model of ``method``: ``{"attack_loss": own_attack_loss(method),
    "augment_output": ..., "augment_gradient": ...}``, the keywords of
    :func:`rmqm.metrics.rmqm.measure.measure_rmqm` with ``pgd_mode="reference"``.

    Supervised methods: the attack returns ``augment(adv)`` (a fresh random rotation up to 15
    degrees per level on MNIST, level 0 included), and cross-entropy and triplet-entropy take the
    gradient through that augmentation; the supervised-triplet model through ``model(adv)``.
    Two-view methods and the random init: the loss compares a clean view redrawn at every step
    with ``model(adv)``, and the attack returns ``adv``, not augmented
    (:func:`rmqm.metrics.rmqm.attacks.reference_semantics`).

    Raises:
        ValueError: an unknown method.
    """
    loss = own_attack_loss(method)
    return {"attack_loss": loss, **reference_semantics(loss)}
