"""The value types and checks of config options, and the decorator that makes a dataclass a section.

The value types follow YAML files and ``key=value`` overrides: :data:`Int` and :data:`Bool` are
strict (``1`` is not ``true``, ``2.0`` is not ``2``); :data:`Float` takes ints and numeric strings
(YAML 1.1 reads ``1e-4`` as a string) but not booleans; :data:`Text` takes strings and paths.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, ConfigDict, StrictBool, StrictInt, with_config
from pydantic_core import PydanticCustomError
from typing_extensions import dataclass_transform

__all__ = ["Int", "Bool", "Float", "Text", "valid", "section", "FRACTION_OR_COUNT", "NO_BOOL"]


def _refuse_bool(value: object) -> object:
    """Refuse ``true``/``false`` where a number is expected (pydantic's lax mode reads them as 1 and 0)."""
    if isinstance(value, bool):
        raise PydanticCustomError("bool_is_not_a_number", "a bool is not a number")
    return value


def _path_as_text(value: object) -> object:
    """A path object as its string: Python callers pass ``pathlib.Path`` s for folders and files."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def valid(test: Callable[[Any], Any], rule: str) -> AfterValidator:
    """A check of one option's value: an error ``<rule>, got <value>`` when ``test(value)`` is false."""

    def check(value: Any) -> Any:
        if not test(value):
            raise PydanticCustomError("invalid_value", "{rule}, got {got}", {"rule": rule, "got": repr(value)})
        return value

    return AfterValidator(check)


Int = StrictInt
Bool = StrictBool
NO_BOOL = BeforeValidator(_refuse_bool)
"""Refuses ``true``/``false`` for an option whose type would read them as numbers."""
Float = Annotated[float, NO_BOOL]
Text = Annotated[str, BeforeValidator(_path_as_text)]
_T = TypeVar("_T")
FRACTION_OR_COUNT = valid(
    lambda v: not isinstance(v, float) or v <= 1.0, "a fraction must be <= 1.0 (or give an int number of batches)"
)


@dataclass_transform(field_specifiers=(field,))
def section(cls: type[_T]) -> type[_T]:
    """A config section: a dataclass in which pydantic refuses unknown keys."""
    return with_config(ConfigDict(extra="forbid"))(dataclass(cls))
