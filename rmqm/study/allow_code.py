"""Code runs only when the user says so: a factory encoder spec (``factory: 'module:function'``)
imports a module and calls a function, so a profile with factories runs code. It is refused,
before anything is imported, unless the user allowed it: ``rmqm study run --allow-code`` or
the environment variable ``RMQM_ALLOW_CODE=1`` (which the notebooks' kernels inherit).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["ALLOW_CODE_ENV", "code_allowed", "refusal", "factory_refusals"]

#: The environment variable that allows factory specs to run code (``1``); ``rmqm study run
#: --allow-code`` sets it for the run and its notebooks.
ALLOW_CODE_ENV = "RMQM_ALLOW_CODE"


def code_allowed() -> bool:
    """True when the user allowed factory specs to run code (``RMQM_ALLOW_CODE=1``)."""
    return os.environ.get(ALLOW_CODE_ENV, "").strip() == "1"


def refusal(label: str, factory: Any) -> str:
    """Why factory ``factory`` of spec ``label`` is refused, naming the flag and the variable."""
    return (f"{label}: factory {factory!r} would import and run code; a profile with factories runs code, so "
            f"it needs your explicit permission: pass --allow-code to rmqm study run or set {ALLOW_CODE_ENV}=1 "
            "(only for code you trust)")


def factory_refusals(value: Any) -> list[str]:
    """One refusal per factory spec of an ``encoders`` value when code is not allowed
    (:func:`code_allowed`); empty when allowed or when there is none. Nothing is imported."""
    if code_allowed() or not isinstance(value, list):
        return []
    return [refusal(f"encoders[{i}] ({item.get('name')!r})", item["factory"])
            for i, item in enumerate(value) if isinstance(item, Mapping) and "factory" in item]
