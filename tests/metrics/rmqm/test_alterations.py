"""The alteration specs: self-validating values whose keywords round-trip through the cache key."""

import dataclasses
import itertools

import pytest
import torch

from rmqm.metrics.rmqm.alterations import PGD, WhiteNoise, alteration_from_keywords
from rmqm.metrics.rmqm.attacks import OWN_LOSSES, resolve_attack

ATTACKS = [resolve_attack("displacement")] + [
    resolve_attack(loss, mode, **factors)
    for loss, mode in itertools.product(OWN_LOSSES, ("own-loss", "reference"))
    for factors in ([{}] if mode == "own-loss" else
                    [{}, {"restarts": False}, {"augment_output": False, "rotation": "image"}, {"augment_gradient": False}])
]


@pytest.mark.parametrize("spec", [WhiteNoise(), WhiteNoise(n_levels=3, sigma_max=0.0, schedule="nested", clip=False),
                                  *[PGD(n_levels=4, step_size=0.5, epsilon=0.0, attack=a) for a in ATTACKS]])
def test_keywords_round_trip(spec):
    assert alteration_from_keywords(spec.keywords()) == spec
    assert alteration_from_keywords(spec.keywords()).keywords() == spec.keywords()


def test_specs_are_frozen_values_with_their_strengths():
    noise, pgd = WhiteNoise(n_levels=3, sigma_max=1), PGD(n_levels=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        noise.n_levels = 5  # type: ignore[misc]
    assert isinstance(noise.sigma_max, float) and noise == WhiteNoise(n_levels=3, sigma_max=1.0)
    assert torch.equal(noise.strengths(), torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    assert pgd.strengths().tolist() == [0.0, 1.0, 2.0] and pgd.kind == "pgd" and noise.kind == "noise"
    assert pgd.with_attack(ATTACKS[1]).attack == ATTACKS[1] and pgd.with_attack(ATTACKS[1]).n_levels == 3


def test_for_method_is_the_one_attack_decision():
    assert PGD.for_method("random-init", "reference").attack == resolve_attack("nt-xent", "reference")
    assert PGD.for_method("cross-entropy").attack.mode == "own-loss"
    assert PGD.for_method("cross-entropy", "reference", factors={"restarts": False}).attack.restarts is False


@pytest.mark.parametrize("build, match", [
    (lambda: WhiteNoise(n_levels=2), "n_levels"),
    (lambda: WhiteNoise(n_levels=3.5), "n_levels"),
    (lambda: WhiteNoise(sigma_max=float("nan")), "sigma_max"),
    (lambda: WhiteNoise(sigma_max="1"), "sigma_max"),
    (lambda: WhiteNoise(schedule="sometimes"), "noise schedule"),
    (lambda: WhiteNoise(clip=1), "clip"),
    (lambda: PGD(step_size=2.0), "step_size"),
    (lambda: PGD(epsilon=-0.1), "epsilon"),
    (lambda: PGD(temperature=0), "temperature"),
    (lambda: PGD(margin=-1), "margin"),
    (lambda: PGD(attack="nt-xent"), "AttackSpec"),
    (lambda: PGD.for_method("hinge"), "pretraining method or attack loss"),
    (lambda: alteration_from_keywords({"perturbation": "blur"}), "unknown perturbation"),
    (lambda: alteration_from_keywords({"nested": "yes"}), "nested must be a bool"),
    (lambda: alteration_from_keywords({"perturbation": "noise", "step_size": 0.1}), r"unknown noise .*step_size"),
    (lambda: alteration_from_keywords({"perturbation": "pgd", "attack_loss": "nt-xent", "pgd_mode": "reference",
                                       "raw_gradient": True}), "raw_gradient"),
])
def test_bad_values_fail_where_they_are_written(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()
