"""Every name ``rmqm`` exports at the top level carries a runnable example in its docstring
(run by ``pytest --doctest-modules``, which ``make test`` runs over ``rmqm/``)."""

from __future__ import annotations

import doctest

import pytest

import rmqm


@pytest.mark.parametrize("name", rmqm.__all__)
def test_every_top_level_name_has_an_example(name):
    found = doctest.DocTestFinder(recurse=False).find(getattr(rmqm, name), name)
    assert found and found[0].examples, f"rmqm.{name} has no example (>>>) in its docstring"
