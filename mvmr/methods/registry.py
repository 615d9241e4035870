"""The methods registry: built-ins, ``@register_method``, and the ``mvmr.methods`` entry points."""

from __future__ import annotations

from typing import Any, TypeVar

from mvmr.errors import ConfigError
from mvmr.methods.base import Method
from mvmr.plugins import Registry

__all__ = ["METHODS", "register_method", "get_method", "available_methods"]

M = TypeVar("M", bound=type[Method])


def _as_method(name: str, loaded: Any) -> type[Method]:
    """An entry point's object must be a :class:`Method` subclass."""
    if isinstance(loaded, type) and issubclass(loaded, Method):
        return loaded
    raise ConfigError(f"the mvmr.methods entry point {name!r} is {loaded!r}, not a mvmr.methods.Method subclass")


#: Method classes by name (``method: <name>`` in a config).
METHODS: Registry[type[Method]] = Registry("method", "mvmr.methods", adapt=_as_method)


def register_method(method: M) -> M:
    """Make a :class:`Method` subclass selectable as ``method: <method.name>``; returns it (a class decorator)."""
    if not (isinstance(method, type) and issubclass(method, Method)) or not method.name:
        raise TypeError(f"register_method expects a mvmr.methods.Method subclass with a name, got {method!r}")
    METHODS.register(method.name, method)
    return method


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name`` (looking in installed ``mvmr.methods`` entry points too)."""
    try:
        return METHODS.get(name)
    except ConfigError as err:
        raise ConfigError(f"method: {err}") from None


def available_methods() -> list[str]:
    """Names of the registered and installed methods, sorted."""
    return METHODS.names()
